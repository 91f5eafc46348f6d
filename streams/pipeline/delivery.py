"""One batch's sends to Kafka: started as the batch is handled, waited for once at its end.

A send can fail two ways, told apart here:

- the broker (or the producer, before sending) refuses *this record* for a reason of its own —
  too large, invalid, a timestamp or format it will never take. Sending it again can only fail
  again, and retrying would hold its partition forever (one oversized event did exactly that:
  a crash loop on the same offset). Such a record is a *permanent* failure of that record only:
  the caller is told (the ingest agent dead-letters the event it came from; a dead letter that
  is refused is counted), and the batch goes on. The broker answers for a whole record batch,
  though: a small record produced in the same batch as one too large is refused with it
  (tests/integration/pipeline/test_delivery.py showed it). So a record the broker refused is
  sent once more *alone* before it counts as refused.
- anything else (a broker down or moving, a timeout, a refused authorisation while ACLs
  propagate) is *retryable*: the record is sent again, with back-off, until the broker takes
  it. Nothing is dropped; the partition waits, which is the back-pressure the pipeline wants.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka.errors import (
    InvalidTimestampError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnsupportedForMessageFormatError,
)

from hito.pipeline.cancellation import stopping
from hito.pipeline.output import Headers, Outgoing, Send

log = logging.getLogger(__name__)

# Refusals of one record that no retry can change (Kafka error codes 10, 18, 32, 43).
REFUSED_RECORD_ERRORS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidTimestampError,
    UnsupportedForMessageFormatError,
)


_E = TypeVar("_E", bound=BaseException)


@dataclass(frozen=True)
class Refused:
    record: Outgoing
    error: BaseException


@dataclass
class Deliveries:
    send: Send
    max_backoff_s: float = 30.0
    first_backoff_s: float = 0.2
    _pending: list[tuple[Outgoing, Awaitable[Any] | None]] = field(default_factory=list)
    _refused: list[Refused] = field(default_factory=list)

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        tag: Any = None,
        *,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> Coroutine[Any, Any, None]:
        """Send a record (await it). Not a coroutine itself: ``_add``'s is returned, one
        coroutine per record a batch produces instead of two."""
        return self._add(Outgoing(topic, key, value, tag, partition, headers))

    async def _add(self, record: Outgoing) -> None:
        try:
            self._pending.append((record, await self.send(record)))
        except REFUSED_RECORD_ERRORS as exc:  # the producer refuses it before sending
            self._refused.append(Refused(record, exc))
        except Exception as exc:  # not sent: retried at wait()
            log.warning("send to %s failed (%r); it will be retried", record.topic, exc)
            self._pending.append((record, _failed(exc)))

    async def wait(self) -> list[Refused]:
        """Wait until every record is in Kafka or refused for good; returns the refused ones
        (and forgets everything: the object can serve the next round). Records that failed
        for any other reason are sent again, in their order: with an idempotent producer a
        partition's later batches fail with an earlier one, so order is kept."""
        pending, self._pending = self._pending, []
        refused, self._refused = self._refused, []
        delay = self.first_backoff_s
        while pending:
            await self.send.flush()
            outcomes = await _settle_each(future for _, future in pending)
            retry: list[Outgoing] = []
            last: BaseException | None = None
            for (record, _), outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, REFUSED_RECORD_ERRORS):
                    alone = await self._alone(record)
                    if isinstance(alone, REFUSED_RECORD_ERRORS):
                        refused.append(Refused(record, alone))
                    elif alone is not None:
                        retry.append(record)
                        last = alone
                elif isinstance(outcome, BaseException):
                    retry.append(record)
                    last = outcome
            if not retry:
                break
            log.warning(
                "%d sends failed (last: %r); sending them again in %.1f s",
                len(retry),
                last,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(self.max_backoff_s, delay * 2)
            for record in retry:
                await self._add(record)
            pending, self._pending = self._pending, []
            refused += self._refused
            self._refused = []
        return refused

    async def _alone(self, record: Outgoing) -> BaseException | None:
        """Send one record and wait for it before anything else is sent, so that it is alone
        in its batch; its error, or None once it is in Kafka."""
        try:
            future = await self.send(record)
            await self.send.flush()
            if future is not None:
                await asyncio.shield(future)  # (a stop here must not cancel the produce)
        except asyncio.CancelledError as exc:
            if stopping():
                raise
            return without_traceback(exc)  # cancelled by the client, not a stop: sent again
        except Exception as exc:
            return without_traceback(exc)
        return None


async def _settle_each(futures: Iterable[Awaitable[Any] | None]) -> list[Any]:
    """Each future's result or exception (a cancelled one's ``CancelledError``), in order; a
    future shared by several records (one record batch) is awaited once."""
    listed = list(futures)
    unique = {id(f): asyncio.ensure_future(f) for f in listed if f is not None}
    # asyncio.wait, not gather: a stop of this task must not cancel the futures, which a
    # producer's record batch shares with other tasks' records (another agent, the publisher's
    # dead letters); gather cancelled them, and those tasks then sent their records again.
    if unique:
        await asyncio.wait(unique.values())
    by_id = {key: _outcome(done) for key, done in unique.items()}
    # A produce future the client cancelled is a failure to retry (wait() sends it again).
    return [None if f is None else by_id[id(f)] for f in listed]


def _outcome(done: asyncio.Future[Any]) -> Any:
    if done.cancelled():
        return asyncio.CancelledError()
    return done.exception() or done.result()


def without_traceback(exc: _E) -> _E:
    """``exc``, to be kept past its ``except`` block, without its traceback: the traceback
    holds the frames the error went through, and a frame that holds the error (a local, or a
    future that carries it) closes a reference cycle, freed only by a full collection, minutes
    apart in a worker (``hito.pipeline.heap``). One per failed record: during a Kafka outage,
    every record of every retry. Errors kept are only logged by ``repr`` or named by type."""
    return exc.with_traceback(None)


def _failed(exc: BaseException) -> asyncio.Future[Any]:
    """A future that failed with ``exc`` (for a send that raised instead of returning one)."""
    failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    failed.set_exception(without_traceback(exc))
    return failed
