"""A point written with influxdb-client is read back with a Flux query."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS

from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.sinks.errors import RetryableSinkError
from hito.pipeline.sinks.influx import InfluxSink
from hito.settings import HitoSettings


@pytest.fixture
def client(stack: HitoSettings) -> Iterator[InfluxDBClient]:
    i = stack.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as c:
        yield c


def test_org_and_bucket_were_initialised(client: InfluxDBClient, stack: HitoSettings) -> None:
    bucket = client.buckets_api().find_bucket_by_name(stack.influxdb.bucket)
    assert bucket is not None
    org = client.organizations_api().find_organizations(org=stack.influxdb.org)
    assert [o.name for o in org] == ["hito"]


def test_point_round_trips_through_flux(client: InfluxDBClient, stack: HitoSettings) -> None:
    # A throw-away bucket keeps test points out of the product bucket.
    bucket = client.buckets_api().create_bucket(
        bucket_name=f"hito-test-{uuid.uuid4().hex[:10]}", org=stack.influxdb.org
    )
    try:
        when = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
        point = (
            Point("crossings")
            .tag("site", "chacalluta")
            .tag("direction", "entry")
            .field("count", 42)
            .time(when)
        )
        client.write_api(write_options=SYNCHRONOUS).write(bucket=bucket.name, record=point)
        flux = (
            f'from(bucket: "{bucket.name}") |> range(start: 2026-11-28T00:00:00Z, '
            'stop: 2026-11-29T00:00:00Z) |> filter(fn: (r) => r._measurement == "crossings")'
        )
        records = [r for table in client.query_api().query(flux) for r in table.records]
        assert len(records) == 1
        rec = records[0]
        assert (rec.get_field(), rec.get_value(), rec.get_time()) == ("count", 42, when)
        assert (rec.values["site"], rec.values["direction"]) == ("chacalluta", "entry")
    finally:
        client.buckets_api().delete_bucket(bucket)


def test_a_missing_bucket_is_retried_not_dead_lettered(stack: HitoSettings) -> None:
    """The real InfluxDB answers a write to a bucket it lacks with 404. That was a permanent
    refusal: every window published meanwhile was dead-lettered and counted done, lost to the
    bucket once it was made again. It is retryable now (and pages as SinkFailing)."""
    settings = stack.influxdb.model_copy(update={"bucket": f"hito-gone-{uuid.uuid4().hex[:8]}"})
    sink = InfluxSink(settings, PipelineMetrics())
    line = f"crossings,site=chacalluta count=1i {int(datetime.now(UTC).timestamp())}"

    async def scenario() -> str:
        try:
            with pytest.raises(RetryableSinkError) as raised:
                await sink.write([line])
            return str(raised.value)
        finally:
            await sink.close()

    assert "HTTP 404" in asyncio.run(scenario())
    assert not sink.healthy
