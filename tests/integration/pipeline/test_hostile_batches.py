"""A device may send a Kafka header key that is not UTF-8: the broker keeps it (Java decodes
leniently), and aiokafka 0.14 raised ``UnicodeDecodeError`` on every fetch of the partition,
which crashed the worker and every worker that took the partition after it. Now the partition
is read on (hito.pipeline.faust.header_keys); ingest ignores a raw record's headers, so each
event is judged on its own bytes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from kafka import KafkaProducer

from hito.credentials import client_config
from hito.runtime import Runtime
from tests.integration.pipeline.conftest import running_worker, signed_crossing, wait_until

DEVICE = "cl-chacalluta-ckpt-01"
PER_BATCH = 10
HOSTILE = {3, 17}  # seqs whose record carries a header key that is not UTF-8


class _NotUtf8(str):
    """kafka-python encodes a header key with ``key.encode("utf-8")``: this one is not UTF-8."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe" + str(self).encode()


def test_a_header_key_that_is_not_utf8_neither_stops_the_partition_nor_loses_events(
    isolated_runtime: Runtime,
) -> None:
    settings, registry = isolated_runtime.settings, isolated_runtime.registry
    device = registry.get(DEVICE)
    assert device is not None
    topic = settings.pipeline.raw_topics["checkpoint"]
    at = datetime.now(UTC) - timedelta(seconds=5)
    # One uncompressed batch and one gzip batch, each with a hostile record inside it (the
    # broker keeps a compressed batch whole: the worker reads it as the device wrote it).
    for n, codec in enumerate((None, "gzip")):
        producer = KafkaProducer(
            **client_config(settings.kafka, "device"),
            acks="all",
            linger_ms=2000,
            compression_type=codec,
        )
        try:
            for seq in range(n * PER_BATCH, (n + 1) * PER_BATCH):
                headers = [(_NotUtf8("trace") if seq in HOSTILE else "trace", b"1")]
                producer.send(
                    topic,
                    value=signed_crossing(device, seq, at),
                    key=DEVICE.encode(),
                    headers=headers,
                    partition=0,
                )
            producer.flush(30)
        finally:
            producer.close(10)

    async def scenario() -> tuple[dict[str, float], int]:
        async with running_worker(isolated_runtime) as worker:
            total = 2 * PER_BATCH
            await wait_until(lambda: worker.metrics.total_events() >= total, 120, "every event")
            await asyncio.sleep(1)
            crashed = sum(1 for agent in worker.app.agents.values() if agent._crash_reason)
            crashed += getattr(worker.app.consumer, "_crash_reason", None) is not None
            return worker.metrics.events_by_outcome(), crashed

    outcomes, crashed = asyncio.run(scenario())
    assert crashed == 0
    assert outcomes == {"accepted": 2 * PER_BATCH}
