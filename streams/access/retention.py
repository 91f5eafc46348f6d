"""The policy's retention on the live services: compare (``hito policy audit --retention``)
and apply (``hito up``) it, for the Kafka topics and the InfluxDB bucket.

What each resource should have comes from one translation of the policy
(``hito.schemas.privacy.retention``); the live values are read with the admin's rights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hito.schemas.privacy.policy import Policy
from hito.schemas.privacy.retention import (
    PERSON_STATE_CHANGELOG_SUFFIX,
    bucket_retentions,
    drifted,
    person_state_changelog_configs,
    topic_configs,
)
from hito.settings import HitoSettings


@dataclass(frozen=True)
class Drift:
    resource: str  # "topic <name>" or "bucket <name>"
    config: str
    wanted: str
    live: str

    def describe(self) -> str:
        return f"{self.resource}: {self.config} is {self.live}, the policy says {self.wanted}"


def wanted_topic_configs(
    settings: HitoSettings, policy: Policy, existing: set[str]
) -> dict[str, dict[str, str]]:
    """Every data topic, and every existing per-person state changelog of the pipeline's
    apps, with the configs that apply the policy's retention."""
    wanted = topic_configs(policy, settings.pipeline.topics)
    prefix = settings.kafka.pipeline_group_prefix
    changelog = person_state_changelog_configs(policy)
    for topic in existing:
        if topic.startswith(prefix) and topic.endswith(PERSON_STATE_CHANGELOG_SUFFIX):
            wanted[topic] = changelog
    return wanted


def kafka_drift(settings: HitoSettings, policy: Policy, admin: Any) -> list[Drift]:
    from kafka.admin import ConfigResource, ConfigResourceType

    existing = set(admin.list_topics())
    wanted = wanted_topic_configs(settings, policy, existing)
    out = [Drift(f"topic {t}", "exists", "yes", "no") for t in sorted(set(wanted) - existing)]
    present = sorted(set(wanted) & existing)
    if not present:
        return out
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, t, configs=dict.fromkeys(wanted[t]))
        for t in present
    ]
    described = admin.describe_configs(resources, config_filter="all")["topic"]
    for topic in present:
        live = {name: str(c["value"]) for name, c in described[topic].items()}
        for name, (want, have) in sorted(drifted(wanted[topic], live).items()):
            out.append(Drift(f"topic {topic}", name, want, have))
    return out


def bucket_drift(settings: HitoSettings, policy: Policy) -> list[Drift]:
    out: list[Drift] = []
    for name, seconds in _wanted_buckets(settings, policy).items():
        bucket = _bucket(settings, name)
        if bucket is None:
            out.append(Drift(f"bucket {name}", "exists", "yes", "no"))
        elif (have := _every_seconds(bucket)) != seconds:
            out.append(Drift(f"bucket {name}", "retention_s", str(seconds), str(have)))
    return out


def audit(settings: HitoSettings, policy: Policy) -> list[Drift]:
    """Every difference between the policy's retention and the live services."""
    from hito.access.kafka import admin_client

    admin = admin_client(settings.kafka)
    try:
        out = kafka_drift(settings, policy, admin)
    finally:
        admin.close()
    return out + bucket_drift(settings, policy)


def apply_to_topics(
    settings: HitoSettings, policy: Policy, admin: Any, just_created: frozenset[str] = frozenset()
) -> list[str]:
    """Set the policy's configs on every existing topic that drifted (incrementally: other
    configs stay); returns the topics changed.

    ``just_created``: topics created a moment ago with the policy's configs, left out. On a
    fresh three-broker cluster the broker that answered DescribeConfigs did not yet know them
    and they looked drifted (CI, 2026-12-04). kafka-python's own check that every key is
    already a dynamic config of the topic is off (``raise_on_unknown``): it refused that case,
    and it would refuse a topic created without the override; the broker checks the keys."""
    from kafka.admin import ConfigResource, ConfigResourceType

    wanted = wanted_topic_configs(settings, policy, set(admin.list_topics()))
    changed = sorted({d.resource.split(" ", 1)[1] for d in kafka_drift(settings, policy, admin)
                      if d.config != "exists"} - just_created)  # fmt: skip
    if changed:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, t, configs=wanted[t]) for t in changed
        ]
        result = admin.alter_configs(resources, raise_on_unknown=False, incremental=True)
        failed = {t: r for t, r in result.get("topic", {}).items() if r != "OK"}
        if failed:
            raise RuntimeError(f"Kafka refused the retention configs: {failed}")
    return changed


def apply_to_bucket(settings: HitoSettings, policy: Policy) -> bool:
    """Set each bucket's retention (the aggregates' and the window archive's) to the
    policy's, creating the archive if it is missing; True when anything changed."""
    from influxdb_client import BucketRetentionRules, InfluxDBClient

    i = settings.influxdb
    changed = False
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        api = client.buckets_api()
        for name, want in _wanted_buckets(settings, policy).items():
            rule = BucketRetentionRules(type="expire", every_seconds=want)  # type: ignore[no-untyped-call]
            bucket = api.find_bucket_by_name(name)
            if bucket is None and name == i.archive_bucket:
                api.create_bucket(bucket_name=name, org=i.org, retention_rules=[rule])
                changed = True
                continue
            if bucket is None:
                raise RuntimeError(f"InfluxDB has no bucket {name}")
            if _every_seconds(bucket) == want:
                continue
            bucket.retention_rules = [rule]
            api.update_bucket(bucket=bucket)
            changed = True
    return changed


def _wanted_buckets(settings: HitoSettings, policy: Policy) -> dict[str, int]:
    i = settings.influxdb
    return bucket_retentions(policy, i.bucket, i.archive_bucket)


def _bucket(settings: HitoSettings, name: str) -> Any:
    from influxdb_client import InfluxDBClient

    i = settings.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        return client.buckets_api().find_bucket_by_name(name)


def _every_seconds(bucket: Any) -> int:
    """A bucket's retention in seconds (0: kept for ever)."""
    rules = [r for r in bucket.retention_rules or [] if r.type == "expire"]
    return int(rules[0].every_seconds) if rules else 0
