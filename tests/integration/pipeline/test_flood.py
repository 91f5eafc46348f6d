"""One device floods its raw topic; the other devices keep being processed. Measured, not assumed.

Events are keyed by ``device_id``, so a device's flood lands on one partition. The worker fetches
every partition it owns in turn (512 KiB each) and lets at most 1,024 fetched events wait for
an agent, so devices on the other partitions wait for about a second's work whatever the
flood's size; devices that share the flooder's partition wait behind a flood that is already in
Kafka (a partition keeps its order). The first test measures both and asserts the first. The
second gives the flooder a Kafka user of its own with a produce quota, as a deployment gives
each device (docs/security.md): the broker then holds the flood back at the source, and the
devices on its partition are served like the others. Both with exact counts.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import yaml
from kafka import KafkaProducer
from kafka.admin import (
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ResourcePatternFilter,
    ResourceType,
    UserScramCredentialDeletion,
)
from kafka.admin import ACLResourcePatternType as PatternType
from kafka.errors import NoError
from kafka.partitioner.default import murmur2

from hito.access.kafka import admin_client, apply_quotas, upsert_users
from hito.access.topics import ensure_topics
from hito.credentials import MECHANISM, client_config
from hito.device.sdk import build_event, encode
from hito.devices import DeviceRegistry
from hito.runtime import Runtime
from hito.settings import HitoSettings
from hito.settings.sections import KafkaSettings
from hito.stack.worker_process import WorkerProcess
from tests.integration.pipeline.conftest import free_port
from tests.integration.pipeline.test_late_events import PAYLOAD

log = logging.getLogger(__name__)
FLOOD = 90_000
VICTIM_PERIOD_S = 0.25
QUOTA_BYTES_PER_S = 16_384  # `hito kafka users-file --per-device`'s default
QUOTA_FLOOD_S = 10.0
FORGED_KEY = b"\x00" * 32  # a hostile or broken device: every event fails its signature


def _partition(device_id: str, partitions: int) -> int:
    return int(murmur2(device_id.encode()) & 0x7FFFFFFF) % partitions


def _neighbours(registry: DeviceRegistry, parts: int) -> tuple[str, list[str], list[str]]:
    """A flooding checkpoint terminal, the terminals on its partition, those on the others."""
    checkpoints = sorted(d.device_id for d in registry.devices.values() if d.kind == "checkpoint")
    flooder = next(
        d
        for d in checkpoints
        if any(_partition(o, parts) == _partition(d, parts) for o in checkpoints if o != d)
        and any(_partition(o, parts) != _partition(d, parts) for o in checkpoints)
    )
    same = [
        d
        for d in checkpoints
        if d != flooder and _partition(d, parts) == _partition(flooder, parts)
    ]
    other = [d for d in checkpoints if _partition(d, parts) != _partition(flooder, parts)]
    return flooder, same, other


def _forged(registry: DeviceRegistry, flooder: str, seq: int) -> bytes:
    site = registry.get(flooder).site  # type: ignore[union-attr]
    return encode(build_event(schema="checkpoint.crossing/1", device_id=flooder, site=site,
                              seq=seq, event_time=datetime.now(UTC), payload=PAYLOAD,
                              key=FORGED_KEY))  # fmt: skip


class Victims:
    """Registered terminals sending valid events every ``VICTIM_PERIOD_S``, in a thread, and
    their worst lag as the worker reports it (now - its newest processed event time)."""

    def __init__(self, settings: HitoSettings, registry: DeviceRegistry, devices: list[str]):
        self.settings, self.registry = settings, registry
        self.sent = dict.fromkeys(devices, 0)
        self.max_lag = dict.fromkeys(devices, 0.0)
        self.first_sent: list[float] = []  # when their first events were on the broker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        config = client_config(self.settings.kafka, "device")
        producer = KafkaProducer(**config, acks="all", linger_ms=0)
        topic = self.settings.pipeline.raw_topics["checkpoint"]
        seq = 0
        while not self._stop.is_set():
            for device_id in self.sent:
                device = self.registry.get(device_id)
                assert device is not None
                ev = build_event(schema="checkpoint.crossing/1", device_id=device_id,
                                 site=device.site, seq=seq, event_time=datetime.now(UTC),
                                 payload=PAYLOAD, key=device.key)  # fmt: skip
                producer.send(topic, key=device_id.encode(), value=encode(ev))
                self.sent[device_id] += 1
            producer.flush()
            if not self.first_sent:
                self.first_sent.append(time.time())
            seq += 1
            time.sleep(VICTIM_PERIOD_S)
        producer.close()

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.first_sent:
            assert self._thread.is_alive() and time.monotonic() < deadline, "victims never sent"
            time.sleep(0.01)

    def observe(self, worker: WorkerProcess) -> None:
        seen = worker.metric_by("hito_device_last_seen_seconds", "device_id")
        at = time.time()
        for d in self.max_lag:
            self.max_lag[d] = max(self.max_lag[d], at - seen.get(d, self.first_sent[0]))

    def lags(self, devices: list[str]) -> dict[str, float]:
        return {d: round(self.max_lag[d], 2) for d in devices}

    def stop(self) -> int:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        return sum(self.sent.values())


def _settle(worker: WorkerProcess, events: int) -> tuple[float, float, float | None]:
    """Waits until the worker handled ``events``; (events, DLQ, accepted) as it counted them."""
    deadline = time.monotonic() + 120
    while worker.metric("hito_events_total") < events:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.2)
    time.sleep(1)
    accepted = worker.metric_by("hito_events_total", "outcome").get("accepted")
    return worker.metric("hito_events_total"), worker.metric("hito_dlq_total"), accepted


def test_a_flood_from_one_device_does_not_starve_other_partitions(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings, registry = isolated_runtime.settings, isolated_runtime.registry
    topic = settings.pipeline.raw_topics["checkpoint"]
    flooder, same, other = _neighbours(registry, settings.pipeline.topic_partitions)
    flood = [_forged(registry, flooder, i) for i in range(FLOOD)]
    # The whole flood is in Kafka before the worker starts and the others send anything: the
    # worst case for them, and no producer thread here competes with theirs while their lag
    # is measured. (Produced while the worker ran, it was mostly handled by the time the
    # victims sent: a worker about as fast as kafka-python's producer left the same-partition
    # victims too little flood to wait behind for the comparison below to mean anything.)
    producer = KafkaProducer(**client_config(settings.kafka, "device"), acks=1, linger_ms=20)
    for value in flood:
        producer.send(topic, key=flooder.encode(), value=value)
    producer.flush()
    producer.close()
    worker = WorkerProcess.start(
        settings, f"hito-flood-{uuid.uuid4().hex[:6]}", free_port(), tmp_path / "worker.log"
    )
    victims = Victims(settings, registry, same + other)
    try:
        worker.wait_ready()
        flood_started = time.time()  # the drain starts with the worker
        victims.start()
        while worker.metric("hito_dlq_total") < FLOOD:
            assert time.time() - flood_started < 300, "flood not drained in 300 s"
            victims.observe(worker)
            time.sleep(0.1)
        drained_s = time.time() - flood_started
        victims_total = victims.stop()
        events, dlq, accepted = _settle(worker, FLOOD + victims_total)
    finally:
        victims.stop()
        worker.stop()

    max_lag = victims.max_lag
    report = {
        "flood_events": FLOOD,
        "flood_drained_s": round(drained_s, 2),
        "flood_rate_per_s": round(FLOOD / drained_s),
        "victims_other_partition": victims.lags(other),
        "victims_same_partition": victims.lags(same),
        "victim_events": victims_total,
    }
    log.warning("flood fairness: %s", json.dumps(report))
    (tmp_path / "flood-fairness.json").write_text(json.dumps(report, indent=2))
    # Exact accounting: every victim event accepted, every forged one rejected, nothing else.
    assert (events, dlq) == (FLOOD + victims_total, FLOOD)
    assert accepted == victims_total
    # Relative, so independent of the machine's load: the drain time and the other partitions'
    # lag both scale with the worker's rate, and their ratio is about the waiting events'
    # share of the flood plus fixed delays (about 0.45 s: the victims' period, the sampling).
    # Measured: 0.9 s of 11 s for 20,000 events (8 %), 0.64 s of 13.1 s for 30,000 (5 %, CI);
    # 0.45 s of 9.2-9.4 s for 90,000 with the whole flood waiting when the worker starts
    # (2026-12-05), the same-partition victims then 9 s behind. Before the bounded wait it
    # grew with the flood: 13-22 % of the drain (issue #7). (A faster worker handled 30,000
    # produced while it ran nearly as fast as they came: the same-partition victims had
    # 0.65 s of flood left to wait behind, against a 0.4 s floor, and the test failed.)
    worst_other = max(max_lag[d] for d in other)
    assert worst_other < 0.1 * drained_s, report
    assert worst_other < 0.5 * min(max_lag[d] for d in same), report


@contextmanager
def own_kafka_user(
    settings: HitoSettings, tmp_path: Path, device_id: str
) -> Iterator[tuple[str, KafkaSettings]]:
    """A Kafka user for one device with a produce quota, provisioned as `hito kafka provision`
    does it (credential, quota, ACLs) from a users file that adds it to the stack's; yields its
    name and the Kafka settings with that file; removed afterwards (quota, ACLs, credential),
    each step even if another failed."""
    name = f"hito-device-{device_id}-{uuid.uuid4().hex[:6]}"
    users = yaml.safe_load(settings.kafka.users_path().read_text())["users"]
    own = {"name": name, "role": "device", "password": f"test-{secrets.token_urlsafe(16)}"}
    users_file = tmp_path / "kafka-users.yaml"
    users_file.write_text(
        yaml.safe_dump({"users": [*users, {**own, "produce_byte_rate": QUOTA_BYTES_PER_S}]})
    )
    kafka = settings.kafka.model_copy(update={"users_file": users_file})
    admin = admin_client(settings.kafka)
    try:
        upsert_users(kafka, admin)
        apply_quotas(kafka, admin)
        ensure_topics(settings.model_copy(update={"kafka": kafka}))  # its ACLs
        yield name, kafka
    finally:
        try:
            users_file.write_text(yaml.safe_dump({"users": [*users, own]}))  # no quota: removed
            apply_quotas(kafka, admin)
        finally:
            try:
                any_resource = ResourcePatternFilter(ResourceType.ANY, None, PatternType.ANY)
                everything = ACLFilter(
                    f"User:{name}", "*", ACLOperation.ANY, ACLPermissionType.ANY, any_resource
                )
                [(_, _, error)] = admin.delete_acls([everything])
                assert error is NoError, error
                deleted = admin.alter_user_scram_credentials(
                    [UserScramCredentialDeletion(name, MECHANISM)]
                )
                assert deleted == {name: None}, deleted
            finally:
                admin.close()


def test_a_device_with_its_own_quota_cannot_flood_its_partition(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings, registry = isolated_runtime.settings, isolated_runtime.registry
    topic = settings.pipeline.raw_topics["checkpoint"]
    flooder, same, other = _neighbours(registry, settings.pipeline.topic_partitions)
    victims = Victims(settings, registry, same + other)
    forged = [_forged(registry, flooder, i) for i in range(2_000)]  # each one a DLQ record
    flooded: list[int] = []  # sizes of the forged events the broker acknowledged
    with own_kafka_user(settings, tmp_path, flooder) as (user, kafka):
        worker = WorkerProcess.start(
            settings, f"hito-quota-{uuid.uuid4().hex[:6]}", free_port(), tmp_path / "worker.log"
        )
        try:
            worker.wait_ready()
            victims.start()
            # Flat out for QUOTA_FLOOD_S, as fast as the broker takes it (unthrottled: several
            # thousand events/s, faster than the worker disposes of them). kafka-python has no
            # bound on what it buffers: at most 256 events wait for their acknowledgement.
            producer = KafkaProducer(
                **client_config(kafka, "device", user=user), acks=1, linger_ms=20
            )
            pending: deque[tuple[int, object]] = deque()
            started, seq = time.time(), 0
            observed = started
            while time.time() - started < QUOTA_FLOOD_S:
                if len(pending) >= 256:
                    size, future = pending.popleft()
                    future.get(timeout=60)  # type: ignore[attr-defined]
                    flooded.append(size)
                    if time.time() - observed > 0.1:  # a scrape costs ~10 ms: not per event
                        victims.observe(worker)
                        observed = time.time()
                    continue
                value = forged[seq % len(forged)]
                pending.append(
                    (len(value), producer.send(topic, key=flooder.encode(), value=value))
                )
                seq += 1
            for size, future in pending:
                future.get(timeout=60)  # type: ignore[attr-defined]
                flooded.append(size)
            flood_s = time.time() - started
            producer.close()
            while worker.metric("hito_dlq_total") < len(flooded):
                assert time.time() - started < 120, worker.log_tail()
                victims.observe(worker)
                time.sleep(0.1)
            victims_total = victims.stop()
            events, dlq, accepted = _settle(worker, len(flooded) + victims_total)
        finally:
            victims.stop()
            worker.stop()

    max_lag = victims.max_lag
    report = {
        "quota_bytes_per_s": QUOTA_BYTES_PER_S,
        "flood_s": round(flood_s, 2),
        "flood_events": len(flooded),
        "flood_bytes_per_s": round(sum(flooded) / flood_s),
        "victims_other_partition": victims.lags(other),
        "victims_same_partition": victims.lags(same),
        "victim_events": victims_total,
    }
    log.warning("flood with a quota: %s", json.dumps(report))
    (tmp_path / "flood-quota.json").write_text(json.dumps(report, indent=2))
    assert (events, dlq) == (len(flooded) + victims_total, len(flooded))
    assert accepted == victims_total
    # The broker held the flooder to its quota. It throttles after the fact (the first requests,
    # up to the 256 events in flight, pass before the rate is known), hence twice the quota;
    # measured 1.3x with the quota, 130x (2 MB/s) with the quota removed by hand.
    assert sum(flooded) <= 2 * QUOTA_BYTES_PER_S * flood_s, report
    # Unthrottled, the same loop puts thousands of events a second into Kafka, and the devices
    # on its partition wait for their disposal (the test above: seconds). Throttled, they are
    # served like those on the other partition.
    worst_same = max(max_lag[d] for d in same)
    assert worst_same < 2.0, report
