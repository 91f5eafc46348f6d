"""Batches with manual acknowledgement, and table writes on behalf of a chosen event.

Per-event processing in Faust costs a produce round trip and a changelog record per table write
per event; batches let an agent send a whole batch before one wait and write each table key
once. Two Faust behaviours are worked around here:

- ``Stream.take_events`` acks its batch in a ``finally`` block, so a worker stopped in the
  middle of a batch would commit offsets of events it never finished. ``noack_take`` never
  acks; :func:`handled_batches` acks each event only once its batch was fully handled, so an
  unfinished batch is delivered again (to this worker or to the next owner).
- A table write goes to the changelog partition of Faust's *current event* (a context
  variable set per event by the stream). In a batch that is the last event fetched, which may
  belong to another partition than the key written: :func:`on_behalf_of` makes a chosen event
  current for the writes that belong to its partition.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event

HandleBatch = Callable[[Sequence[Any]], Awaitable[list[str]]]


async def handled_batches(
    stream: Any, handle: HandleBatch, *, max_events: int, within_s: float
) -> AsyncIterator[list[str]]:
    """Take up to ``max_events`` events (waiting at most ``within_s`` for more), handle them,
    then ack them; yields each batch's outcomes (one per event, in order) as one value, since
    Faust's agent does per-value work (logging, sinks) for everything an agent yields."""
    consumer = stream.app.consumer
    mark_handled = getattr(consumer, "mark_handled", None)  # Hito's consumer (streams/consumer.py)
    async for events in stream.noack_take(max_events, within=within_s):
        outcomes = await handle(events)
        for event in events:
            if mark_handled is not None:
                mark_handled(event.message)
            await stream.ack(event)
        yield outcomes


@contextmanager
def on_behalf_of(event: Any) -> Iterator[None]:
    """Table writes inside this block go to ``event``'s partition of the changelog."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def last_event_per_partition(events: Sequence[Any]) -> dict[int, Any]:
    """partition -> the batch's last event of that partition (whose offset covers the rest)."""
    return {event.message.partition: event for event in events}
