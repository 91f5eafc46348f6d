"""A stop told apart from a cancelled future (hito.pipeline.cancellation)."""

from __future__ import annotations

import asyncio

from hito.pipeline.cancellation import stopping


def test_a_cancelled_task_is_stopping_a_cancelled_future_is_not() -> None:
    seen: dict[str, bool] = {}

    async def awaits(future: asyncio.Future[None], name: str) -> None:
        try:
            await future
        except asyncio.CancelledError:
            seen[name] = stopping()
            raise

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        cancelled_by_client = loop.create_future()
        task = asyncio.ensure_future(awaits(cancelled_by_client, "future cancelled"))
        await asyncio.sleep(0)
        cancelled_by_client.cancel()
        await asyncio.wait({task})
        stopped = asyncio.ensure_future(awaits(loop.create_future(), "task stopped"))
        await asyncio.sleep(0)
        stopped.cancel()
        await asyncio.wait({stopped})

    asyncio.run(scenario())
    assert seen == {"future cancelled": False, "task stopped": True}
    assert stopping() is False  # outside any task
