"""BatchSend's failure path without a broker: a ``send_batch`` that raises fails the future
its records were promised (what the broker does to a batch is shown on the real one,
tests/integration/pipeline/test_delivery.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from aiokafka.errors import KafkaTimeoutError

from hito.pipeline.faust.produce import BatchSend
from hito.pipeline.output import Outgoing


class _Builder:
    def append(self, **_: Any) -> object:
        return object()  # the record's metadata: it fitted

    def close(self) -> None:
        return None


class _ProducerDown:
    """An aiokafka producer whose every batch times out (Kafka unreachable)."""

    def create_batch(self) -> _Builder:
        return _Builder()

    async def send_batch(self, builder: _Builder, topic: str, *, partition: int) -> Any:
        raise KafkaTimeoutError()


def test_a_batch_that_could_not_be_sent_fails_its_records_and_leaves_no_cycle() -> None:
    """The error goes to the records' future without its traceback: the traceback holds the
    flush's frame, which holds the builders and their futures, one of which holds the error
    (a cycle that kept every builder of the flush until a full collection)."""

    async def scenario() -> tuple[weakref.ref[BatchSend], str]:
        producer = _ProducerDown()
        send = BatchSend(lambda: producer)
        watch = weakref.ref(send)
        promised = await send(Outgoing("hito.clean.checkpoint", b"site", b"{}", None, 0, None))
        await send.flush()
        error = type(promised.exception()).__name__
        del send, promised
        return watch, error

    loop = asyncio.new_event_loop()
    gc.collect()
    gc.disable()
    try:
        watch, error = loop.run_until_complete(scenario())
        assert error == "KafkaTimeoutError"
        assert watch() is None
    finally:
        gc.enable()
        loop.close()
