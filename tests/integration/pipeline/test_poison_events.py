"""No poison event (issue #18, finding 2): on the real broker, events of 760 KB, 999 KB and
just under the raw topic's max.message.bytes are each rejected as ``oversized`` with DLQ
records that fit the topic, and the valid events the same device sends after each one are
counted; the worker never crashes and its committed offsets pass every record.

Before the DLQ split, the first of these events made a DLQ record (its bytes in base64) larger
than the producer allows: the ingest agent crashed mid-batch on every restart and the
partition never moved past it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from hito.credentials import client_config
from hito.ops.dlq import read_all, read_originals
from hito.runtime import Runtime
from hito.schemas.dlq import MAX_ORIGINAL_BYTES
from hito.settings import HitoSettings
from tests.integration.pipeline.conftest import running_worker, signed_crossing, wait_until

DEVICE = "cl-chacalluta-ckpt-01"
AFTER_EACH = 3  # valid events the device sends after each huge one


def _max_message_bytes(settings: HitoSettings, topic: str) -> int:
    admin = KafkaAdminClient(**client_config(settings.kafka, "admin"))
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        configs = admin.describe_configs([resource], config_filter="all")["topic"][topic]
        return int(configs["max.message.bytes"]["value"])
    finally:
        admin.close()


def test_huge_events_are_dead_lettered_and_the_device_goes_on(isolated_runtime: Runtime) -> None:
    settings, registry = isolated_runtime.settings, isolated_runtime.registry
    device = registry.get(DEVICE)
    assert device is not None
    topic = settings.pipeline.raw_topics["checkpoint"]
    limit = _max_message_bytes(settings, topic)
    # Just under the limit: the record batch around one record adds about 70 bytes.
    sizes = [760_000, 999_000, limit - 200]
    now = datetime.now(UTC)
    seq = 0

    def event(seq: int) -> bytes:
        return signed_crossing(device, seq, now - timedelta(seconds=5))

    records: list[bytes] = []
    for size in sizes:
        valid = event(seq)
        seq += 1
        records.append(valid + b" " * (size - len(valid)))  # valid JSON, too large to read
        for _ in range(AFTER_EACH):
            records.append(event(seq))
            seq += 1
    assert [len(r) for r in records[:: AFTER_EACH + 1]] == sizes

    producer = KafkaProducer(
        **client_config(settings.kafka, "device"),
        acks="all",
        max_request_size=2 * 1024 * 1024,  # the device may send what the topic takes
    )
    for value in records:
        producer.send(topic, key=DEVICE.encode(), value=value).get(timeout=30)
    producer.close()

    async def scenario() -> tuple[dict[str, float], int]:
        async with running_worker(isolated_runtime) as worker:
            await wait_until(
                lambda: worker.metrics.total_events() >= len(records), 120, "every record"
            )
            await asyncio.sleep(2)
            crashed = sum(1 for agent in worker.app.agents.values() if agent._crash_reason)
            return worker.metrics.events_by_outcome(), crashed

    outcomes, crashed = asyncio.run(scenario())
    assert crashed == 0
    assert outcomes == {"accepted": len(sizes) * AFTER_EACH, "rejected": len(sizes)}
    dlq = [e.record for e in read_all(settings)]
    assert Counter(r.reason.value for r in dlq) == {"oversized": len(sizes)}
    # Keyless (the device of an unread event is unknown): spread over partitions.
    assert sorted(r.original_bytes for r in dlq) == sizes
    assert all(r.device_id is None for r in dlq)  # never parsed: the device is not trusted
    originals = [e.record for e in read_originals(settings)]
    assert sorted((o.original_bytes, o.cut) for o in originals) == [(s, True) for s in sizes]
    assert all(len(o.original) == MAX_ORIGINAL_BYTES for o in originals)
