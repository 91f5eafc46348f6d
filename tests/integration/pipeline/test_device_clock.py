"""A device whose clock runs hours ahead reaches the DLQ as ``clock_skew``, on the real broker.

Kafka 4 refuses a record stamped more than an hour in the future
(``message.timestamp.after.max.ms``, 1 h by default since Kafka 4.0, KIP-1030), and a
kafka-python producer stamps records with the device's clock. Before the data topics were
stamped by the broker (``message.timestamp.type=LogAppendTime``), every send of such a device
failed with ``InvalidTimestampError``: its outbox retried for ever, nothing reached the pipeline,
and the device maker never got the reason the contract promises (only ``DeviceSilent``, hours
later). Now the broker takes the record, and the pipeline's own clock check rejects it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from hito.credentials import client_config
from hito.ops.dlq import read_all
from hito.runtime import Runtime
from tests.integration.pipeline.conftest import running_worker, signed_crossing, wait_until

DEVICE = "cl-chacalluta-ckpt-01"
AHEAD = timedelta(hours=2)


def test_a_device_clock_hours_ahead_is_dead_lettered_not_refused(
    isolated_runtime: Runtime,
) -> None:
    settings, registry = isolated_runtime.settings, isolated_runtime.registry
    device = registry.get(DEVICE)
    assert device is not None
    topic = settings.pipeline.raw_topics["checkpoint"]
    admin = KafkaAdminClient(**client_config(settings.kafka, "admin"))
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        live = admin.describe_configs([resource], config_filter="all")["topic"][topic]
    finally:
        admin.close()
    assert live["message.timestamp.type"]["value"] == "LogAppendTime"

    producer = KafkaProducer(**client_config(settings.kafka, "device"), acks="all")
    stamped: list[int] = []
    try:
        for seq in range(4):
            # Two events from the clock 2 h ahead, then two once NTP has set it right.
            clock = datetime.now(UTC) + (AHEAD if seq < 2 else timedelta(0))
            sent = producer.send(
                topic,
                key=DEVICE.encode(),
                value=signed_crossing(device, seq, clock),
                timestamp_ms=int(clock.timestamp() * 1000),  # what kafka-python would stamp
            ).get(timeout=30)  # InvalidTimestampError before: the broker refused the record
            stamped.append(sent.timestamp)
    finally:
        producer.close()
    # The broker's time, not the device's: the raw zone's 24 h count from arrival.
    assert all(abs(ms / 1000 - time.time()) < 120 for ms in stamped), stamped

    async def scenario() -> dict[str, float]:
        async with running_worker(isolated_runtime) as worker:
            await wait_until(lambda: worker.metrics.total_events() >= 4, 120, "every record")
            await asyncio.sleep(1)
            return worker.metrics.events_by_outcome()

    assert asyncio.run(scenario()) == {"accepted": 2, "rejected": 2}
    dlq = [e.record for e in read_all(settings)]
    assert Counter(r.reason.value for r in dlq) == {"clock_skew": 2}
    assert all(r.device_id == DEVICE and r.stage == "validate" for r in dlq)
    assert all("in the future (under a day)" in r.detail for r in dlq), [r.detail for r in dlq]
