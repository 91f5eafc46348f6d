"""Devices may compress what they upload (a metered uplink): the broker keeps a batch in the
codec its producer chose, so the worker must read every codec Kafka has. Before cramjam was a
dependency, aiokafka could read gzip only: the first lz4, snappy or zstd batch raised
UnsupportedCodecError inside the fetch, which crashed the worker, and every worker that took
the partition after it (no DLQ record, no reason: the partition never moved again)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from hito.credentials import client_config
from hito.runtime import Runtime
from tests.integration.pipeline.conftest import outcomes_of_a_worker, signed_crossing

DEVICE = "cl-chacalluta-ckpt-01"
CODECS = ("gzip", "snappy", "lz4", "zstd")
PER_CODEC = 25


def test_every_codec_a_device_may_compress_with_is_read(isolated_runtime: Runtime) -> None:
    settings, registry = isolated_runtime.settings, isolated_runtime.registry
    device = registry.get(DEVICE)
    assert device is not None
    topic = settings.pipeline.raw_topics["checkpoint"]
    at = datetime.now(UTC) - timedelta(seconds=5)

    async def upload() -> None:
        for n, codec in enumerate(CODECS):
            producer = AIOKafkaProducer(
                **client_config(settings.kafka, "device"), acks="all", compression_type=codec
            )
            await producer.start()
            try:
                batch = producer.create_batch()
                for i in range(PER_CODEC):
                    seq = n * PER_CODEC + i
                    value = signed_crossing(device, seq, at)
                    assert batch.append(key=DEVICE.encode(), value=value, timestamp=None)
                partitions = sorted(await producer.partitions_for(topic))
                await (await producer.send_batch(batch, topic, partition=partitions[0]))
            finally:
                await producer.stop()

    asyncio.run(upload())
    total = len(CODECS) * PER_CODEC
    assert outcomes_of_a_worker(isolated_runtime, total) == {"accepted": total}
