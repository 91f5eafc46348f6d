"""One device floods its raw topic; the other devices keep being processed. Measured, not assumed.

Events are keyed by ``device_id``, so a device's flood lands on one partition. The worker fetches
every partition it owns in turn (512 KiB each) and lets at most 1,024 fetched events wait for
an agent, so devices on the other partitions wait for about a second's work whatever the
flood's size; devices that share the flooder's partition wait behind it (Kafka keeps a
partition's order). The test measures both and asserts the first, with exact counts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from streams.kafka_security import client_config
from streams.runtime import Runtime
from streams.sdk import build_event, encode
from streams.stack.worker_process import WorkerProcess
from tests.integration.pipeline.conftest import free_port
from tests.integration.pipeline.test_late_events import PAYLOAD

log = logging.getLogger(__name__)
FLOOD = 30_000
VICTIM_PERIOD_S = 0.25


def _partition(device_id: str, partitions: int) -> int:
    return int(murmur2(device_id.encode()) & 0x7FFFFFFF) % partitions


def test_a_flood_from_one_device_does_not_starve_other_partitions(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings, registry = isolated_runtime.settings, isolated_runtime.registry
    parts = settings.pipeline.topic_partitions
    topic = settings.pipeline.raw_topics["checkpoint"]
    checkpoints = sorted(d.device_id for d in registry.devices.values() if d.kind == "checkpoint")
    # A flooder with neighbours on its own partition and on another one.
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
    site = registry.get(flooder).site  # type: ignore[union-attr]
    forged_key = b"\x00" * 32  # a hostile or broken device: every event fails its signature
    now = datetime.now(UTC)
    flood = [
        encode(build_event(schema="checkpoint.crossing/1", device_id=flooder, site=site, seq=i,
                           event_time=now, payload=PAYLOAD, key=forged_key))
        for i in range(FLOOD)
    ]  # fmt: skip

    worker = WorkerProcess.start(
        settings, f"hito-flood-{uuid.uuid4().hex[:6]}", free_port(), tmp_path / "worker.log"
    )
    sent_by_victim = dict.fromkeys(same + other, 0)
    first_sent: list[float] = []  # when the victims' first events were on the broker
    stop = threading.Event()

    def victims() -> None:
        producer = KafkaProducer(**client_config(settings.kafka, "device"), acks="all", linger_ms=0)
        seq = 0
        while not stop.is_set():
            for device_id in sent_by_victim:
                device = registry.get(device_id)
                assert device is not None
                ev = build_event(schema="checkpoint.crossing/1", device_id=device_id,
                                 site=device.site, seq=seq, event_time=datetime.now(UTC),
                                 payload=PAYLOAD, key=device.key)  # fmt: skip
                producer.send(topic, key=device_id.encode(), value=encode(ev))
                sent_by_victim[device_id] += 1
            producer.flush()
            if not first_sent:
                first_sent.append(time.time())
            seq += 1
            time.sleep(VICTIM_PERIOD_S)
        producer.close()

    try:
        worker.wait_ready()
        # The whole flood is in Kafka before the others send anything: the worst case for them,
        # and no producer thread here competes with theirs while their lag is measured.
        producer = KafkaProducer(**client_config(settings.kafka, "device"), acks=1, linger_ms=20)
        flood_started = time.time()
        for value in flood:
            producer.send(topic, key=flooder.encode(), value=value)
        producer.flush()
        producer.close()
        sender = threading.Thread(target=victims, daemon=True)
        sender.start()
        while not first_sent:
            time.sleep(0.01)
        max_lag = {d: 0.0 for d in sent_by_victim}
        while worker.metric("hito_dlq_total") < FLOOD:
            assert time.time() - flood_started < 300, "flood not drained in 300 s"
            seen, at = worker.metric_by("hito_device_last_seen_seconds", "device_id"), time.time()
            for d in max_lag:
                max_lag[d] = max(max_lag[d], at - seen.get(d, first_sent[0]))
            time.sleep(0.1)
        drained_s = time.time() - flood_started
        stop.set()
        sender.join(timeout=30)
        victims_total = sum(sent_by_victim.values())
        deadline = time.monotonic() + 120
        while worker.metric("hito_events_total") < FLOOD + victims_total:
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.2)
        time.sleep(1)
        accepted = worker.metric_by("hito_events_total", "outcome").get("accepted")
        totals = worker.metric("hito_events_total"), worker.metric("hito_dlq_total")
    finally:
        stop.set()
        worker.stop()

    report = {
        "flood_events": FLOOD,
        "flood_drained_s": round(drained_s, 2),
        "flood_rate_per_s": round(FLOOD / drained_s),
        "victims_other_partition": {d: round(max_lag[d], 2) for d in other},
        "victims_same_partition": {d: round(max_lag[d], 2) for d in same},
        "victim_events": victims_total,
    }
    log.warning("flood fairness: %s", json.dumps(report))
    (tmp_path / "flood-fairness.json").write_text(json.dumps(report, indent=2))
    # Exact accounting: every victim event accepted, every forged one rejected, nothing else.
    assert totals == (FLOOD + victims_total, FLOOD)
    assert accepted == victims_total
    # Relative, so independent of the machine's load: the drain time and the other partitions'
    # lag both scale with the worker's rate, and their ratio is about the waiting events'
    # share of the flood (1,024 of 30,000) plus fixed delays. Measured: 0.9 s of 11 s for
    # 20,000 events (8 %), 1.7 s of 24 s for 60,000 (7 %). Before the bounded wait it grew
    # with the flood: 13-22 % of the drain (issue #7).
    worst_other = max(max_lag[d] for d in other)
    assert worst_other < 0.1 * drained_s, report
    assert worst_other < 0.5 * min(max_lag[d] for d in same), report
