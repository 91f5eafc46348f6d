"""The operator tools' reader against a broker that hangs: a frozen Kafka process (SIGSTOP)
answers no request and refuses none, as a broker behind a dropped network does. Each case
freezes the real broker just after one step of ``read_to_end`` and checks that the tool gives
up with a TimeoutError within its budget, instead of blocking for kafka-python's 30 s per step
or failing with a TypeError (``position`` gives None when its lookup times out)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from rich.console import Console

from hito.credentials import client_config
from hito.ops.read_to_end import read_to_end
from hito.settings import HitoSettings
from hito.stack import manager, process
from hito.stack.progress import make_runner
from hito.stack.services import SERVICES

BUDGET_S = 5.0
# Frozen just after the bootstrap, the first lookup needs a new connection, whose set-up is
# kafka-python's own 10 s (the consumer has no setting for it; read_to_end's docstring).
CONNECTION_SETUP_S = 10.0
RECORDS = [b"one", b"two", b"three"]


@pytest.fixture(scope="module")
def topic(stack: HitoSettings) -> Iterator[str]:
    """A topic of the module's own, with three records (read as the admin)."""
    name = f"hito.test-rte-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(**client_config(stack.kafka, "admin"))
    try:
        admin.create_topics([NewTopic(name, 1, 1)])
        producer = KafkaProducer(**client_config(stack.kafka, "admin"), acks="all")
        for value in RECORDS:
            producer.send(name, value=value).get(timeout=30)
        producer.close()
        yield name
        admin.delete_topics([name])
    finally:
        admin.close()


@pytest.fixture
def kafka_pid(stack: HitoSettings) -> Iterator[int]:
    kafka = next(s for s in SERVICES if s.name == "kafka")
    pid = process.read_pid(kafka.files(stack))
    assert pid is not None, "the stack's Kafka is not running"
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)
        # A broker frozen for seconds may be fenced by its controller for a moment.
        manager.up(stack, make_runner(Console(quiet=True)), only=["kafka"])


@pytest.mark.parametrize(
    ("step", "bound_s"),
    [
        ("__init__", BUDGET_S + CONNECTION_SETUP_S),
        ("partitions_for_topic", BUDGET_S),
        ("seek_to_beginning", BUDGET_S),
        ("end_offsets", BUDGET_S),
    ],
)
def test_a_broker_that_hangs_makes_the_reader_time_out_within_its_budget(
    stack: HitoSettings,
    topic: str,
    kafka_pid: int,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    bound_s: float,
) -> None:
    real = getattr(KafkaConsumer, step)

    def then_freeze(self: KafkaConsumer, *args: Any, **kwargs: Any) -> Any:
        result = real(self, *args, **kwargs)
        os.kill(kafka_pid, signal.SIGSTOP)
        return result

    monkeypatch.setattr(KafkaConsumer, step, then_freeze)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        list(read_to_end(stack, topic, "admin", timeout_s=BUDGET_S))
    elapsed = time.monotonic() - started
    assert BUDGET_S - 0.5 <= elapsed <= bound_s + 1.5, elapsed


def test_the_reader_reads_the_topic_whole_once_the_broker_is_back(
    stack: HitoSettings, topic: str
) -> None:
    """Whenever it runs (after the cases above, the fixture thawed the broker and waited for
    it), a read gives every record, once, in order."""
    read = list(read_to_end(stack, topic, "admin", timeout_s=60))
    assert [msg.value for msg in read] == RECORDS
