"""Kafka topics the project creates, each with the retention the privacy policy gives its zone
(raw topics hold personal data), and the ACLs that let each role use them
(hito.access.kafka)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from hito.access.kafka import admin_client, apply_grants
from hito.access.retention import apply_to_topics
from hito.schemas.privacy.policy import Policy, load_policy
from hito.schemas.privacy.retention import topic_configs
from hito.settings import HitoSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str]  # the policy's retention (hito.schemas.privacy.retention)


def topic_specs(settings: HitoSettings, policy: Policy | None = None) -> list[TopicSpec]:
    """Every data topic with the configs that apply the policy's retention of its zone (raw
    events, DLQ originals, clean events)."""
    p = settings.pipeline
    policy = policy or load_policy(settings.privacy.policy_file)
    configs = topic_configs(policy, p.topics)
    return [TopicSpec(name, p.topic_partitions, configs[name]) for name in configs]


def created_configs(settings: HitoSettings, spec: TopicSpec) -> dict[str, str]:
    """A new topic's configs: its zone's retention, and on a cluster how many replicas must
    have a write before an ``acks=all`` producer hears it succeeded (replication factor 3,
    min.insync.replicas 2: any one broker may die without losing an acknowledged event)."""
    return {**spec.configs, "min.insync.replicas": str(settings.kafka.topic_min_insync)}


def ensure_topics(settings: HitoSettings) -> list[str]:
    """Create missing topics with the policy's retention, set it on existing topics that
    drifted from it, and grant each role its ACLs on them.

    Needs the admin user (run by `hito up` and by tests for their own topics); returns the
    names of the topics it created.
    """
    policy = load_policy(settings.privacy.policy_file)
    admin = admin_client(settings.kafka)
    created = []
    try:
        existing = set(admin.list_topics())
        for spec in topic_specs(settings, policy):
            if spec.name in existing:
                continue
            topic = NewTopic(
                spec.name,
                spec.partitions,
                settings.kafka.topic_replication,
                topic_configs=created_configs(settings, spec),
            )
            try:
                admin.create_topics([topic])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # another worker created it first
        altered = apply_to_topics(settings, policy, admin, just_created=frozenset(created))
        apply_grants(settings, admin)
    finally:
        admin.close()
    if created:
        log.info("created topics %s", created)
    if altered:
        log.warning("retention set to the policy's on topics %s", altered)
    return created
