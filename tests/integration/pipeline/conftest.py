"""A pipeline on the real stack with topics of its own, so tests never see each other's data."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
import pytest
from influxdb_client import InfluxDBClient

from hito.access.influx_tokens import ensure_bucket_tokens
from hito.access.topics import ensure_topics
from hito.credentials import tokens_path
from hito.device.sdk import build_event
from hito.devices import Device
from hito.pipeline.worker import Worker, build_worker, utc_now
from hito.runtime import Runtime
from hito.settings import HitoSettings


@pytest.fixture
def isolated(stack: HitoSettings) -> HitoSettings:
    return make_isolated(stack)


def isolated_env(settings: HitoSettings, **extra: str) -> dict[str, str]:
    """This process's environment with the isolated topics and bucket of ``settings``: what
    a `hito` command run as a subprocess needs to use them (``extra``: more variables)."""
    p = settings.pipeline
    return {
        **os.environ,
        "HITO_PIPELINE__RAW_TOPICS": json.dumps(dict(p.raw_topics)),
        "HITO_PIPELINE__DLQ_TOPIC": p.dlq_topic,
        "HITO_PIPELINE__DLQ_ORIGINALS_TOPIC": p.dlq_originals_topic,
        "HITO_PIPELINE__CLEAN_TOPIC_PREFIX": p.clean_topic_prefix,
        "HITO_INFLUXDB__BUCKET": settings.influxdb.bucket,
        **extra,
    }


def make_isolated(stack: HitoSettings) -> HitoSettings:
    """The stack's settings with topics and a bucket of their own (created here)."""
    run = uuid.uuid4().hex[:8]
    pipeline = stack.pipeline.model_copy(
        update={
            "raw_topics": {
                "checkpoint": f"hito.test-{run}.raw.checkpoint",
                "sensor": f"hito.test-{run}.raw.sensor",
                "drone": f"hito.test-{run}.raw.drone",
            },
            "dlq_topic": f"hito.test-{run}.dlq",
            "dlq_originals_topic": f"hito.test-{run}.dlq.originals",
            "clean_topic_prefix": f"hito.test-{run}.clean.",
            "topic_partitions": 2,
        }
    )
    influx = stack.influxdb.model_copy(update={"bucket": f"hito-test-{run}"})
    with InfluxDBClient(
        url=influx.url, token=influx.admin_token().get_secret_value(), org=influx.org
    ) as client:
        client.buckets_api().create_bucket(bucket_name=influx.bucket, org=influx.org)
    # The workers of this test write with the bucket's own scoped token, as in production.
    tokens = ensure_bucket_tokens(influx, tokens_path(stack))
    influx = influx.model_copy(update={"pipeline_token": tokens["pipeline"]})
    settings = stack.model_copy(update={"pipeline": pipeline, "influxdb": influx})
    ensure_topics(settings)
    return settings


@pytest.fixture
def isolated_runtime(isolated: HitoSettings, runtime: Runtime) -> Runtime:
    return dataclasses.replace(runtime, settings=isolated)


@asynccontextmanager
async def running_worker(
    runtime: Runtime, clock: Callable[[], datetime] = utc_now, app_id: str | None = None
) -> AsyncIterator[Worker]:
    """A worker in this process (its own app id unless ``app_id``: a group, tables and
    changelogs to share with a later worker), stopped cleanly at the end."""
    app_id = app_id or f"hito-test-{uuid.uuid4().hex[:8]}"
    worker = build_worker(runtime, app_id=app_id, clock=clock)
    await worker.app.start()
    try:
        yield worker
    finally:
        await worker.app.stop()
        await worker.sink.close()


def outcomes_of_a_worker(runtime: Runtime, total: int) -> dict[str, float]:
    """Run a worker until it has counted ``total`` events (120 s at most) and a second more;
    its outcomes. Fails if an agent or its consumer crashed on the way (what a poison batch
    did: the worker then counts nothing more, and the wait times out or the crash shows)."""

    async def scenario() -> tuple[dict[str, float], int]:
        async with running_worker(runtime) as worker:
            done = lambda: worker.metrics.total_events() >= total  # noqa: E731
            await wait_until(done, 120, f"{total} events")
            await asyncio.sleep(1)
            crashed = sum(1 for agent in worker.app.agents.values() if agent._crash_reason)
            crashed += getattr(worker.app.consumer, "_crash_reason", None) is not None
            return worker.metrics.events_by_outcome(), crashed

    outcomes, crashed = asyncio.run(scenario())
    assert crashed == 0
    return outcomes


async def wait_until(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not done():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.2)


def query_points(settings: HitoSettings, measurement: str) -> list[dict[str, Any]]:
    """Every point of a measurement in the test's bucket: tags and fields in one dict each."""
    i = settings.influxdb
    flux = (
        f'from(bucket: "{i.bucket}") |> range(start: -24h, stop: 1h) '
        f'|> filter(fn: (r) => r._measurement == "{measurement}") '
        '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
    )
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        tables = client.query_api().query(flux)
    skip = {"result", "table", "_start", "_stop", "_measurement"}
    return [{k: v for k, v in r.values.items() if k not in skip} for t in tables for r in t.records]


def free_port() -> int:
    """An unused loopback port outside the ones Prometheus scrapes (a measured worker must not
    collide with, or be alerted on by, the shared stack)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def signed_crossing(device: Device, seq: int, event_time: datetime) -> bytes:
    """A valid, signed ``checkpoint.crossing/1`` of ``device`` (a test's own document
    number: ``P`` and the seq), as the device would send it."""
    payload = {
        "direction": "entry", "mode": "pedestrian", "lane": "L3",
        "document_type": "passport", "document_number": f"P{seq:08d}",
        "nationality": "PER", "birth_year": 1990, "outcome": "admitted",
        "processing_seconds": 30.0,
    }  # fmt: skip
    return orjson.dumps(
        build_event(
            schema="checkpoint.crossing/1", device_id=device.device_id, site=device.site,
            seq=seq, event_time=event_time, payload=payload, key=device.key,
        )
    )  # fmt: skip
