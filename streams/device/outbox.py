"""A device's durable outbox: events wait here, on disk, until the broker acknowledged them.

Layout of the outbox folder::

    lock                      flock: one process per outbox (its pid inside, for the message)
    seq-floor.json            every seq below it is used (hito.device.seq)
    acked.json                {"segment": id, "offset": n}: everything before it was acknowledged
    00000000000000000007.seg  segments of records (hito.device.records), appended in seq order

Invariants:

- :meth:`Outbox.append` returns only after the records are fsync'd; a reader never sees bytes
  past that point (``_Segment.size`` is the durable end), so nothing is sent that a power cut
  could take back, and a torn tail holds only records nobody saw.
- Records are removed only from the head, and only when acknowledged (:meth:`Outbox.ack`) or
  explicitly discarded (:meth:`Outbox.discard_expired`, which reports what it removed).
- ``seq`` strictly increases across appends, and never goes back after a restart
  (:meth:`Outbox.next_seq`, hito.device.seq).
- Bounded: an append that would pass ``max_bytes``, or while the oldest waiting event is older
  than ``max_age_s``, raises :class:`OutboxFull`; nothing already accepted is ever dropped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import takewhile
from pathlib import Path

from hito.device import durable
from hito.device.records import Record, decode, encode
from hito.device.segments import (
    OutboxLocked,
    Position,
    Segment,
    load_segments,
    segment_path,
    take_lock,
    truncate,
)
from hito.device.seq import SeqFloor

__all__ = ["EventTooOld", "Outbox", "OutboxFull", "OutboxLocked", "OutboxStatus", "Position"]

log = logging.getLogger(__name__)

DAY_S = 86_400.0
_READ_CHUNK = 2 * 1024 * 1024


class OutboxFull(RuntimeError):
    """The outbox refused new events; ``reason`` is ``"bytes"`` or ``"age"``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class EventTooOld(ValueError):
    """The event is already older than the outbox's ``max_age_s``."""


class OutboxCorrupt(OSError):
    """Bytes the outbox had fsync'd no longer read back (a disk error, not a power cut)."""


@dataclass(frozen=True)
class OutboxLimits:
    max_bytes: int = 256 * 1024 * 1024
    # A day below the pipeline's 7-day bound (clock_skew): whatever waits at the limit is still
    # accepted if the uplink returns within that day.
    max_age_s: float = 6 * DAY_S
    segment_bytes: int = 4 * 1024 * 1024
    # A segment whose events were all acknowledged is deleted once its first event is this old
    # (sooner would mean a new file, and a folder fsync, for nearly every event).
    release_acked_after_s: float = 60.0


@dataclass(frozen=True)
class Pending:
    """A waiting record, where it starts and where the next one starts."""

    record: Record
    start: Position
    end: Position


@dataclass(frozen=True)
class OutboxStatus:
    pending_events: int
    pending_bytes: int
    oldest_event_ms: int | None  # event_time of the oldest waiting event
    first_appended_ms: int | None  # when the head of the queue was appended
    next_seq: int
    problems: tuple[str, ...]  # what recovery found (torn tails, corrupt segments)


@dataclass(frozen=True)
class Discarded:
    events: int
    first_seq: int | None
    last_seq: int | None


class Outbox:
    """Thread-safe only under the caller's lock (hito.device.sdk holds one per client)."""

    def __init__(
        self,
        directory: Path,
        limits: OutboxLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dir = directory
        self.limits = limits or OutboxLimits()
        self._clock = clock
        durable.make_dirs(directory)
        self._lock_fd: int | None = take_lock(directory / "lock")
        self._floor = SeqFloor(directory / "seq-floor.json")
        self._acked = self._load_acked()
        self._first_pending = 0  # index into the head segment's records
        self._write_fd: int | None = None
        self._segments, self._problems = load_segments(directory, self._acked)
        # Segments wholly acknowledged whose deletion a crash interrupted.
        while self._segments and self._head_done():
            self._drop_head()
        self._oldest_ms = self._compute_oldest()

    # -- opening -----------------------------------------------------------------------------

    def _load_acked(self) -> Position:
        stored = durable.read_json(self.dir / "acked.json")
        if isinstance(stored, dict):
            return Position(int(stored["segment"]), int(stored["offset"]))
        return Position(0, 0)

    # -- state ---------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The highest seq in the outbox or below the floor (-1: none ever)."""
        in_segments = max((s.max_seq for s in self._segments), default=-1)
        return max(in_segments, self._floor.value - 1)

    @property
    def next_seq(self) -> int:
        return self.last_seq + 1

    def raise_floor(self, next_seq: int) -> None:
        self._floor.raise_to(next_seq)

    def now(self) -> float:
        return self._clock()

    def drop_unsent_tail(self, first_seq: int) -> int:
        """Recovery only, before the sender starts: cut the tail records from ``first_seq`` on
        (those of a batch whose append never returned, hence never sent); returns how many."""
        if not self._segments:
            return 0
        tail = self._segments[-1]
        records = decode(tail.path.read_bytes()[: tail.size]).records
        kept = [(offset, r) for offset, r in records if r.seq < first_seq]
        dropped = len(records) - len(kept)
        if not dropped:
            return 0
        cut = records[len(kept)][0]
        if Position(tail.id, cut) < self._acked:
            raise ValueError(f"seq {first_seq} was acknowledged: it was sent")
        truncate(tail.path, cut)
        self._close_writer()
        tail.size = cut
        del tail.event_ms[len(tail.event_ms) - dropped :]
        tail.max_seq = kept[-1][1].seq if kept else -1
        self._oldest_ms = self._compute_oldest()
        return dropped

    def status(self) -> OutboxStatus:
        head = self._segments[0] if self._segments else None
        first_appended = head.appended_ms if head and self._pending_events() else None
        return OutboxStatus(
            pending_events=self._pending_events(),
            pending_bytes=self._pending_bytes(),
            oldest_event_ms=self._oldest_ms,
            first_appended_ms=first_appended,
            next_seq=self.next_seq,
            problems=tuple(self._problems),
        )

    def _pending_events(self) -> int:
        return sum(len(s.event_ms) for s in self._segments) - self._first_pending

    def _pending_bytes(self) -> int:
        total = sum(s.size for s in self._segments)
        if self._segments and self._acked.segment == self._segments[0].id:
            total -= self._acked.offset
        return total

    def _compute_oldest(self) -> int | None:
        mins = [
            min(waiting)
            for i, s in enumerate(self._segments)
            if (waiting := s.event_ms[self._first_pending :] if i == 0 else s.event_ms)
        ]
        return min(mins) if mins else None

    # -- appending -----------------------------------------------------------------------------

    def append(self, records: Sequence[Record]) -> None:
        """Durably append ``records`` (their seqs strictly increasing from :attr:`next_seq` on);
        returns once they are fsync'd."""
        if not records:
            return
        now_ms = int(self._clock() * 1000)
        self._check_bounds(records, now_ms)
        expected = self.next_seq
        for r in records:
            if r.seq < expected:
                raise ValueError(f"seq {r.seq} is not above the last one used ({expected - 1})")
            expected = r.seq + 1
        data = b"".join(encode(r) for r in records)
        seg = self._writable_segment()
        assert self._write_fd is not None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._write_fd, view) :]
            os.fsync(self._write_fd)
        except OSError:
            # Leave nothing half-written behind for the next append (a reopen would cut it).
            os.ftruncate(self._write_fd, seg.size)
            os.fsync(self._write_fd)
            raise
        seg.size += len(data)
        if seg.appended_ms is None:
            seg.appended_ms = records[0].appended_ms
        seg.event_ms.extend(r.event_time_ms for r in records)
        seg.max_seq = records[-1].seq
        oldest = min(r.event_time_ms for r in records)
        self._oldest_ms = oldest if self._oldest_ms is None else min(self._oldest_ms, oldest)

    def _check_bounds(self, records: Sequence[Record], now_ms: int) -> None:
        max_age_ms = int(self.limits.max_age_s * 1000)
        for r in records:
            if now_ms - r.event_time_ms > max_age_ms:
                raise EventTooOld(
                    f"seq {r.seq}: event_time is {(now_ms - r.event_time_ms) / 3.6e6:.1f} h old, "
                    f"over the outbox's max age of {max_age_ms / 3.6e6:.1f} h"
                )
        if self._oldest_ms is not None and now_ms - self._oldest_ms > max_age_ms:
            raise OutboxFull(
                "age",
                f"outbox full: its oldest waiting event is "
                f"{(now_ms - self._oldest_ms) / 3.6e6:.1f} h old, over the max age of "
                f"{max_age_ms / 3.6e6:.1f} h; nothing was dropped; new events are refused "
                f"until the broker takes the old ones (or discard_expired() is called)",
            )
        size = sum(r.size for r in records)
        if self._pending_bytes() + size > self.limits.max_bytes:
            raise OutboxFull(
                "bytes",
                f"outbox full: {self._pending_bytes()} bytes of {self._pending_events()} "
                f"events wait for the broker; {size} more would pass max_bytes "
                f"({self.limits.max_bytes}); nothing was dropped",
            )

    def _writable_segment(self) -> Segment:
        tail = self._segments[-1] if self._segments else None
        if tail is not None and tail.size < self.limits.segment_bytes:
            if self._write_fd is None:
                self._write_fd = os.open(tail.path, os.O_WRONLY | os.O_APPEND)
            return tail
        self._close_writer()
        last_id = max([s.id for s in self._segments] + [self._acked.segment])
        seg = Segment(last_id + 1, segment_path(self.dir, last_id + 1))
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL
        self._write_fd = os.open(seg.path, flags, 0o600)
        durable.fsync_dir(self.dir)
        self._segments.append(seg)
        return seg

    def _close_writer(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None

    # -- reading and acknowledging -------------------------------------------------------------

    def pending(
        self, max_records: int = 500, max_bytes: int = 1024 * 1024, after: Position | None = None
    ) -> list[Pending]:
        """The next waiting records in order, from the acknowledged position (or ``after``):
        at least one when any waits, then up to ``max_records`` and ``max_bytes``."""
        cursor = after or self._acked
        out: list[Pending] = []
        budget = max_bytes
        for seg in self._segments:
            if seg.id < cursor.segment:
                continue
            pos = cursor.offset if seg.id == cursor.segment else 0
            while pos < seg.size:
                if len(out) >= max_records:
                    return out
                with seg.path.open("rb") as f:
                    f.seek(pos)
                    data = f.read(min(seg.size - pos, _READ_CHUNK))
                decoded = decode(data, limit=max_records - len(out))
                if not decoded.records:  # fsync'd bytes changed under us: a disk error
                    raise OutboxCorrupt(f"{seg.path} unreadable at {pos}: {decoded.problem}")
                for offset, rec in decoded.records:
                    if out and rec.size > budget:
                        return out
                    budget -= rec.size
                    start = Position(seg.id, pos + offset)
                    out.append(Pending(rec, start, Position(seg.id, start.offset + rec.size)))
                pos = out[-1].end.offset
        return out

    def ack(self, done: Sequence[Pending]) -> None:
        """``done``, the head of the queue in order (a prefix of what :meth:`pending` gave),
        was acknowledged by the broker: durably move past it, delete what is no longer needed."""
        if not done:
            return
        self._advance(done[-1].end, len(done))

    def _advance(self, end: Position, count: int) -> None:
        durable.write_json_atomic(
            self.dir / "acked.json", {"segment": end.segment, "offset": end.offset}
        )
        self._acked = end
        left = count
        while left and self._segments:
            head = self._segments[0]
            take = min(left, len(head.event_ms) - self._first_pending)
            self._first_pending += take
            left -= take
            if self._head_done():
                self._drop_head()
            elif take == 0:
                break
        while self._segments and self._head_done():
            self._drop_head()
        self._release_acked_tail()
        self._oldest_ms = self._compute_oldest()

    def _head_done(self) -> bool:
        """The head segment is closed (not the tail) and wholly acknowledged."""
        head = self._segments[0]
        acked_past = self._acked.segment > head.id or (
            self._acked.segment == head.id and self._acked.offset >= head.size
        )
        return acked_past and len(self._segments) > 1

    def _drop_head(self) -> None:
        head = self._segments.pop(0)
        self._floor.raise_to(head.max_seq + 1)  # before its records are gone (seq.py)
        durable.remove(head.path)
        self._first_pending = 0
        if self._segments and self._acked.segment < self._segments[0].id:
            self._acked = Position(self._segments[0].id, 0)

    def _release_acked_tail(self) -> None:
        """Delete the last segment too once all of it is acknowledged and it is old enough:
        acknowledged personal data does not linger on the device."""
        if len(self._segments) != 1:
            return
        tail = self._segments[0]
        done = self._acked == Position(tail.id, tail.size) and tail.size > 0
        age_s = self._clock() - (tail.appended_ms or 0) / 1000
        if done and age_s >= self.limits.release_acked_after_s:
            self._close_writer()
            self._floor.raise_to(tail.max_seq + 1)
            durable.remove(tail.path)
            self._segments.clear()
            self._first_pending = 0

    def release_acked(self) -> None:
        """Apply the release rule now (the sender calls it when idle)."""
        self._release_acked_tail()

    def discard_expired(self) -> Discarded:
        """Remove waiting events from the head while they are older than ``max_age_s``: an
        explicit decision of the device's operator (the pipeline counts their seqs as
        missing), logged and returned, never done on its own."""
        cutoff_ms = int(self._clock() * 1000) - int(self.limits.max_age_s * 1000)
        gone: list[Pending] = []
        after: Position | None = None
        while batch := self.pending(max_records=1000, after=after):
            expired = list(takewhile(lambda p: p.record.event_time_ms < cutoff_ms, batch))
            gone += expired
            if len(expired) < len(batch):
                break
            after = batch[-1].end
        if not gone:
            return Discarded(0, None, None)
        self._advance(gone[-1].end, len(gone))
        first, last = gone[0].record.seq, gone[-1].record.seq
        log.error("outbox: discarded %d expired events, seq %d to %d", len(gone), first, last)
        return Discarded(len(gone), first, last)

    def close(self) -> None:
        self._close_writer()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
