"""The policy's retention on the real stack: topics and the bucket are made with it, the audit
finds nothing, then finds each planted drift (a topic's retention, a per-person state
changelog's compaction, the bucket's retention) and exits 1, and applying the policy again
(what `hito up` does) removes every drift."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import uuid
from pathlib import Path

from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from hito.access.kafka import admin_client
from hito.access.retention import Drift, apply_to_bucket, audit
from hito.access.topics import ensure_topics
from hito.runtime import Runtime
from hito.schemas.privacy.retention import PERSON_STATE_CHANGELOG_SUFFIX
from tests.integration.pipeline.conftest import isolated_env

WEEK_MS = str(7 * 24 * 3600 * 1000)


def test_the_retention_audit_fails_on_a_planted_drift(isolated_runtime: Runtime) -> None:
    settings, policy = isolated_runtime.settings, isolated_runtime.policy
    p = settings.pipeline
    raw = p.raw_topics["checkpoint"]
    changelog = f"hito-test-{uuid.uuid4().hex[:8]}{PERSON_STATE_CHANGELOG_SUFFIX}"
    assert apply_to_bucket(settings, policy)  # a new test bucket keeps data for ever
    assert audit(settings, policy) == []
    admin = admin_client(settings.kafka)
    try:
        # A worker's changelog made by hand with Kafka's defaults, a raw topic set back to a
        # week, and the bucket to "for ever".
        admin.create_topics(
            [NewTopic(changelog, 1, 1, topic_configs={"cleanup.policy": "compact"})]
        )
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, raw, configs={"retention.ms": WEEK_MS})]
        )
        _bucket_forever(isolated_runtime)
        drift = audit(settings, policy)
        assert Drift(f"topic {raw}", "retention.ms", "86400000", WEEK_MS) in drift
        assert {d.config for d in drift if d.resource == f"topic {changelog}"} == {
            "segment.ms",
            "max.compaction.lag.ms",
            "delete.retention.ms",
        }
        assert Drift(f"bucket {settings.influxdb.bucket}", "retention_s", "34560000", "0") in drift
        assert len(drift) == 5
        env = isolated_env(settings, COLUMNS="200")
        command = [sys.executable, "-m", "hito.cli", "policy", "audit", "--retention"]
        failed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert raw in failed.stdout and changelog in failed.stdout
        # Applying the policy (what `hito up` does) ends every drift.
        ensure_topics(settings)
        assert apply_to_bucket(settings, policy)
        assert audit(settings, policy) == []
        passed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        assert passed.returncode == 0, passed.stdout + passed.stderr
        assert f"retention matches policy {policy.version}" in passed.stdout
    finally:
        admin.delete_topics([changelog])
        admin.close()


def test_provision_gives_the_buckets_the_policys_retention_and_grafana_its_token(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    """`hito provision` (docker-compose's one-shot job) left the bucket as compose's InfluxDB
    made it, keeping aggregates for ever; only `hito up` applied the policy's retention. And
    Grafana's read-only token had to be copied into .env by hand (forgotten: every InfluxDB
    panel failed); provision now writes it where compose's Grafana reads it."""
    settings, policy = isolated_runtime.settings, isolated_runtime.policy
    _bucket_forever(isolated_runtime)
    assert Drift(f"bucket {settings.influxdb.bucket}", "retention_s", "34560000", "0") in audit(
        settings, policy
    )
    env = isolated_env(settings, HITO_STATE_DIR=str(tmp_path / "state"))
    # A token from before (an InfluxDB since wiped): replaced, and provision says so.
    grafana_token = tmp_path / "grafana" / "influxdb.token"
    grafana_token.parent.mkdir()
    grafana_token.write_text("token-of-a-wiped-influxdb")
    done = subprocess.run(
        [sys.executable, "-m", "hito.cli", "provision", "--grafana-token", str(grafana_token)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"bucket retention: policy {policy.version}'s (set now)" in done.stdout
    assert [d for d in audit(settings, policy) if d.resource.startswith("bucket")] == []
    # The bucket's read-only token, readable by the file's group (Grafana's container joins
    # it), and never printed.
    tokens = json.loads((tmp_path / "state" / "influxdb" / "tokens.json").read_text())
    dashboards = tokens[settings.influxdb.bucket]["dashboards"]["token"]
    assert grafana_token.read_text() == dashboards
    assert stat.S_IMODE(grafana_token.stat().st_mode) == 0o640
    assert f"Grafana's read-only token {grafana_token}: replaced; restart Grafana" in done.stdout
    assert dashboards not in done.stdout + done.stderr


def _bucket_forever(runtime: Runtime) -> None:
    from influxdb_client import BucketRetentionRules, InfluxDBClient

    i = runtime.settings.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        api = client.buckets_api()
        bucket = api.find_bucket_by_name(i.bucket)
        forever = BucketRetentionRules(type="expire", every_seconds=0)
        bucket.retention_rules = [forever]
        api.update_bucket(bucket=bucket)
