"""Scoped InfluxDB tokens on the real server: the pipeline token reads and writes its bucket and
nothing else; the dashboards token only reads. Each refusal is paired with an allowed call."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from hito.access.influx_tokens import ensure_bucket_tokens
from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.sinks.errors import RetryableSinkError
from hito.pipeline.sinks.influx import InfluxSink
from hito.settings import HitoSettings
from hito.settings.sections import InfluxSettings


@pytest.fixture
def buckets(stack: HitoSettings) -> Iterator[tuple[InfluxSettings, str]]:
    """A bucket of its own and a neighbour bucket (both deleted afterwards)."""
    run = uuid.uuid4().hex[:8]
    mine, other = f"hito-test-tok-{run}", f"hito-test-tok-other-{run}"
    i = stack.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as admin:
        created = [
            admin.buckets_api().create_bucket(bucket_name=b, org=i.org) for b in (mine, other)
        ]
        try:
            yield i.model_copy(update={"bucket": mine}), other
        finally:
            for b in created:
                admin.buckets_api().delete_bucket(b)
            auths = admin.authorizations_api()
            for a in auths.find_authorizations():
                if a.description and a.description.endswith(f" {mine})"):
                    auths.delete_authorization(a)


def _client(i: InfluxSettings, token: str) -> InfluxDBClient:
    return InfluxDBClient(url=i.url, token=token, org=i.org)


def _write(i: InfluxSettings, token: str, bucket: str, value: int) -> None:
    with _client(i, token) as c:
        c.write_api(write_options=SYNCHRONOUS).write(
            bucket=bucket, record=Point("probe").field("v", value)
        )


def _read(i: InfluxSettings, token: str, bucket: str) -> list[int]:
    flux = (
        f'from(bucket: "{bucket}") |> range(start: -1h) '
        '|> filter(fn: (r) => r._measurement == "probe")'
    )
    with _client(i, token) as c:
        return sorted(int(r.get_value()) for t in c.query_api().query(flux) for r in t.records)


def _refused(call: object) -> int:
    assert callable(call)
    with pytest.raises(ApiException) as err:
        call()
    return int(err.value.status)


def test_pipeline_token_is_limited_to_its_bucket(
    buckets: tuple[InfluxSettings, str], tmp_path: Path
) -> None:
    i, other = buckets
    tokens = ensure_bucket_tokens(i, tmp_path / "tokens.json")
    pipeline = tokens["pipeline"].get_secret_value()
    assert pipeline != i.admin_token().get_secret_value()
    _write(i, pipeline, i.bucket, 7)
    assert _read(i, pipeline, i.bucket) == [7]
    # The neighbour bucket: neither written nor read (InfluxDB answers 404 to hide it).
    assert _refused(lambda: _write(i, pipeline, other, 1)) in (403, 404)
    assert _refused(lambda: _read(i, pipeline, other)) in (403, 404)
    admin = i.admin_token().get_secret_value()
    assert _read(i, admin, other) == []  # nothing got in
    # No administration: it cannot create a bucket.
    with _client(i, pipeline) as c:
        assert _refused(lambda: c.buckets_api().create_bucket(bucket_name="x" + other)) in (
            401,
            403,
            404,
        )


def test_dashboards_token_only_reads(buckets: tuple[InfluxSettings, str], tmp_path: Path) -> None:
    i, _ = buckets
    tokens = ensure_bucket_tokens(i, tmp_path / "tokens.json")
    _write(i, tokens["pipeline"].get_secret_value(), i.bucket, 3)
    dashboards = tokens["dashboards"].get_secret_value()
    assert _read(i, dashboards, i.bucket) == [3]
    assert _refused(lambda: _write(i, dashboards, i.bucket, 4)) in (403, 404)
    assert _read(i, dashboards, i.bucket) == [3]


def test_tokens_are_kept_and_recreated_when_gone(
    buckets: tuple[InfluxSettings, str], tmp_path: Path
) -> None:
    i, _ = buckets
    path = tmp_path / "tokens.json"
    first = ensure_bucket_tokens(i, path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = ensure_bucket_tokens(i, path)
    assert {k: v.get_secret_value() for k, v in again.items()} == {
        k: v.get_secret_value() for k, v in first.items()
    }
    # Deleted on the server (e.g. revoked by an admin): the next call makes a new one.
    token = first["pipeline"].get_secret_value()
    token_id = json.loads(path.read_text())[i.bucket]["pipeline"]["id"]
    with _client(i, i.admin_token().get_secret_value()) as admin:
        admin.authorizations_api().delete_authorization(token_id)
    renewed = ensure_bucket_tokens(i, path)
    assert renewed["pipeline"].get_secret_value() != token
    assert renewed["dashboards"].get_secret_value() == first["dashboards"].get_secret_value()
    _write(i, renewed["pipeline"].get_secret_value(), i.bucket, 9)
    assert _refused(lambda: _write(i, token, i.bucket, 10)) == 401


def test_a_refused_token_is_retried_with_a_fresh_one_never_dropped(
    buckets: tuple[InfluxSettings, str], tmp_path: Path
) -> None:
    """A worker's token revoked under it: the sink backs off (retryable, nothing dropped) and
    its next try reads the token again, as the worker does from tokens.json."""
    i, _ = buckets
    path = tmp_path / "tokens.json"
    first = ensure_bucket_tokens(i, path)["pipeline"]
    current = [first]
    sink = InfluxSink(i, PipelineMetrics(), max_backoff_s=0.0, token_source=lambda: current[0])
    line = "probe v=1i 1700000000"

    async def scenario() -> None:
        await sink.write([line])
        token_id = json.loads(path.read_text())[i.bucket]["pipeline"]["id"]
        with _client(i, i.admin_token().get_secret_value()) as admin:
            admin.authorizations_api().delete_authorization(token_id)
        with pytest.raises(RetryableSinkError, match="HTTP 401"):
            await sink.write([line.replace("v=1i", "v=2i")])
        assert not sink.healthy
        current[0] = ensure_bucket_tokens(i, path)["pipeline"]  # what `hito up` would renew
        await sink.write([line.replace("v=1i", "v=2i")])
        assert sink.healthy
        await sink.close()

    asyncio.run(scenario())
    flux = (
        f'from(bucket: "{i.bucket}") |> range(start: 0) '
        '|> filter(fn: (r) => r._measurement == "probe")'
    )
    with _client(i, i.admin_token().get_secret_value()) as admin:
        values = [r.get_value() for t in admin.query_api().query(flux) for r in t.records]
    assert values == [2]  # the refused batch was written on the retry, once
