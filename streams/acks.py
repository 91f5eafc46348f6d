"""Manual acknowledgement for agents whose work must finish before an offset may commit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any


async def handled_with_manual_acks(
    stream: Any, handle: Callable[[Any], Awaitable[str]]
) -> AsyncIterator[str]:
    """Handle each event, then ack it. Faust acks an event in a ``finally`` block, so a worker
    stopped mid-event would commit an offset it never finished; with manual acks an event
    that was not fully handled is delivered again (to this worker or to the next owner)."""
    manual = stream.noack()
    async for event in manual.events():
        outcome = await handle(event)
        await manual.ack(event)
        yield outcome
