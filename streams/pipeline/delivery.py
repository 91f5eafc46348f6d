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
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import (
    InvalidTimestampError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnsupportedForMessageFormatError,
)

from hito.pipeline.output import Send

log = logging.getLogger(__name__)

# Refusals of one record that no retry can change (Kafka error codes 10, 18, 32, 43).
REFUSED_RECORD_ERRORS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidTimestampError,
    UnsupportedForMessageFormatError,
)


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes
    tag: Any = None  # what the caller needs to handle a refusal (e.g. the event it came from)


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

    async def add(self, topic: str, key: bytes | None, value: bytes, tag: Any = None) -> None:
        record = Outgoing(topic, key, value, tag)
        try:
            self._pending.append((record, await self.send(topic, key, value)))
        except REFUSED_RECORD_ERRORS as exc:  # the producer refuses it before sending
            self._refused.append(Refused(record, exc))
        except Exception as exc:  # not sent: retried at wait()
            log.warning("send to %s failed (%r); it will be retried", topic, exc)
            self._pending.append((record, _failed(exc)))

    async def wait(self) -> list[Refused]:
        """Wait until every record is in Kafka or refused for good; returns the refused ones
        (and forgets everything: the object can serve the next round)."""
        pending, self._pending = self._pending, []
        refused, self._refused = self._refused, []
        delay = self.first_backoff_s
        while pending:
            outcomes = await asyncio.gather(
                *(_settled(future) for _, future in pending), return_exceptions=True
            )
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
                    if isinstance(outcome, asyncio.CancelledError):
                        raise outcome
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
                await self.add(record.topic, record.key, record.value, record.tag)
            pending, self._pending = self._pending, []
            refused += self._refused
            self._refused = []
        return refused

    async def _alone(self, record: Outgoing) -> BaseException | None:
        """Send one record and wait for it before anything else is sent, so that it is alone
        in its batch; its error, or None once it is in Kafka."""
        try:
            await _settled(await self.send(record.topic, record.key, record.value))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return exc
        return None


async def _settled(future: Awaitable[Any] | None) -> Any:
    return None if future is None else await future


async def _failed(exc: BaseException) -> Any:
    raise exc
