"""Exact InfluxDB values through a worker kill -9, an InfluxDB outage and a scale-down."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hito.credentials import client_config
from hito.device.simulate.fleet import Fleet, FleetPlan, SimMessage
from hito.device.simulate.runner import send_messages
from hito.runtime import Runtime
from hito.settings import HitoSettings
from hito.stack import manager, process
from hito.stack.progress import make_runner
from hito.stack.services import SERVICES
from hito.stack.worker_process import WorkerProcess, free_port
from tests.integration.pipeline.test_aggregation import (
    assert_exact,
    expected_from,
    expected_totals,
    totals,
)

PORTS = (free_port(), free_port())  # any ports: workers register themselves for Prometheus


def _fleet(runtime: Runtime, count: int, seed: int) -> tuple[list[SimMessage], dict[str, Any]]:
    settings = runtime.settings
    plan = FleetPlan(
        count=count,
        seed=seed,
        bad_fraction=0.03,
        duplicate_fraction=0.05,
        out_of_order_fraction=0.02,
        raw_topics=dict(settings.pipeline.raw_topics),
    )
    messages = list(Fleet(runtime.registry, plan, datetime.now(UTC)).messages())
    return messages, expected_from(messages, settings.pipeline.window_s)


def _send_in_background(
    settings: HitoSettings, messages: list[SimMessage], rate: float
) -> threading.Thread:
    t = threading.Thread(
        target=send_messages,
        args=(messages,),
        daemon=True,
        kwargs={
            "producer_config": client_config(settings.kafka, "device"),
            "total": len(messages),
            "rate": rate,
        },
    )
    t.start()
    return t


def _wait_for_influx(settings: HitoSettings, exp: dict[str, Any], timeout_s: float) -> None:
    """Until crossings, sensor readings and drone fixes all reach what was sent."""
    target = expected_totals(exp)
    deadline = time.monotonic() + timeout_s
    got = (-1, -1, -1)
    while time.monotonic() < deadline:
        got = totals(settings)
        if got == target:
            time.sleep(3)  # and it stays there: nothing counted twice later
            assert totals(settings) == target
            return
        assert all(g <= t for g, t in zip(got, target, strict=True)), (
            f"InfluxDB over-counts: {got} > {target}"
        )
        time.sleep(1)
    raise AssertionError(f"InfluxDB holds {got} (crossings, readings, fixes), expected {target}")


def test_kill_9_mid_run_then_restart_is_exact(isolated_runtime: Runtime, tmp_path: Path) -> None:
    settings = isolated_runtime.settings
    messages, exp = _fleet(isolated_runtime, 6000, seed=23)
    app_id = f"hito-crash-{uuid.uuid4().hex[:6]}"
    first = WorkerProcess.start(settings, app_id, PORTS[0], tmp_path / "first.log")
    second = None
    try:
        first.wait_ready()
        sender = _send_in_background(settings, messages, rate=1500)
        deadline = time.monotonic() + 30
        while first.metric("hito_events_total") < 1500 and time.monotonic() < deadline:
            time.sleep(0.1)
        processed_before_kill = first.metric("hito_events_total")
        first.kill9()
        assert 0 < processed_before_kill < len(messages)
        second = WorkerProcess.start(settings, app_id, PORTS[1], tmp_path / "second.log")
        sender.join(timeout=60)
        _wait_for_influx(settings, exp, timeout_s=120)
        assert second.alive() and second.crashes() == 0, second.log_tail()
    finally:
        first.stop()
        if second:
            second.stop()
    assert_exact(settings, exp, isolated_runtime.policy.version)


# The fault hook's batch: far enough in that the worker has published and committed a good
# part of the run, early enough that most of the traffic is still to come.
KILL_AT_BATCH = 60


def test_killed_between_publish_and_dedup_state_then_restart_is_exact(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    """The ingest agent dies after its batch's clean events are in Kafka and before the dedup
    state that says "seen" is (HITO_TEST_KILL_AFTER_PUBLISH, agents/ingest.py): the next worker
    handles that batch again and publishes its clean events a second time; the aggregator must
    count each once."""
    settings = isolated_runtime.settings
    messages, exp = _fleet(isolated_runtime, 6000, seed=37)
    app_id = f"hito-hook-{uuid.uuid4().hex[:6]}"
    hook = {"HITO_TEST_KILL_AFTER_PUBLISH": str(KILL_AT_BATCH)}
    first = WorkerProcess.start(settings, app_id, PORTS[0], tmp_path / "first.log", env=hook)
    second = None
    try:
        first.wait_ready()
        sender = _send_in_background(settings, messages, rate=1500)
        processed_before_kill = 0.0
        deadline = time.monotonic() + 60
        while first.alive() and time.monotonic() < deadline:
            processed_before_kill = max(processed_before_kill, first.metric("hito_events_total"))
            time.sleep(0.1)
        assert not first.alive(), "the fault hook never fired:\n" + first.log_tail()
        assert first.proc.returncode == -signal.SIGKILL, first.proc.returncode
        first_log = first.log_path.read_bytes()
        assert b"test fault hook: killed between publish and dedup state" in first_log, (
            first.log_tail()
        )
        # `hito worker` froze its start-up heap (hito.pipeline.heap) before the event loop.
        assert b"heap settled: " in first_log, first.log_tail()
        assert 0 < processed_before_kill < len(messages)
        second = WorkerProcess.start(settings, app_id, PORTS[1], tmp_path / "second.log")
        sender.join(timeout=60)
        _wait_for_influx(settings, exp, timeout_s=120)
        assert second.alive() and second.crashes() == 0, second.log_tail()
    finally:
        first.stop()
        if second:
            second.stop()
    assert_exact(settings, exp, isolated_runtime.policy.version)


def test_influxdb_down_30_s_mid_run_is_exact_and_worker_lives(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings = isolated_runtime.settings
    messages, exp = _fleet(isolated_runtime, 3000, seed=29)
    worker = WorkerProcess.start(
        settings, f"hito-outage-{uuid.uuid4().hex[:6]}", PORTS[0], tmp_path / "worker.log"
    )
    influx = next(s for s in SERVICES if s.name == "influxdb")
    try:
        worker.wait_ready()
        sender = _send_in_background(settings, messages, rate=100)  # 30 s of traffic
        time.sleep(5)
        assert process.stop(influx.files(settings)), "InfluxDB was not running"
        outage_started = time.monotonic()
        time.sleep(30)
        errors_during_outage = worker.metric("hito_sink_errors_total")
        manager.up(settings, make_runner_quiet())
        assert time.monotonic() - outage_started >= 30
        sender.join(timeout=60)
        _wait_for_influx(settings, exp, timeout_s=120)
        assert errors_during_outage > 0  # the sink noticed, backed off, and retried
        assert worker.alive() and worker.crashes() == 0, worker.log_tail()
    finally:
        worker.stop()
        manager.up(settings, make_runner_quiet())
    assert_exact(settings, exp, isolated_runtime.policy.version)


def test_two_workers_one_stopped_mid_run_is_exact(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings = isolated_runtime.settings
    messages, exp = _fleet(isolated_runtime, 6000, seed=31)
    app_id = f"hito-scale-{uuid.uuid4().hex[:6]}"
    a = WorkerProcess.start(settings, app_id, PORTS[0], tmp_path / "a.log")
    b = WorkerProcess.start(settings, app_id, PORTS[1], tmp_path / "b.log")
    try:
        a.wait_ready()
        b.wait_ready()
        sender = _send_in_background(settings, messages, rate=1500)
        deadline = time.monotonic() + 30
        while a.metric("hito_events_total") + b.metric("hito_events_total") < 2000:
            assert time.monotonic() < deadline, a.log_tail() + b.log_tail()
            time.sleep(0.1)
        # Both took part before one leaves: the work was shared through partitions.
        assert a.metric("hito_events_total") > 0 and b.metric("hito_events_total") > 0
        b.stop()
        sender.join(timeout=60)
        _wait_for_influx(settings, exp, timeout_s=120)
        assert a.alive() and a.crashes() == 0, a.log_tail()
    finally:
        a.stop()
        b.stop()
    assert_exact(settings, exp, isolated_runtime.policy.version)


def make_runner_quiet() -> Any:
    from rich.console import Console

    return make_runner(Console(quiet=True))
