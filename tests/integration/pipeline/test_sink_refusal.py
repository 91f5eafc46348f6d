"""One window InfluxDB refuses for good no longer takes the rest of its flush to the DLQ.

The refusal is InfluxDB's own: a ``sensor`` field written as a string beforehand (a field's
type is fixed per shard) makes every ``sensor`` point of this shard a type conflict (HTTP 422,
a partial write: InfluxDB keeps the points it could take), while the ``crossings`` points of
the same flush are fine. The publisher narrows the refusal down to the window that holds the
sensor points (hito.pipeline.sinks.errors). Before, a flush with both windows dead-lettered
both (two ``sink_rejected`` records, one for crossings InfluxDB had taken; with HTTP 400,
which keeps nothing, those crossings were lost). The flush interval is long enough here for
both windows to be in the first flush, which the log line checks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from kafka import KafkaProducer

from hito.credentials import client_config
from hito.device.sdk import build_event
from hito.runtime import Runtime
from tests.integration.pipeline.conftest import (
    query_points,
    running_worker,
    signed_crossing,
    wait_until,
)

CHECKPOINT = "cl-chacalluta-ckpt-01"
SENSOR = "sensor-concordia-01"
CROSSINGS = 5


def test_a_refused_window_is_dead_lettered_alone_and_the_others_are_written(
    isolated_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    settings, registry = isolated_runtime.settings, isolated_runtime.registry
    # Both windows are aggregated within 2-3 s of the start: the first flush at 15 s has both.
    pipeline = settings.pipeline.model_copy(update={"flush_interval_s": 15.0})
    settings = settings.model_copy(update={"pipeline": pipeline})
    runtime = dataclasses.replace(isolated_runtime, settings=settings)
    checkpoint, sensor = registry.get(CHECKPOINT), registry.get(SENSOR)
    assert checkpoint is not None and sensor is not None
    at = datetime.now(UTC) - timedelta(seconds=5)
    i = settings.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as c:
        conflict = f'sensor,site=elsewhere detections="many" {int(at.timestamp())}'
        c.write_api(write_options=SYNCHRONOUS).write(i.bucket, i.org, conflict, "s")
    producer = KafkaProducer(**client_config(settings.kafka, "device"), acks="all")
    try:
        for seq in range(CROSSINGS):
            value = signed_crossing(checkpoint, seq, at)
            producer.send(settings.pipeline.raw_topics["checkpoint"], value, CHECKPOINT.encode())
        reading = {
            "sensor_type": "ground", "lat": -18.3525, "lon": -70.379,
            "detections": 2, "battery_pct": 80.0,
        }  # fmt: skip
        event = build_event(
            schema="sensor.reading/1", device_id=SENSOR, site=sensor.site, seq=0,
            event_time=at, payload=reading, key=sensor.key,
        )  # fmt: skip
        producer.send(settings.pipeline.raw_topics["sensor"], orjson.dumps(event), SENSOR.encode())
        producer.flush(30)
    finally:
        producer.close(10)

    def crossings() -> int:
        return sum(int(p.get("count", 0)) for p in query_points(settings, "crossings"))

    async def scenario() -> dict[str, float]:
        async with running_worker(runtime) as worker:
            sink_rejected = lambda: worker.metrics.dlq_by_reason().get("sink_rejected", 0)  # noqa: E731
            await wait_until(lambda: sink_rejected() >= 1, 120, "the refused window")
            await wait_until(lambda: crossings() >= CROSSINGS, 60, "the crossings")
            await asyncio.sleep(2)  # a later flush would show a second refusal here
            return worker.metrics.dlq_by_reason()

    with caplog.at_level(logging.ERROR, logger="hito.pipeline.sinks.errors"):
        dlq = asyncio.run(scenario())
    refusals = [r.getMessage() for r in caplog.records if "InfluxDB refused" in r.getMessage()]
    assert len(refusals) == 1
    assert refusals[0].startswith("InfluxDB refused 1 of 2 groups of 2 windows")
    assert dlq == {"sink_rejected": 1.0}
    assert crossings() == CROSSINGS
    assert [p["site"] for p in query_points(settings, "sensor")] == ["elsewhere"]  # ours only
