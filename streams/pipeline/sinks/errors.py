"""What a failed InfluxDB write means, and the one policy every flush follows.

A failure is either *retryable* — the same points may be written later: InfluxDB down, slow or
overloaded (connection errors, timeouts, HTTP 429 and 5xx), refusing our token (401/403: a
revoked or replaced token is about credentials, not the points; the sink re-reads its token),
or without the bucket (404: a configuration to fix, which pages as SinkFailing) — or
*permanent*: any other 4xx, which these points will never get past (a bug in what we wrote).

The policy (:func:`write_or_dead_letter`), the same for windows, pipeline counts and surge
scores: a retryable failure defers the points (they stay pending and are written on a later
tick, never dropped: the state behind them is durable in the changelog); a permanent one sends
them to the DLQ as ``sink_rejected`` (stage ``sink``) and counts them done, so one bad point
cannot stop a worker forever.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import Enum

log = logging.getLogger(__name__)


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
    write: Callable[[], Awaitable[None]],
    *,
    what: str,
    dead_letter: Callable[[PermanentSinkError], Awaitable[None]],
) -> Outcome:
    """Run one flush's ``write`` under the policy above; ``what`` names it in the log."""
    try:
        await write()
    except RetryableSinkError as exc:
        log.warning("InfluxDB write of %s deferred: %s", what, exc)
        return Outcome.DEFERRED
    except PermanentSinkError as exc:
        log.error("InfluxDB refused %s (sent to the DLQ as sink_rejected): %s", what, exc)
        await dead_letter(exc)
        return Outcome.DEAD_LETTERED
    return Outcome.WRITTEN
