"""Kafka authentication and ACLs on the real broker: each role can do its job and nothing more.

Every refusal is paired with the same call by a role that is allowed, so a test cannot pass
because the call was broken for everyone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    KafkaError,
    TopicAuthorizationFailedError,
)
from kafka.errors import (
    TopicAuthorizationFailedError as TopicDenied,
)

from hito.access.topics import ensure_topics
from hito.credentials import Role, client_config
from hito.device.simulate.fleet import SimMessage
from hito.device.simulate.runner import SendRefused, send_messages
from hito.settings import HitoSettings


def _own_topics(stack: HitoSettings) -> HitoSettings:
    """Settings with topics of their own, created with their ACLs like every project topic."""
    run = uuid.uuid4().hex[:8]
    pipeline = stack.pipeline.model_copy(
        update={
            "raw_topics": {
                "checkpoint": f"hito.test-authz-{run}.raw.checkpoint",
                "sensor": f"hito.test-authz-{run}.raw.sensor",
                "drone": f"hito.test-authz-{run}.raw.drone",
            },
            "dlq_topic": f"hito.test-authz-{run}.dlq",
            "dlq_originals_topic": f"hito.test-authz-{run}.dlq.originals",
            "clean_topic_prefix": f"hito.test-authz-{run}.clean.",
            "topic_partitions": 1,
        }
    )
    settings = stack.model_copy(update={"pipeline": pipeline})
    assert len(ensure_topics(settings)) == 8
    return settings


@pytest.fixture(scope="module")
def secured(stack: HitoSettings) -> HitoSettings:
    settings = _own_topics(stack)
    # One record in each topic, written by the admin, for the read checks.
    producer = KafkaProducer(**client_config(settings.kafka, "admin"), acks="all")
    for topic in _topics(settings).values():
        producer.send(topic, key=b"k", value=b"v").get(timeout=15)
    producer.close()
    return settings


def _topics(settings: HitoSettings) -> dict[str, str]:
    p = settings.pipeline
    return {"raw": p.raw_topics["checkpoint"], "clean": f"{p.clean_topic_prefix}checkpoint",
            "dlq": p.dlq_topic, "originals": p.dlq_originals_topic}  # fmt: skip


def _send(settings: HitoSettings, role: Role, topic: str) -> None:
    producer = KafkaProducer(
        **client_config(settings.kafka, role), acks="all", max_block_ms=10_000, retries=0
    )
    try:
        producer.send(topic, key=b"k", value=b"authz").get(timeout=15)
    finally:
        producer.close(timeout=5)


def _read(settings: HitoSettings, role: Role, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(**client_config(settings.kafka, role), enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        out: list[bytes] = []
        for _ in range(20):
            for records in consumer.poll(timeout_ms=500).values():
                out += [r.value for r in records]
            if out:
                return out
        return out
    finally:
        consumer.close()


def test_device_writes_raw_but_not_clean_or_dlq(secured: HitoSettings) -> None:
    t = _topics(secured)
    _send(secured, "device", t["raw"])  # allowed: no exception
    with pytest.raises(TopicDenied):
        _send(secured, "device", t["clean"])
    with pytest.raises(TopicDenied):
        _send(secured, "device", t["dlq"])


def _read_denied(
    settings: HitoSettings, role: Role, topic: str, caplog: pytest.LogCaptureFixture
) -> bool:
    """True when the broker refused ``role`` the topic: kafka-python either raises
    TopicAuthorizationFailedError or logs the refusal and returns nothing, depending on when
    the metadata answer arrives; both are a refusal, records are not."""
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="kafka.cluster"):
        try:
            records = _read(settings, role, topic)
        except TopicAuthorizationFailedError:
            return True
    assert records == [], f"{role} read {len(records)} records from {topic}"
    return f"Topic {topic} is not authorized for this client" in caplog.text


def test_device_cannot_read_any_topic(
    secured: HitoSettings, caplog: pytest.LogCaptureFixture
) -> None:
    t = _topics(secured)
    assert _read(secured, "pipeline", t["raw"])[0] == b"v"  # the pipeline may
    assert _read_denied(secured, "device", t["raw"], caplog)
    # Nor anything else: a device only writes.
    assert _read(secured, "operator", t["clean"])[0] == b"v"
    assert _read_denied(secured, "device", t["clean"], caplog)
    assert _read_denied(secured, "device", t["dlq"], caplog)


def test_operator_reads_clean_and_dlq_never_raw(
    secured: HitoSettings, caplog: pytest.LogCaptureFixture
) -> None:
    t = _topics(secured)
    assert _read(secured, "operator", t["clean"])[0] == b"v"
    assert _read(secured, "operator", t["dlq"])[0] == b"v"
    assert _read_denied(secured, "operator", t["raw"], caplog)


def test_the_rejected_bytes_stay_in_the_raw_zone(
    secured: HitoSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """hito.dlq.originals (issue #18): the pipeline writes it, the admin (hito dlq replay)
    reads it, operators and devices cannot read it; operators read hito.dlq."""
    t = _topics(secured)
    assert _read(secured, "operator", t["dlq"])[0] == b"v"  # the operators' records: yes
    assert _read_denied(secured, "operator", t["originals"], caplog)  # the bytes: no
    assert _read_denied(secured, "device", t["originals"], caplog)
    assert _read(secured, "admin", t["originals"])[0] == b"v"
    _send(secured, "pipeline", t["originals"])  # allowed: no exception
    with pytest.raises(TopicDenied):
        _send(secured, "operator", t["originals"])
    with pytest.raises(TopicDenied):
        _send(secured, "device", t["originals"])
    with pytest.raises(TopicDenied):
        _send(secured, "operator", t["clean"])


def test_pipeline_writes_clean_and_dlq_but_not_raw(secured: HitoSettings) -> None:
    t = _topics(secured)
    _send(secured, "pipeline", t["clean"])
    _send(secured, "pipeline", t["dlq"])
    with pytest.raises(TopicDenied):
        _send(secured, "pipeline", t["raw"])


def test_only_the_admin_creates_data_topics(secured: HitoSettings) -> None:
    from kafka.admin import KafkaAdminClient

    name = f"hito.test-authz-new-{uuid.uuid4().hex[:8]}"
    for role in ("device", "operator", "pipeline"):
        admin = KafkaAdminClient(**client_config(secured.kafka, role))
        try:
            with pytest.raises(KafkaError) as err:
                admin.create_topics([NewTopic(name, 1, 1)])
            assert "Authorization" in type(err.value).__name__, err.value
        finally:
            admin.close()
    admin = KafkaAdminClient(**client_config(secured.kafka, "admin"))
    try:
        admin.create_topics([NewTopic(name, 1, 1)])
        assert name in admin.list_topics()
        admin.delete_topics([name])
    finally:
        admin.close()


async def _connect(auth: dict[str, Any]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**auth, request_timeout_ms=5000)
    try:
        await producer.start()
    finally:
        await producer.stop()


def test_unauthenticated_and_wrong_password_clients_are_refused(
    secured: HitoSettings, caplog: pytest.LogCaptureFixture
) -> None:
    from aiokafka.errors import KafkaConnectionError

    right = client_config(secured.kafka, "device")
    # No SASL at all: the broker closes the connection before any metadata.
    with caplog.at_level(logging.WARNING), pytest.raises(KafkaConnectionError):
        asyncio.run(_connect({"bootstrap_servers": secured.kafka.bootstrap}))
    assert "closed" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING), pytest.raises(KafkaConnectionError):
        asyncio.run(_connect(right | {"sasl_plain_password": "not-the-password"}))
    assert "SaslAuthenticationFailed" in caplog.text
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in caplog.text
    # The same client with the right password connects.
    asyncio.run(_connect(right))


def test_devices_send_as_soon_as_topics_exist_and_a_refused_send_is_an_error(
    stack: HitoSettings,
) -> None:
    """ensure_topics returns once the broker authorises with the new ACLs (a bench run's
    producer, started right after, once lost 8 sends to TopicAuthorizationFailed), and
    send_messages raises on any send Kafka refused instead of losing it."""
    settings = _own_topics(stack)
    raw = settings.pipeline.raw_topics["sensor"]

    def messages(topic: str, n: int) -> list[SimMessage]:
        return [SimMessage(topic, b"k", b"v%d" % i, "valid", "dev", "site") for i in range(n)]

    assert send_messages(
        messages(raw, 200), producer_config=client_config(settings.kafka, "device"), total=200
    ) == {"valid": 200}
    reader = KafkaConsumer(**client_config(settings.kafka, "admin"))
    try:
        assert reader.end_offsets([TopicPartition(raw, 0)]) == {TopicPartition(raw, 0): 200}
    finally:
        reader.close()
    clean = f"{settings.pipeline.clean_topic_prefix}sensor"
    with pytest.raises(SendRefused, match=r"Kafka refused 3 of 3 messages.*TopicAuthorization"):
        send_messages(
            messages(clean, 3), producer_config=client_config(settings.kafka, "device"), total=3
        )
