"""The policy's retention, as the Kafka topic configs and InfluxDB bucket retention that apply it.

One translation, used by ``hito up`` (which applies it), by the worker (whose per-person state
changelog Faust creates) and by ``hito policy audit --retention`` (which compares it with the
live configs), so the three can never disagree.

Kafka deletes a log segment only once its newest record is older than ``retention.ms``, and
rolls a segment after ``segment.ms`` (default 7 days): with the default a record of a quiet
topic could outlive a 24 h retention by a week. Every topic here rolls its segments at least
hourly, so a record is gone at most ``retention + 1 h`` (plus the broker's 5-minute check)
after it was written.
"""

from __future__ import annotations

from collections.abc import Mapping

from hito.schemas.privacy.policy import Policy
from hito.schemas.topics import TopicNames

HOUR_MS = 3_600_000
# The Faust table holding per-person days of repeat_crossings; its changelog topic is
# "<app id>-repeat-days-changelog".
PERSON_STATE_TABLE = "repeat-days"
PERSON_STATE_CHANGELOG_SUFFIX = f"-{PERSON_STATE_TABLE}-changelog"


def deleting_topic_configs(hours: int) -> dict[str, str]:
    """A topic whose records are deleted ``hours`` after they were written.

    "Written" by the broker's clock: records are stamped on arrival (``LogAppendTime``), not
    with the producer's time. A device's clock then neither lengthens nor shortens how long
    its raw events stay, and one running more than an hour ahead is not refused: Kafka 4
    refuses records stamped further ahead than ``message.timestamp.after.max.ms`` (1 h by
    default since 4.0), so such a device's outbox retried for ever and its events never
    reached the pipeline's clock check (``clock_skew``, a reason the device maker can read;
    tests/integration/pipeline/test_device_clock.py)."""
    retention = hours * HOUR_MS
    return {
        "retention.ms": str(retention),
        "segment.ms": str(min(retention, HOUR_MS)),
        "message.timestamp.type": "LogAppendTime",
    }


def topic_zones(topics: TopicNames) -> dict[str, str]:
    """Every data topic -> its zone of the policy's ``retention_hours``."""
    zones = {topic: "raw_events" for topic in topics.raw.values()}
    zones[topics.dlq] = "dlq_records"
    zones[topics.dlq_originals] = "dlq_originals"
    zones |= {topic: "clean_events" for topic in topics.clean_by_source.values()}
    return zones


def topic_configs(policy: Policy, topics: TopicNames) -> dict[str, dict[str, str]]:
    """Every data topic -> the configs that apply its retention."""
    return {
        topic: deleting_topic_configs(policy.retention_hours[zone])
        for topic, zone in topic_zones(topics).items()
    }


def person_state_changelog_configs(policy: Policy) -> dict[str, str]:
    """The per-person state's changelog (compacted): a record deleted from the table (a
    tombstone) and the values it replaces are compacted away within about
    ``retention_hours.person_state``."""
    lag = str(policy.retention_hours["person_state"] * HOUR_MS)
    return {
        "cleanup.policy": "compact",
        "segment.ms": lag,
        "max.compaction.lag.ms": lag,
        "delete.retention.ms": lag,
    }


def bucket_retention_s(policy: Policy) -> int:
    return policy.retention_hours["aggregates"] * 3600


def archive_retention_s(policy: Policy) -> int:
    """The window archive (full counts for backfill): kept as long as a late event may still
    revise a window, and no longer."""
    return policy.retention_hours["window_archive"] * 3600


def bucket_retentions(policy: Policy, bucket: str, archive_bucket: str) -> dict[str, int]:
    """Every InfluxDB bucket -> its retention in seconds."""
    return {bucket: bucket_retention_s(policy), archive_bucket: archive_retention_s(policy)}


def drifted(wanted: Mapping[str, str], live: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """config -> (wanted, live) for every config whose live value differs."""
    return {
        name: (value, live.get(name, "(unset)"))
        for name, value in wanted.items()
        if live.get(name) != value
    }
