"""What a failed InfluxDB write means, and the one policy every flush follows.

A failure is either *retryable* — the same points may be written later: InfluxDB down, slow or
overloaded (connection errors, timeouts, HTTP 429 and 5xx), refusing our token (401/403: a
revoked or replaced token is about credentials, not the points; the sink re-reads its token),
or without the bucket (404: a configuration to fix, which pages as SinkFailing) — or
*permanent*: any other 4xx, which these points will never get past (a bug in what we wrote).

The policy (:func:`write_or_dead_letter`), the same for windows, pipeline counts, surge scores
and closed days: a retryable failure defers the points (they stay pending and are written on a
later tick, never dropped: the state behind them is durable in the changelog); a permanent one
sends them to the DLQ as ``sink_rejected`` (stage ``sink``) and counts them done, so one bad
point cannot stop a worker forever. A flush's points come in groups (a window, a minute of
counts, a closed day): a permanent refusal is narrowed down to the groups refused on their own
by writing halves (writes are idempotent: a point written twice is the same point), so one bad
window no longer takes the rest of its flush to the DLQ with it. The halving stops after
``NARROWING_WRITES`` writes; the groups not told apart by then go to the DLQ together.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum

from hito.pipeline.delivery import without_traceback

log = logging.getLogger(__name__)

# Writes a permanent refusal may take to find the groups refused: one bad group among 1,000
# takes 1 + 2 * 10 of them; a refusal of everything (a bug in what we write) stops here.
NARROWING_WRITES = 64


class PermanentSinkError(Exception):
    """InfluxDB refused the batch for a reason that will not go away (HTTP 4xx but 401, 403,
    404, 429)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"InfluxDB rejected the batch: HTTP {status}: {body[:300]}")
        self.status = status


class RetryableSinkError(Exception):
    """InfluxDB is down, slow, overloaded or refusing our token; the same batch may succeed
    later."""


class Failure(Enum):
    CREDENTIALS = "credentials"  # retryable, after reading the token again
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


def classify_status(status: int) -> Failure:
    """An HTTP status of a failed write (0: no response at all)."""
    if status in (401, 403):
        return Failure.CREDENTIALS
    # 404: no such bucket or org (deleted and being made again, or misnamed): about where the
    # points go, not what they are. It was permanent: every window and closed day published
    # meanwhile was dead-lettered and counted done, lost to the bucket for good.
    if status in (0, 404, 429) or status >= 500:
        return Failure.RETRYABLE
    return Failure.PERMANENT


class Outcome(Enum):
    WRITTEN = "written"
    DEFERRED = "deferred"  # retryable failure: still pending, written on a later tick
    DEAD_LETTERED = "dead_lettered"  # permanent failure: sent to the DLQ, counted done


async def write_or_dead_letter(
    groups: Sequence[str],
    write: Callable[[Sequence[str]], Awaitable[None]],
    *,
    what: str,
    dead_letter: Callable[[list[tuple[str, PermanentSinkError]]], Awaitable[None]],
    before: Callable[[], Awaitable[None]] | None = None,
) -> Outcome:
    """Write ``groups`` (``write`` writes the points of the groups it is given) under the
    policy above, after ``before`` (once; the deletes of stale series); ``what`` names the
    flush in the log. ``dead_letter`` is given each refused group with its refusal, once the
    flush is settled; a retryable failure met while narrowing defers the whole flush (nothing
    is dead-lettered: the next tick starts again). A permanent refusal of ``before`` refuses
    every group, without narrowing: no write would tell the groups apart."""
    try:
        if before is not None:
            await before()
        refused = await _refused_among(list(groups), write, [NARROWING_WRITES])
    except PermanentSinkError as exc:  # from ``before`` (the narrowing keeps its own)
        # (``refused`` is a local of this frame, which the traceback holds: kept without it)
        refused = [(group, without_traceback(exc)) for group in groups]
    except RetryableSinkError as exc:
        log.warning("InfluxDB write of %s deferred: %s", what, exc)
        return Outcome.DEFERRED
    if not refused:
        return Outcome.WRITTEN
    log.error(
        "InfluxDB refused %d of %d groups of %s (sent to the DLQ as sink_rejected): %s",
        len(refused),
        len(groups),
        what,
        refused[0][1],
    )
    await dead_letter(refused)
    return Outcome.DEAD_LETTERED


async def _refused_among(
    part: Sequence[str],
    write: Callable[[Sequence[str]], Awaitable[None]],
    budget: list[int],
) -> list[tuple[str, PermanentSinkError]]:
    """The groups of ``part`` refused on their own, found by writing halves; each halving
    spends two writes of the shared ``budget`` (the first write is not counted).

    A function of the module, not a closure of the flush: a closure that calls itself holds
    itself through its own cell, a reference cycle that kept every flush's lines alive until a
    full garbage collection (the flush awaits InfluxDB, so by then the cycle was old), minutes
    apart in a worker (``hito.pipeline.heap``). The soak test's worker grew by 5-11 MB after
    its warm-up, about 1 KB an event at its rate, then fell back at the collection (CI r49)."""
    try:
        await write(part)
        return []
    except PermanentSinkError as exc:
        if len(part) == 1 or budget[0] < 2:
            return [(group, exc) for group in part]
        budget[0] -= 2
        half = len(part) // 2
        return await _refused_among(part[:half], write, budget) + await _refused_among(
            part[half:], write, budget
        )
