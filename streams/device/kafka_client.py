"""The device's Kafka client settings: connection settings for a device user, the producer
the outbox forwards with (acks=all, idempotence, bounded waits), and the checks a
``DeviceClient`` makes on what it is given, at construction, before anything is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hito.device.sender import Producer
from hito.schemas.registry import SOURCES, Source
from hito.schemas.topics import DEFAULT_RAW_TOPICS

__all__ = ["checked_producer_config", "kafka_producer", "kafka_settings", "raw_topics"]


def kafka_settings(
    bootstrap: str,
    username: str | None = None,
    password: str | None = None,
    security_protocol: str = "SASL_PLAINTEXT",
    ssl_cafile: str | None = None,
) -> dict[str, Any]:
    """kafka-python connection settings for a device user."""
    config: dict[str, Any] = {"bootstrap_servers": bootstrap}
    if username is not None:
        config |= {
            "security_protocol": security_protocol,
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": username,
            "sasl_plain_password": password,
            "ssl_cafile": ssl_cafile,
        }
    return config


# The outbox's guarantees rest on these (kafka_producer): a caller may not change them.
_SET_BY_THE_SDK = frozenset({"acks", "enable_idempotence"})


def checked_producer_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config``, refused (ValueError) when it sets what the SDK sets or a key kafka-python
    does not know. Checked at once: the sender makes the producer in its thread and retries a
    failure forever, so a bad key would hold every event back with no error to the caller."""
    from kafka import KafkaProducer

    own = sorted(_SET_BY_THE_SDK & set(config))
    if own:
        raise ValueError(
            f"producer_config may not set {', '.join(own)}: the SDK sets acks='all' and "
            "enable_idempotence=True, which the outbox's delivery relies on"
        )
    unknown = sorted(set(config) - set(KafkaProducer.DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"producer_config: kafka-python has no setting {', '.join(unknown)}")
    return dict(config)


def raw_topics(overrides: Mapping[Source, str] | None) -> dict[Source, str]:
    """The default raw topics, with ``overrides`` for some or all sources: a source left out
    keeps its default (the sender would otherwise fail on its events forever)."""
    topics = dict(DEFAULT_RAW_TOPICS)
    for source, topic in (overrides or {}).items():
        if source not in SOURCES:
            raise ValueError(f"topic_for_source: {source!r} is not one of {', '.join(SOURCES)}")
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"topic_for_source: the topic of {source} is not a topic name")
        topics[source] = topic
    return topics


def kafka_producer(config: Mapping[str, Any]) -> Producer:
    """A kafka-python producer for the outbox: acks=all and idempotence (a broker-side retry
    never writes a second copy), and bounded waits (``config`` may change them), so an
    unreachable broker is a failure the sender retries rather than a thread blocked for
    minutes."""
    from kafka import KafkaProducer

    bounded_waits = {
        "linger_ms": 5,
        "max_block_ms": 10_000,
        "request_timeout_ms": 10_000,
        "delivery_timeout_ms": 30_000,
        "bootstrap_timeout_ms": 10_000,
    }
    producer: Producer = KafkaProducer(
        **(bounded_waits | dict(config)), acks="all", enable_idempotence=True
    )
    return producer
