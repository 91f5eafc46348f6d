"""Deliveries' bookkeeping: retryable failures are sent again until delivered (never dropped),
refusals are reported once. What the broker refuses is shown on the real broker
(tests/integration/pipeline/test_delivery.py); here the send is scripted."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, NotLeaderForPartitionError

from hito.pipeline.delivery import Deliveries
from hito.pipeline.output import Outgoing


class ScriptedSend:
    """A Send whose answer per record is scripted by the record's value."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def __call__(self, record: Outgoing) -> Any:
        return await self.answer(record.value)

    async def flush(self) -> None:
        return None


def test_retryable_failures_are_sent_again_until_delivered() -> None:
    attempts: dict[bytes, int] = {}
    failures = {b"a": [NotLeaderForPartitionError(), KafkaTimeoutError()], b"b": []}

    async def answer(value: bytes) -> Any:
        attempts[value] = attempts.get(value, 0) + 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if failures[value]:
            future.set_exception(failures[value].pop(0))
        else:
            future.set_result(None)
        return future

    async def scenario() -> list[Any]:
        deliveries = Deliveries(ScriptedSend(answer), first_backoff_s=0.01)
        await deliveries.add("t", None, b"a")
        await deliveries.add("t", None, b"b")
        return await deliveries.wait()

    assert asyncio.run(scenario()) == []
    assert attempts == {b"a": 3, b"b": 1}


def test_a_refusal_before_sending_is_reported_without_retrying() -> None:
    calls: list[bytes] = []

    async def answer(value: bytes) -> Any:
        calls.append(value)
        if len(value) > 3:
            raise MessageSizeTooLargeError()  # the producer's own size check
        return None

    async def scenario() -> list[Any]:
        deliveries = Deliveries(ScriptedSend(answer))
        await deliveries.add("t", None, b"big!", tag="the big one")
        await deliveries.add("t", None, b"ok")
        return await deliveries.wait()

    [refused] = asyncio.run(scenario())
    assert (refused.record.tag, type(refused.error)) == ("the big one", MessageSizeTooLargeError)
    assert calls == [b"big!", b"ok"]


def test_a_produce_the_client_cancelled_is_sent_again_not_dropped() -> None:
    """A send's future cancelled by the producer (not a stop of the waiting task) used to
    raise CancelledError out of wait(): taken for a stop, the batch was read again at once,
    unbacked-off; now it is a retryable failure like a timeout."""
    attempts: dict[bytes, int] = {}

    async def answer(value: bytes) -> Any:
        attempts[value] = attempts.get(value, 0) + 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if value == b"a" and attempts[value] == 1:
            future.cancel()
        else:
            future.set_result(None)
        return future

    async def scenario() -> list[Any]:
        deliveries = Deliveries(ScriptedSend(answer), first_backoff_s=0.01)
        await deliveries.add("t", None, b"a")
        await deliveries.add("t", None, b"b")
        return await deliveries.wait()

    assert asyncio.run(scenario()) == []
    assert attempts == {b"a": 2, b"b": 1}


def test_a_stop_while_waiting_is_let_through() -> None:
    """The task waiting for the sends is cancelled (a stop): it ends cancelled, at once,
    without sending anything again."""
    attempts: list[bytes] = []

    async def answer(value: bytes) -> Any:
        attempts.append(value)
        return asyncio.get_running_loop().create_future()  # never delivered

    async def scenario() -> bool:
        deliveries = Deliveries(ScriptedSend(answer), first_backoff_s=0.01)
        await deliveries.add("t", None, b"a")
        waiting = asyncio.ensure_future(deliveries.wait())
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.wait({waiting}, timeout=1.0)
        return waiting.cancelled()

    assert asyncio.run(scenario()) is True
    assert attempts == [b"a"]


def test_a_stop_of_one_task_leaves_a_shared_produce_alone() -> None:
    """A producer's record batch has one future for all its records, and they may be two
    tasks' (an agent's and the publisher's dead letters). Waiting with gather, a stop of one
    task cancelled that future: the other then took it for a cancelled produce and sent its
    record again (a duplicate DLQ record at every stop)."""
    attempts: list[bytes] = []

    async def scenario() -> tuple[bool, list[Any]]:
        shared: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def answer(value: bytes) -> Any:
            attempts.append(value)
            return shared

        stopped, other = Deliveries(ScriptedSend(answer)), Deliveries(ScriptedSend(answer))
        await stopped.add("t", None, b"a")
        await other.add("t", None, b"b")
        waiting = asyncio.ensure_future(stopped.wait())
        settled = asyncio.ensure_future(other.wait())
        await asyncio.sleep(0.01)
        waiting.cancel()  # the stop of one task
        await asyncio.sleep(0.01)
        shared.set_result(None)  # the batch is in Kafka
        return shared.cancelled(), await settled

    cancelled, refused = asyncio.run(scenario())
    assert not cancelled and refused == []
    assert attempts == [b"a", b"b"]  # nothing sent again


class _FailingOnce:
    """A Send that fails the way ``how`` says for its first record (or every one, for a
    refusal), each time with a new error (an error the test kept would keep what its
    traceback reaches)."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.calls = 0

    async def __call__(self, record: Outgoing) -> Any:
        self.calls += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.how == "raises" and self.calls == 1:
            raise KafkaTimeoutError()  # no future at all: the producer gave up at once
        if self.how == "refused":
            future.set_exception(MessageSizeTooLargeError())  # the broker's answer, twice
        elif self.how == "fails" and self.calls == 1:
            future.set_exception(NotLeaderForPartitionError())
        else:
            future.set_result(None)
        return future

    async def flush(self) -> None:
        return None


@pytest.mark.parametrize(("how", "refused"), [("raises", 0), ("fails", 0), ("refused", 1)])
def test_a_failed_send_leaves_no_reference_cycle_behind(how: str, refused: int) -> None:
    """A failed record's error, kept for the retry or the refusal, is kept without the frames
    it went through: a frame holding the future that holds the error is a cycle, which kept
    the batch's Deliveries (and its records) until a full collection, minutes apart in a
    worker. During a Kafka outage, one per record per retry."""

    async def scenario() -> tuple[weakref.ref[Deliveries], int]:
        deliveries = Deliveries(_FailingOnce(how), first_backoff_s=0.001)
        watch = weakref.ref(deliveries)
        await deliveries.add("t", None, b"x")
        count = len(await deliveries.wait())
        del deliveries
        return watch, count

    loop = asyncio.new_event_loop()
    gc.collect()
    gc.disable()
    logging.disable(logging.CRITICAL)  # a log record would keep the error (pytest keeps them)
    try:
        watch, count = loop.run_until_complete(scenario())
        assert count == refused
        assert watch() is None
    finally:
        logging.disable(logging.NOTSET)
        gc.enable()
        loop.close()
