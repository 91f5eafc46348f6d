"""The naive pipeline a user might write by hand: one kafka-python loop, one event at a time.

For each raw record: Hito's ``validate`` stage, a dict of per-device dedup states (Hito's pure
``dedup.observe``), Hito's ``anonymise`` stage, then one point per event written to InfluxDB
with a synchronous ``write_api`` (the write returns once InfluxDB acknowledged it). Rejected
events and duplicates are skipped (no DLQ). Time-boxed: it stops after ``max_s`` seconds of
work or when every record was handled, and reports what it did.

Each point: measurement = source, tags ``site`` and ``device_id`` (a clean event keeps it),
field ``n`` = 1 plus the clean payload's fields (pseudonym lists joined), time = the clean
event time plus ``seq`` nanoseconds, so points of one device never overwrite each other.

Runs as ``python -m bench.baselines.naive CONFIG_JSON`` (HITO_PIPELINE and
HITO_INFLUXDB__BUCKET in the environment) and writes its counters to ``stats_path``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from kafka import KafkaConsumer

from hito.bench.cpu import own_cpu_s
from hito.credentials import client_config
from hito.pipeline.stages import anonymise, dedup, validate
from hito.runtime import limits_of, load_runtime
from hito.schemas.clean import CleanEvent
from hito.settings import load_settings


def to_point(clean: CleanEvent) -> Point:
    point = (
        Point(clean.source)  # type: ignore[no-untyped-call]
        .tag("site", clean.site)
        .tag("device_id", clean.device_id)
        .field("n", 1)
    )
    for name, value in clean.payload.items():
        if value is None:
            continue
        point = point.field(name, ",".join(value) if isinstance(value, list) else value)
    ns = int(clean.event_time.timestamp()) * 1_000_000_000 + clean.seq % 1_000_000_000
    return point.time(ns, WritePrecision.NS)  # type: ignore[no-any-return]


def run(group: str, expected: int, max_s: float, token: str) -> dict[str, Any]:
    settings = load_settings()
    runtime = load_runtime(settings)
    p, i = settings.pipeline, settings.influxdb
    source_of = {topic: src for src, topic in p.raw_topics.items()}
    consumer = KafkaConsumer(
        *p.raw_topics.values(),
        group_id=group,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(max_s * 1000),
        **client_config(settings.kafka, "pipeline"),
    )
    client = InfluxDBClient(url=i.url, token=token, org=i.org, timeout=10_000)
    write_api = client.write_api(write_options=SYNCHRONOUS)
    seqs: dict[str, dedup.SeqState] = {}
    stats: dict[str, Any] = dict.fromkeys(("consumed", "rejected", "duplicates", "points"), 0)
    first_at = last_at = 0.0
    cpu0 = 0.0
    deadline = float("inf")
    try:
        for message in consumer:
            if not first_at:
                first_at = time.time()
                cpu0 = own_cpu_s()
                deadline = time.monotonic() + max_s
            stats["consumed"] += 1
            result = validate.validate(
                message.value,
                registry=runtime.registry,
                limits=limits_of(p),
                now=datetime.now(UTC),
                expected_source=source_of.get(message.topic),
            )
            if isinstance(result, validate.Rejected):
                stats["rejected"] += 1
            else:
                ev = result.event
                state, seen = dedup.observe(seqs.get(ev.device_id), ev.seq, p.dedup_window)
                if seen is dedup.SeqOutcome.NEW:
                    seqs[ev.device_id] = state
                    clean = anonymise.anonymise(ev, runtime.policy, runtime.key_store.lookup).clean
                    write_api.write(bucket=i.bucket, org=i.org, record=to_point(clean))
                    stats["points"] += 1
                else:
                    stats["duplicates"] += 1
            last_at = time.time()
            if stats["consumed"] >= expected or time.monotonic() > deadline:
                break
        cpu_s = own_cpu_s() - cpu0 if first_at else 0.0  # before the clients close
    finally:
        consumer.close()
        client.close()  # type: ignore[no-untyped-call]
    return {
        **stats,
        "first_at": first_at,
        "last_at": last_at,
        "timed_out": stats["consumed"] < expected,
        "cpu_s": cpu_s,
        "peak_rss_mb": _peak_rss_mb(),
    }


def main() -> None:
    config = json.loads(sys.argv[1])
    stats = run(config["group"], config["expected"], config["max_s"], config["influx_token"])
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
