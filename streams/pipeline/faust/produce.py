"""Producing a batch's records through aiokafka's batch interface, inside Faust's producer.

``Topic.send`` costs 24-31 µs per record (NOTES-perf.md): Faust builds a FutureMessage, a
callback chain and a send task for each. Here a batch's records are appended to one aiokafka
``BatchBuilder`` per (topic, partition) (under a microsecond each) and each builder is handed
to the producer once (``send_batch``), at :meth:`BatchSend.flush`. It is Faust's own producer
(the app's aiokafka producer), so Faust's flush before a commit covers these records too.

Partitions: a record with a key and no partition goes where aiokafka's default partitioner
(murmur2, like every Kafka client) puts it, so clean events keyed by site land exactly where
``Topic.send`` put them; the answer is cached per (topic, key) for the few, repeated keys of
clean topics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

from hito.pipeline.delivery import without_traceback
from hito.pipeline.output import Outgoing

_KEY_CACHE_MAX = 100_000  # (topic, key) -> partition entries kept (sites: a few dozen)


class BatchSend:
    """A ``hito.pipeline.output.Send`` over an aiokafka producer (``producer()`` returns it:
    Faust starts it with the app, after this object is made)."""

    def __init__(self, producer: Callable[[], Any]) -> None:
        self._producer = producer
        # (topic, partition) -> (the open builder, the future its records were promised)
        self._open: dict[tuple[str, int], tuple[Any, asyncio.Future[Any]]] = {}
        self._full: list[tuple[str, int, Any, asyncio.Future[Any]]] = []
        self._partitions: dict[tuple[str, bytes | None], int] = {}

    async def __call__(self, record: Outgoing) -> asyncio.Future[Any]:
        producer = self._producer()
        partition = record.partition
        if partition is None:
            # The cache inline: _partition_of is a coroutine, awaited only on a miss.
            partition = self._partitions.get((record.topic, record.key))
            if partition is None:
                partition = await self._partition_of(producer, record.topic, record.key)
        slot = (record.topic, partition)
        opened = self._open.get(slot)
        if opened is None:
            opened = self._open[slot] = (producer.create_batch(), _future())
        headers = record.headers or []
        if opened[0].append(key=record.key, value=record.value, timestamp=None, headers=headers):
            return opened[1]
        # Full: this builder goes out at the next flush, the record starts a new one.
        self._full.append((record.topic, partition, *opened))
        opened = self._open[slot] = (producer.create_batch(), _future())
        if opened[0].append(key=record.key, value=record.value, timestamp=None, headers=headers):
            return opened[1]
        raise MessageSizeTooLargeError(
            f"one record of {len(record.value or b'')} bytes fills a batch"
        )

    async def flush(self) -> None:
        """Hand every builder to the producer; each promised future completes with its
        batch's delivery."""
        if not self._open and not self._full:
            return
        producer = self._producer()
        builders = [*self._full, *((t, p, b, f) for (t, p), (b, f) in self._open.items())]
        self._full, self._open = [], {}
        for topic, partition, builder, promised in builders:
            # Closed, aiokafka sends it at once; open, it would wait out the producer's
            # linger first (5 ms, twice per ingest batch): at 500 events/s that made every
            # lane batch wait ~10 ms, and records queued 70-180 ms before ingest took them
            # (10-40 ms closed; test_delivery.py, bench/README.md).
            builder.close()
            try:
                delivered = await producer.send_batch(builder, topic, partition=partition)
            except Exception as exc:
                # (this frame holds the builders and their futures: not the traceback too)
                promised.set_exception(without_traceback(exc))
                continue
            delivered.add_done_callback(lambda done, p=promised: _copy(done, p))

    async def _partition_of(self, producer: Any, topic: str, key: bytes | None) -> int:
        if key is not None:
            cached = self._partitions.get((topic, key))
            if cached is not None:
                return cached
        await producer.client._wait_on_metadata(topic)
        partition: int = producer._partition(topic, None, None, None, key, None)
        if key is not None:
            if len(self._partitions) >= _KEY_CACHE_MAX:
                self._partitions.clear()
            self._partitions[(topic, key)] = partition
        return partition


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


def _copy(done: asyncio.Future[Any], promised: asyncio.Future[Any]) -> None:
    if promised.done():
        return
    if done.cancelled():
        promised.cancel()
    elif (exc := done.exception()) is not None:
        promised.set_exception(exc)
    else:
        promised.set_result(done.result())
