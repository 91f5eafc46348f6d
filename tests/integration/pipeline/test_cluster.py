"""A three-broker KRaft cluster (`hito up --brokers 3`) loses a broker, then its controller
quorum's leader, in the middle of a run with two workers: InfluxDB stays exact, the DLQ holds
exactly the events meant for it, and no worker is restarted by hand.

The cluster is this module's own: three nodes started by the stack's code (hito.stack.kafka)
on spare loopback ports, with a temporary state directory, stopped afterwards; InfluxDB is the
shared stack's (a bucket of its own). Every topic has three replicas and min.insync.replicas 2;
devices and workers produce with acks=all and idempotence.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from hito.device.simulate.fleet import DUPLICATE, LATE, VALID, SimMessage
from hito.ops.dlq import read_all, read_originals
from hito.runtime import Runtime
from hito.settings import HitoSettings
from hito.stack import manager, process
from hito.stack.kafka import KafkaNode, kafka_nodes
from hito.stack.progress import make_runner
from hito.stack.worker_process import WorkerProcess, free_port
from tests.integration.pipeline.conftest import make_isolated
from tests.integration.pipeline.test_aggregation import assert_exact
from tests.integration.pipeline.test_faults import _fleet, _send_in_background, _wait_for_influx


def _free_ports(step: int) -> tuple[int, int]:
    """Client and controller base ports with all six node ports free (base + n*step), below
    the kernel's ephemeral range (32768-) so no client connection takes one meanwhile, and
    away from the stack's 18xxx/19xxx."""
    rng = random.Random()
    for _ in range(200):
        port, controller = rng.randrange(21000, 26000, 2), rng.randrange(26000, 31000, 2)
        wanted = [p + n * step for p in (port, controller) for n in range(3)]
        if all(_is_free(p) for p in wanted):
            return port, controller
    raise AssertionError("no six free ports for the cluster")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def cluster(
    stack: HitoSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HitoSettings]:
    step = 10
    port, controller = _free_ports(step)
    kafka = stack.kafka.model_copy(
        update={
            "brokers": 3,
            "port": port,
            "controller_port": controller,
            "port_step": step,
            "cluster_heap": "512m",
        }
    )
    settings = stack.model_copy(
        update={"state_dir": tmp_path_factory.mktemp("cluster"), "kafka": kafka}
    )
    names = [n.name for n in kafka_nodes(settings)]
    try:
        manager.up(settings, make_runner(Console(quiet=True)), only=names)
        yield settings
    finally:
        manager.down(settings, only=names)


def _quorum_leader(settings: HitoSettings) -> KafkaNode:
    """The active controller: the leader each node's quorum-state file names (node.id - 1)."""
    leaders = set()
    for node in kafka_nodes(settings):
        state = node.data_dir(settings) / "data" / "__cluster_metadata-0" / "quorum-state"
        if process.read_pid(node.files(settings)) is not None and state.exists():
            leaders.add(json.loads(state.read_text()).get("leaderId"))
    leaders.discard(None)
    leaders.discard(-1)
    assert len(leaders) == 1, f"nodes disagree on the quorum leader: {leaders}"
    leader: int = leaders.pop()
    return kafka_nodes(settings)[leader - 1]


def _rss_mb(node: KafkaNode, settings: HitoSettings) -> float:
    pid = process.read_pid(node.files(settings))
    assert pid is not None, f"{node.name} is not running"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _run_through(
    settings: HitoSettings,
    runtime: Runtime,
    tmp_path: Path,
    victim: KafkaNode,
    seed: int,
) -> None:
    """Two workers, a fleet at 300 events/s; ``victim`` is killed with SIGKILL a third of the
    way in and restarted 20 s later. Then: exact InfluxDB, the DLQ as meant, workers alive."""
    isolated = make_isolated(settings)
    runtime = dataclasses.replace(runtime, settings=isolated)
    messages, exp = _fleet(runtime, 6000, seed=seed)
    app_id = f"hito-cluster-{uuid.uuid4().hex[:6]}"
    workers = [
        WorkerProcess.start(isolated, app_id, free_port(), tmp_path / f"{n}.log", register=False)
        for n in ("a", "b")
    ]
    try:
        for w in workers:
            w.wait_ready(timeout_s=90)
        sender = _send_in_background(isolated, messages, rate=300)
        deadline = time.monotonic() + 60
        while sum(w.metric("hito_events_total") for w in workers) < 2000:
            assert time.monotonic() < deadline, workers[0].log_tail() + workers[1].log_tail()
            time.sleep(0.2)
        pid = process.read_pid(victim.files(settings))
        assert pid is not None and sender.is_alive(), "the run is over before the fault"
        os.killpg(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(20)
        # The run went on without it: both workers kept consuming.
        assert all(w.alive() for w in workers)
        manager.up(settings, make_runner(Console(quiet=True)), only=[victim.name])
        restarted_after = time.monotonic() - killed_at
        sender.join(timeout=120)
        assert not sender.is_alive(), "the fleet could not finish sending"
        _wait_for_influx(isolated, exp, timeout_s=180)
        for w in workers:
            # Never restarted by hand, never crashed: the same two processes did all of it.
            assert w.alive() and w.crashes() == 0, w.log_tail()
        assert restarted_after >= 20
    finally:
        for w in workers:
            w.stop()
    assert_exact(isolated, exp, runtime.policy.version)
    _assert_dlq_as_meant(isolated, messages)


def _assert_dlq_as_meant(settings: HitoSettings, messages: list[SimMessage]) -> None:
    """Every event meant for the DLQ has its record, and nothing else is there. A record
    written twice for the same source offset (a batch handled again after a rebalance) is
    the same rejection. Every refusal here happens at validation (a late event is older than
    the backfill horizon), so each is matched by the raw event's bytes in the raw zone's
    originals record paired with it."""
    meant = Counter(
        "late_beyond_window" if m.expected == LATE else m.expected
        for m in messages
        if m.expected not in (VALID, DUPLICATE)
    )
    records = {
        (r.record.source_topic, r.record.source_partition, r.record.source_offset): r.record
        for r in read_all(settings)
    }
    assert Counter(r.reason.value for r in records.values()) == meant
    assert {r.stage for r in records.values()} <= {"validate"}
    originals = {o.record.rejection_id: o.record for o in read_originals(settings)}
    assert {originals[r.rejection_id].original for r in records.values()} == {
        m.value for m in messages if m.expected not in (VALID, DUPLICATE)
    }


def test_a_broker_killed_mid_run_then_restarted(
    cluster: HitoSettings, runtime: Runtime, tmp_path: Path
) -> None:
    leader = _quorum_leader(cluster)
    victim = next(n for n in kafka_nodes(cluster) if n != leader)
    _run_through(cluster, runtime, tmp_path, victim, seed=61)


def test_the_quorum_loses_its_leader_mid_run(
    cluster: HitoSettings, runtime: Runtime, tmp_path: Path
) -> None:
    leader = _quorum_leader(cluster)
    _run_through(cluster, runtime, tmp_path, leader, seed=67)
    # The other two voters elected a new leader; the old one rejoined as a follower.
    assert _quorum_leader(cluster) != leader


def test_three_small_heaps(cluster: HitoSettings) -> None:
    """Each node runs with the cluster heap (512 MB); resident memory measured."""
    sizes = {n.name: round(_rss_mb(n, cluster)) for n in kafka_nodes(cluster)}
    print(f"Kafka node RSS (MB, -Xmx{cluster.kafka.cluster_heap}): {sizes}")  # noqa: T201
    assert all(n.argv(cluster)[1] == "-Xmx512m" for n in kafka_nodes(cluster))
    assert all(size < 1200 for size in sizes.values()), sizes
