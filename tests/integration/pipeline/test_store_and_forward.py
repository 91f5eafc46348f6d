"""Field conditions (#17), against the real broker, InfluxDB and a worker: a terminal whose
uplink is down keeps its events in its outbox and delivers each exactly once when it is back;
a drone flight log upload killed half-way and run again counts every fix once. Both are
checked at ingest (hito_events_total, the clean topics) and in InfluxDB: the hours-old
minutes are revised exactly (the backfill, docs/aggregation.md), small cells suppressed in
the final counts, and each revised minute marked in the ``revisions`` measurement."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from hito.credentials import client_config
from hito.device.kafka_client import kafka_producer
from hito.device.sdk import DeviceClient
from hito.device.sender import Producer, SenderConfig
from hito.device.simulate.flight_log import flight_fixes, write_flight_log
from hito.pipeline.stages.windows import format_start, window_start
from hito.runtime import Runtime
from hito.settings import HitoSettings
from tests.integration.pipeline.conftest import (
    free_port,
    query_points,
    running_worker,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[3]


def crossing(i: int) -> dict[str, Any]:
    return {
        "direction": "entry" if i % 3 else "exit",
        "mode": "car",
        "lane": f"L{1 + i % 12}",
        "document_type": "passport",
        "document_number": f"TST{i:08d}",
        "nationality": "PER",
        "birth_year": 1980 + i % 30,
        "outcome": "admitted",
        "processing_seconds": 41.5,
    }


def clean_seqs(settings: HitoSettings, source: str, device_id: str) -> list[int]:
    """The seqs of the device's events on the clean topic, in topic order per partition."""
    topic = f"{settings.pipeline.clean_topic_prefix}{source}"
    consumer = KafkaConsumer(
        **client_config(settings.kafka, "operator"),
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        events = [orjson.loads(m.value) for m in consumer]
    finally:
        consumer.close()
    return [e["seq"] for e in events if e["device_id"] == device_id]


def raw_seqs(settings: HitoSettings, source: str) -> list[int]:
    """The seqs on the raw topic in the order the broker stored them (one device: one
    partition). Raw data: read as the admin."""
    topic = settings.pipeline.raw_topics[source]  # type: ignore[index]
    consumer = KafkaConsumer(
        **client_config(settings.kafka, "admin"),
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return [orjson.loads(m.value)["seq"] for m in consumer]
    finally:
        consumer.close()


def per_minute(points: list[dict[str, Any]], field: str) -> Counter[str]:
    """A field summed per minute over every point (cells, `other` included)."""
    out: Counter[str] = Counter()
    for p in points:
        out[format_start(p["_time"])] += int(p[field])
    return out


def test_an_offline_terminal_keeps_its_events_and_delivers_each_once_when_back(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings, registry = isolated_runtime.settings, isolated_runtime.registry
    device = registry.get("cl-chacalluta-ckpt-01")
    assert device is not None
    online = threading.Event()
    attempts = Counter[str]()
    real = client_config(settings.kafka, "device")
    unreachable = {**real, "bootstrap_servers": f"127.0.0.1:{free_port()}"}

    def connect() -> Producer:
        # The uplink: down (a port nobody listens on, kafka-python's own failure), then up.
        attempts["online" if online.is_set() else "offline"] += 1
        if online.is_set():
            return kafka_producer(real)
        return kafka_producer(unreachable | {"bootstrap_timeout_ms": 500})

    count = 240  # two hours of one lane, one crossing every 30 s
    outage_start = datetime.now(UTC) - timedelta(hours=2)
    client = DeviceClient(
        device_id=device.device_id,
        site=device.site,
        key=device.key,
        state_dir=tmp_path / "terminal",
        producer_factory=connect,
        topic_for_source=dict(settings.pipeline.raw_topics),
        sender=SenderConfig(backoff_min_s=0.2, backoff_max_s=1.0),
    )

    async def scenario() -> dict[str, float]:
        async with running_worker(isolated_runtime) as worker:
            for i in range(count):
                when = outage_start + timedelta(seconds=30 * i)
                assert client.send("checkpoint.crossing/1", crossing(i), event_time=when) == i
            await wait_until(lambda: attempts["offline"] >= 3, 60, "three failed connects")
            status = client.status()
            assert status.outbox.pending_events == count
            assert "Unable to bootstrap" in (status.sender.last_error or "")
            assert worker.metrics.total_events() == 0
            online.set()  # the uplink is back
            await asyncio.to_thread(client.flush, 120)
            await wait_until(lambda: worker.metrics.total_events() >= count, 90, "the backlog")
            await wait_until(
                lambda: per_minute(query_points(settings, "crossings"), "count") == expected,
                60,
                "every minute of the two hours in InfluxDB",
            )
            await asyncio.sleep(2)  # nothing more arrives
            return worker.metrics.events_by_outcome()

    when = [outage_start + timedelta(seconds=30 * i) for i in range(count)]
    expected = Counter(format_start(window_start(t, 60)) for t in when)
    try:
        assert asyncio.run(scenario()) == {"accepted": count}
    finally:
        client.close()
    assert client.status().outbox.pending_events == 0
    assert raw_seqs(settings, "checkpoint") == list(range(count))  # delivered in order
    assert sorted(clean_seqs(settings, "checkpoint", device.device_id)) == list(range(count))
    # Exact per minute, and suppressed: two people a minute are a cell under k, published
    # only inside `other`.
    crossings = query_points(settings, "crossings")
    assert per_minute(crossings, "count") == expected
    assert sum(expected.values()) == count
    k = isolated_runtime.policy.small_count_k
    assert all(p["mode"] == "other" or int(p["count"]) >= k for p in crossings)
    # Every minute that had closed beyond the lateness when the backlog came is marked.
    revised = per_minute(query_points(settings, "revisions"), "events")
    old = {m: n for m, n in expected.items() if m < format_start(outage_start + timedelta(hours=1))}
    assert {m: revised[m] for m in old} == old
    assert set(revised) <= set(expected)
    assert sum(revised.values()) >= count - 14  # at most the last seven minutes were live


def test_a_flight_log_upload_killed_half_way_and_run_again_counts_every_fix_once(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings = isolated_runtime.settings
    device_id = "drone-gs-cl-01"
    landed = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    fixes = flight_fixes(
        site="sector-concordia",
        flight_id="F-IT-01",
        takeoff=landed - timedelta(minutes=40),
        interval_s=5.0,
    )
    assert len(fixes) == 481
    log = tmp_path / "flight.jsonl"
    write_flight_log(log, fixes)
    state = tmp_path / "ground-station"
    env = {
        **os.environ,
        "HITO_PIPELINE__RAW_TOPICS": orjson.dumps(settings.pipeline.raw_topics).decode(),
    }
    killed_after = 200

    def upload(*cmd: str) -> subprocess.CompletedProcess[str]:
        args = [str(log), "--device", device_id, "--state-dir", str(state)]
        return subprocess.run(
            [sys.executable, "-m", *cmd, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    async def scenario() -> tuple[dict[str, float], list[str]]:
        async with running_worker(isolated_runtime) as worker:
            first = await asyncio.to_thread(
                upload,
                "tests.integration.pipeline.upload_child",
                "--kill-after",
                str(killed_after),
            )
            assert first.returncode == -9, first.stderr
            await wait_until(
                lambda: worker.metrics.total_events() >= killed_after, 60, "the first part"
            )
            # Run again, with the command: nothing new to queue; the outbox re-sends all of it.
            again = await asyncio.to_thread(upload, "hito.cli", "device", "upload-log")
            assert again.returncode == 0, again.stderr
            total = len(fixes) + killed_after
            await wait_until(lambda: worker.metrics.total_events() >= total, 60, "the rest")
            third = await asyncio.to_thread(upload, "hito.cli", "device", "upload-log")
            assert third.returncode == 0, third.stderr
            await asyncio.sleep(2)
            return worker.metrics.events_by_outcome(), [again.stdout, third.stdout]

    outcomes, outputs = asyncio.run(scenario())
    # Every fix accepted once; the 200 the broker had before the kill came again as duplicates.
    assert outcomes == {"accepted": 481, "duplicate": killed_after}
    # The drone measurement of the flight's minutes, an hour after landing: exact.
    fix_times = [datetime.fromisoformat(f["fix_time"]) for f in fixes]
    fixes_per_minute = Counter(format_start(window_start(t, 60)) for t in fix_times)
    detections: Counter[str] = Counter()
    for f, t in zip(fixes, fix_times, strict=True):
        detections[format_start(window_start(t, 60))] += int(f["detections"])

    def drone_exact() -> bool:
        points = query_points(settings, "drone")
        return (per_minute(points, "fixes"), per_minute(points, "detections")) == (
            fixes_per_minute,
            detections,
        )

    asyncio.run(wait_until(drone_exact, 60, "the flight's minutes in InfluxDB"))
    assert sum(fixes_per_minute.values()) == 481
    revised = per_minute(query_points(settings, "revisions"), "events")
    assert revised == fixes_per_minute  # the whole flight closed an hour ago
    for out in outputs:
        assert "481 fixes: none new, 481 queued before" in " ".join(out.split())
        assert "delivered" in out
    assert sorted(clean_seqs(settings, "drone", device_id)) == list(range(481))
