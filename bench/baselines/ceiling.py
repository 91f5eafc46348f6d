"""The ceiling: an aiokafka consumer that only reads the raw topics (no processing at all).

Same library as Hito's Faust worker, same pipeline credentials. It assigns itself every
partition and seeks to offset 0 (no group, no rebalance), so its time runs from its first fetch
request to the last record. Runs as ``python -m bench.baselines.ceiling CONFIG_JSON``
(HITO_PIPELINE in the environment names the topics) and writes its counters to
``CONFIG_JSON["stats_path"]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from hito.bench.cpu import own_cpu_s
from hito.credentials import client_config
from hito.settings import load_settings


async def consume(expected: int, timeout_s: float) -> dict[str, Any]:
    settings = load_settings()
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, **client_config(settings.kafka, "pipeline")
    )
    count = 0
    size = 0
    first_at = last_at = 0.0
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in settings.pipeline.raw_topics.values()
            for p in range(settings.pipeline.topic_partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        first_at = time.time()
        cpu0 = own_cpu_s()
        while count < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                count += len(records)
                size += sum(len(r.value or b"") for r in records)
            if batches:
                last_at = time.time()
        cpu_s = own_cpu_s() - cpu0  # before the consumer stops
    finally:
        await consumer.stop()
    return {
        "consumed": count,
        "bytes": size,
        "first_at": first_at,
        "last_at": last_at,
        "cpu_s": cpu_s,
        "peak_rss_mb": _peak_rss_mb(),
    }


def main() -> None:
    config = json.loads(sys.argv[1])
    stats = asyncio.run(consume(config["expected"], config["timeout_s"]))
    Path(config["stats_path"]).write_text(json.dumps(stats))


def _peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM). Not ru_maxrss: Linux keeps it across execve,
    so a child started from the (large) harness would report the harness's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    main()
