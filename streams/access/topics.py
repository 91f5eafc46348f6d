"""Kafka topics the project creates, each with its retention (raw topics hold personal data),
and the ACLs that let each role use them (streams/kafka_security.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from hito.access.kafka import admin_client, apply_grants
from hito.settings import HitoSettings

log = logging.getLogger(__name__)
_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int


def topic_specs(settings: HitoSettings) -> list[TopicSpec]:
    p = settings.pipeline
    raw_ms = p.raw_retention_hours * _HOUR_MS
    specs = [TopicSpec(t, p.topic_partitions, raw_ms) for t in p.raw_topics.values()]
    # The rejected bytes are raw-zone data: the raw topics' short retention. The operators'
    # records hold no bytes, but they name devices and sites: the same retention.
    specs.append(TopicSpec(p.dlq_topic, p.topic_partitions, raw_ms))
    specs.append(TopicSpec(p.dlq_originals_topic, p.topic_partitions, raw_ms))
    clean_ms = p.clean_retention_hours * _HOUR_MS
    specs += [
        TopicSpec(f"{p.clean_topic_prefix}{s}", p.topic_partitions, clean_ms) for s in p.raw_topics
    ]
    return specs


def topic_configs(settings: HitoSettings, spec: TopicSpec) -> dict[str, str]:
    """A topic's own configs: its retention, and on a cluster how many replicas must have a
    write before an ``acks=all`` producer hears it succeeded (replication factor 3,
    min.insync.replicas 2: any one broker may die without losing an acknowledged event)."""
    return {
        "retention.ms": str(spec.retention_ms),
        "min.insync.replicas": str(settings.kafka.topic_min_insync),
    }


def ensure_topics(settings: HitoSettings) -> list[str]:
    """Create missing topics with their retention and grant each role its ACLs on them.

    Needs the admin user (run by `hito up` and by tests for their own topics); returns the
    names of the topics it created.
    """
    admin = admin_client(settings.kafka)
    created = []
    try:
        existing = set(admin.list_topics())
        for spec in topic_specs(settings):
            if spec.name in existing:
                continue
            topic = NewTopic(
                spec.name,
                spec.partitions,
                settings.kafka.topic_replication,
                topic_configs=topic_configs(settings, spec),
            )
            try:
                admin.create_topics([topic])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # another worker created it first
        apply_grants(settings, admin)
    finally:
        admin.close()
    if created:
        log.info("created topics %s", created)
    return created
