"""No personal data leaves the raw zone: clean topics, DLQ details and InfluxDB are searched
for every identifier the simulated fleet sent."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import orjson
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from hito.access.kafka import admin_client
from hito.credentials import client_config
from hito.device.simulate.fleet import Fleet, FleetPlan, SimMessage
from hito.device.simulate.runner import send_messages
from hito.ops.dlq import read_all
from hito.runtime import Runtime
from hito.schemas.clean import CleanEvent
from hito.schemas.privacy.policy import Policy
from hito.settings import HitoSettings
from tests.integration.pipeline.conftest import running_worker, wait_until


def identifiers(messages: list[SimMessage]) -> set[str]:
    """Document numbers, plates and operator ids in every parseable event that was sent."""
    found: set[str] = set()
    for m in messages:
        try:
            payload = orjson.loads(m.value)["payload"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        for field in ("document_number", "vehicle_plate", "operator_id"):
            if isinstance(payload.get(field), str):
                found.add(payload[field])
    return found


def clean_topic_bytes(settings: HitoSettings) -> list[bytes]:
    consumer = KafkaConsumer(
        **client_config(settings.kafka, "operator"),
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    out = []
    try:
        for source in settings.pipeline.raw_topics:
            topic = f"{settings.pipeline.clean_topic_prefix}{source}"
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            out += [m.value for m in consumer]
    finally:
        consumer.close()
    return out


def influx_strings(settings: HitoSettings) -> list[str]:
    """Every measurement name, tag value and field value in the bucket, as text."""
    i = settings.influxdb
    flux = f'from(bucket: "{i.bucket}") |> range(start: -30d, stop: 1h)'
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        tables = client.query_api().query(flux)
    return [
        str(v)
        for t in tables
        for r in t.records
        for k, v in r.values.items()
        if k not in ("_start", "_stop", "_time", "result", "table")
    ]


def fields_without_purpose(policy: Policy, clean: list[bytes]) -> set[str]:
    """Every field of a clean record that no purpose of the policy declares: payload fields
    (``geohash`` stands for lat/lon) and pseudonyms, which must be under a purpose with a
    linkability horizon that declares the field."""
    found: set[str] = set()
    for data in clean:
        event = CleanEvent.model_validate_json(data)
        for name in event.payload:
            raw = ("lat", "lon") if name == "geohash" else (name,)
            if not all(policy.purposes_of(event.schema_, f) for f in raw):
                found.add(f"{event.schema_}.{name}")
        for purpose, fields in event.pseudonyms.items():
            declared = policy.purposes.get(purpose)
            for name in fields:
                if (
                    declared is None
                    or declared.horizon_hours is None
                    or not declared.uses(event.schema_, name)
                ):
                    found.add(f"{event.schema_}.{name} under {purpose}")
    return found


def leaks(ids: set[str], texts: list[str]) -> set[str]:
    blob = "\n".join(texts)
    return {i for i in ids if i in blob}


def test_no_identifier_reaches_clean_topics_dlq_details_or_influxdb(
    isolated_runtime: Runtime,
) -> None:
    settings = isolated_runtime.settings
    plan = FleetPlan(
        count=3000,
        seed=41,
        bad_fraction=0.1,
        duplicate_fraction=0.03,
        late_fraction=0.01,
        raw_topics=dict(settings.pipeline.raw_topics),
        # With the rhythm, a run at 04:00 in Arica sent 869 identifiers, at noon 2,314: the
        # search must cover the same people whenever CI runs.
        daily_rhythm=False,
    )
    messages = list(Fleet(isolated_runtime.registry, plan, datetime.now(UTC)).messages())
    ids = identifiers(messages)
    assert len(ids) == 2355

    async def scenario() -> None:
        async with running_worker(isolated_runtime) as worker:
            await asyncio.to_thread(
                send_messages,
                messages,
                producer_config=client_config(settings.kafka, "device"),
                total=len(messages),
            )
            await wait_until(
                lambda: worker.metrics.total_events() >= len(messages), 120, "ingest to drain"
            )
            await wait_until(
                lambda: worker.metrics.sink_points._value.get() > 0, 60, "points in InfluxDB"
            )
            await asyncio.sleep(3)

    asyncio.run(scenario())
    clean = clean_topic_bytes(settings)
    assert len(clean) > 2000
    assert leaks(ids, [b.decode() for b in clean]) == set()
    assert fields_without_purpose(isolated_runtime.policy, clean) == set()
    # That check can fail: a record carrying the lane (a field no purpose needs) is found.
    record = orjson.loads(next(b for b in clean if b'"checkpoint"' in b))
    record["payload"]["lane"] = "L1"
    planted_field = fields_without_purpose(isolated_runtime.policy, [orjson.dumps(record)])
    assert planted_field == {"checkpoint.crossing/1.lane"}
    dlq = list(read_all(settings))
    assert len(dlq) > 250
    human = [
        " ".join(
            str(x)
            for x in (
                e.record.reason,
                e.record.stage,
                e.record.detail,
                e.record.device_id,
                e.record.source_topic,
            )
        )
        for e in dlq
    ]
    assert leaks(ids, human) == set()
    stored = influx_strings(settings)
    assert len(stored) > 1000
    assert leaks(ids, stored) == set()

    # The search can fail: a planted identifier is found, and only that one.
    planted = sorted(ids)[0]
    i = settings.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=i.bucket, record=Point("crossings").tag("lane", planted).field("count", 1)
        )
    assert leaks(ids, influx_strings(settings)) == {planted}
    assert leaks(ids, [b.decode() for b in clean] + [planted]) == {planted}


def test_raw_topics_keep_personal_data_24_hours(isolated_runtime: Runtime) -> None:
    settings = isolated_runtime.settings
    admin = admin_client(settings.kafka)
    try:
        topics = [*settings.pipeline.raw_topics.values(), settings.pipeline.dlq_topic]
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        result = admin.describe_configs(resources)
    finally:
        admin.close()
    # kafka-python 3: {"topic": {name: {config: {"value": ..., ...}}}}
    retention = {
        name: configs["retention.ms"]["value"] for name, configs in result["topic"].items()
    }
    assert retention == {t: str(24 * 3600 * 1000) for t in topics}


def test_policy_show_and_audit_commands(isolated_runtime: Runtime) -> None:
    settings = isolated_runtime.settings
    env = {**os.environ, "HITO_INFLUXDB__BUCKET": settings.influxdb.bucket, "COLUMNS": "200"}
    shown = subprocess.run(
        [sys.executable, "-m", "hito.cli", "policy", "show"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "document_number" in shown.stdout and "pseudonymise" in shown.stdout
    assert isolated_runtime.policy.version in shown.stdout
    assert "repeat_crossings" in shown.stdout and "24 h epochs (UTC)" in shown.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "hito.cli", "policy", "show", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    doc = json.loads(as_json.stdout)
    assert {p["name"]: p["linkability_horizon_hours"] for p in doc["purposes"]} == {
        "crossing_counts": None,
        "wait_times": None,
        "repeat_crossings": 24,
        "sensor_coverage": None,
    }
    assert {f["field"]: f["purposes"] for f in doc["fields"] if f["schema"].startswith("check")}[
        "document_number"
    ] == ["repeat_crossings"]
    at = datetime(2026, 11, 28, 18, 30, tzinfo=UTC)
    i = settings.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=i.bucket,
            record=(
                Point("crossings")
                .tag("site", "chacalluta")
                .tag("policy", "2026-11-28.1")
                .field("count", 7)
                .time(at)
            ),
        )
    audit = subprocess.run(
        [
            sys.executable,
            "-m",
            "hito.cli",
            "policy",
            "audit",
            "crossings",
            "chacalluta",
            "2026-11-28T18:30:00Z",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "policy version(s): 2026-11-28.1" in audit.stdout
    # 2026-11-28 is before the test session's key store began: its key is not held.
    assert "pseudonym key of repeat_crossings for epoch e20785: destroyed" in audit.stdout
