"""Deliveries' bookkeeping: retryable failures are sent again until delivered (never dropped),
refusals are reported once. What the broker refuses is shown on the real broker
(tests/integration/pipeline/test_delivery.py); here the send is scripted."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, NotLeaderForPartitionError

from hito.pipeline.delivery import Deliveries


def test_retryable_failures_are_sent_again_until_delivered() -> None:
    attempts: dict[bytes, int] = {}
    failures = {b"a": [NotLeaderForPartitionError(), KafkaTimeoutError()], b"b": []}

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        attempts[value] = attempts.get(value, 0) + 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if failures[value]:
            future.set_exception(failures[value].pop(0))
        else:
            future.set_result(None)
        return future

    async def scenario() -> list[Any]:
        deliveries = Deliveries(send, first_backoff_s=0.01)
        await deliveries.add("t", None, b"a")
        await deliveries.add("t", None, b"b")
        return await deliveries.wait()

    assert asyncio.run(scenario()) == []
    assert attempts == {b"a": 3, b"b": 1}


def test_a_refusal_before_sending_is_reported_without_retrying() -> None:
    calls: list[bytes] = []

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        calls.append(value)
        if len(value) > 3:
            raise MessageSizeTooLargeError()  # the producer's own size check
        return None

    async def scenario() -> list[Any]:
        deliveries = Deliveries(send)
        await deliveries.add("t", None, b"big!", tag="the big one")
        await deliveries.add("t", None, b"ok")
        return await deliveries.wait()

    [refused] = asyncio.run(scenario())
    assert (refused.record.tag, type(refused.error)) == ("the big one", MessageSizeTooLargeError)
    assert calls == [b"big!", b"ok"]
