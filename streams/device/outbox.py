"""A device's durable outbox: events wait here, on disk, until the broker acknowledged them.

Layout of the outbox folder::

    lock                      flock: one process per outbox (its pid inside, for the message)
    seq-floor.json            every seq below it is used (hito.device.seq)
    acked.json                {"segment": id, "offset": n}: everything before it is done with
    expired.json              what expiry removed so far (counts and seqs; no event content)
    00000000000000000007.seg  segments of records (hito.device.records), appended in seq order

Invariants:

- :meth:`Outbox.append` returns only after the records are fsync'd; a reader never sees bytes
  past that point (``Segment.size`` is the durable end), so nothing is sent that a power cut
  could take back, and a torn tail holds only records nobody saw.
- An append is all or none, across a power cut too: the disk may keep some of an unfinished
  append's records whole, and recovery cuts them (the records' batch flag,
  hito.device.records), so a batch whose ``send_many`` never returned is sent whole (the disk
  kept all of it) or not at all, never in part.
- Records leave only from the head, in order: acknowledged by the broker (:meth:`ack`), or
  expired (:meth:`expire`): waiting longer than ``max_age_s``, the privacy policy's retention
  for device outboxes (``device_outbox``). Expiry is logged, counted in ``expired.json`` and
  in :meth:`status`, and the pipeline counts the seqs as missing: never silent.
- ``seq`` strictly increases across appends, and never goes back after a restart
  (:attr:`next_seq`, hito.device.seq).
- Bounded in bytes: an append that would pass ``max_bytes`` raises :class:`OutboxFull` and
  stores nothing; nothing already stored is dropped to make room.
- An append that raises, for any reason (a disk error, a KeyboardInterrupt after the fsync),
  stored nothing: its bytes are cut back before the exception goes on. When even that fails,
  the outbox is :attr:`~Outbox.interrupted`: it takes nothing more until it is reopened, whose
  recovery reads what the disk holds (so no ``seq`` is handed out twice).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import takewhile
from pathlib import Path

from hito.device import durable
from hito.device.outbox_types import (
    CLOCK_FLOOR_S,
    ClockNotSet,
    EventTooOld,
    Expired,
    OutboxCorrupt,
    OutboxFull,
    OutboxInterrupted,
    OutboxLimits,
    OutboxStatus,
    Pending,
)
from hito.device.records import Record, decode, encode
from hito.device.reserve import Reserve
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

__all__ = [
    "ClockNotSet",
    "EventTooOld",
    "Expired",
    "Outbox",
    "OutboxCorrupt",
    "OutboxFull",
    "OutboxInterrupted",
    "OutboxLimits",
    "OutboxLocked",
    "OutboxStatus",
    "Pending",
    "Position",
]

log = logging.getLogger(__name__)

_READ_CHUNK = 2 * 1024 * 1024


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
        self._write_fd: int | None = None
        # Set while an append's bytes may be in the file but not in the segments' sizes.
        self._interrupted = False
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        self._floor = SeqFloor(self.dir / "seq-floor.json")
        self._reserve = Reserve(self.dir / "reserve")
        stored = durable.read_json(self.dir / "acked.json")
        self._acked = (
            Position(int(stored["segment"]), int(stored["offset"]))
            if isinstance(stored, dict)
            else Position(0, 0)
        )
        stored = durable.read_json(self.dir / "expired.json")
        self._expired = Expired(**stored) if isinstance(stored, dict) else Expired()
        self._segments, self._problems = load_segments(self.dir, self._acked)
        self._first_pending = 0  # index into the head segment's waiting records
        # Segments wholly done with, whose deletion a crash interrupted.
        while self._segments and self._head_done():
            self._drop_head()
        self._reserve.ensure()

    # -- state ---------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The highest seq in the outbox or below the floor (-1: none ever)."""
        in_segments = max((s.max_seq for s in self._segments), default=-1)
        return max(in_segments, self._floor.value - 1)

    @property
    def next_seq(self) -> int:
        return self.last_seq + 1

    @property
    def interrupted(self) -> bool:
        """An append raised and the file may still hold some of its records (the cut-back
        failed too): only a reopen's recovery knows what is stored."""
        return self._interrupted

    def ensure_appendable(self) -> None:
        """Raise :class:`OutboxInterrupted` when :attr:`interrupted`."""
        if self._interrupted:
            raise OutboxInterrupted(
                f"{self.dir}: an append failed and could not be undone; the outbox takes no more "
                "events until it is reopened (restart the device client: its recovery finds "
                "what the disk holds)"
            )

    def raise_floor(self, next_seq: int) -> None:
        self._floor.raise_to(next_seq)

    def now(self) -> float:
        return self._clock()

    def status(self) -> OutboxStatus:
        return OutboxStatus(
            pending_events=self._pending_events(),
            pending_bytes=self._pending_bytes(),
            first_appended_ms=self._head_appended_ms(),
            next_seq=self.next_seq,
            expired=self._expired,
            problems=tuple(self._problems),
        )

    def _pending_events(self) -> int:
        return sum(len(s.appended) for s in self._segments) - self._first_pending

    def _pending_bytes(self) -> int:
        total = sum(s.size for s in self._segments)
        if self._segments and self._acked.segment == self._segments[0].id:
            total -= self._acked.offset
        return total

    def _head_appended_ms(self) -> int | None:
        for i, seg in enumerate(self._segments):
            start = self._first_pending if i == 0 else 0
            if start < len(seg.appended):
                return seg.appended[start]
        return None

    # -- appending -----------------------------------------------------------------------------

    def append(self, records: Sequence[Record]) -> None:
        """Durably append ``records`` (their seqs strictly increasing from :attr:`next_seq` on);
        returns once they are fsync'd."""
        if not records:
            return
        self.ensure_appendable()
        now_ms = int(self._clock() * 1000)
        if now_ms < CLOCK_FLOOR_S * 1000:
            raise ClockNotSet(
                f"the device clock reads {now_ms // 1000} s since 1970, before 2025: it is not set "
                "(no real-time clock?); nothing was stored: set the clock and send again"
            )
        self._check_bounds(records, now_ms)
        expected = self.next_seq
        for r in records:
            if r.seq < expected:
                raise ValueError(f"seq {r.seq} is not above the last one used ({expected - 1})")
            expected = r.seq + 1
        # One append is one batch: all its records but the last say so (hito.device.records),
        # so a power cut that keeps part of it on the disk leaves recovery a batch to cut.
        data = b"".join(encode(replace(r, more_in_batch=True)) for r in records[:-1])
        data += encode(replace(records[-1], more_in_batch=False))
        seg = self._writable_segment()
        assert self._write_fd is not None
        before = (seg.size, len(seg.appended), seg.max_seq)
        # Until the file and the segment's fields agree again: an exception that escapes the
        # handler below (a second KeyboardInterrupt, a failing ftruncate) leaves it set.
        self._interrupted = True
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._write_fd, view) :]
            os.fsync(self._write_fd)
            seg.size += len(data)
            seg.appended.extend(r.appended_ms for r in records)
            seg.max_seq = records[-1].seq
        except BaseException:
            # Any exception, KeyboardInterrupt or SystemExit included, even after the fsync:
            # the caller hears "failed", so the batch must not stay. Left in the file, the
            # next start would send it (the upload journal having forgotten it: queued twice),
            # and this process would append after it with the same seqs.
            seg.size, seg.max_seq = before[0], before[2]
            del seg.appended[before[1] :]
            os.ftruncate(self._write_fd, seg.size)
            os.fsync(self._write_fd)
            self._interrupted = False
            raise
        self._interrupted = False

    def _check_bounds(self, records: Sequence[Record], now_ms: int) -> None:
        max_age_ms = int(self.limits.max_age_s * 1000)
        for r in records:
            if now_ms - r.event_time_ms > max_age_ms:
                raise EventTooOld(
                    f"seq {r.seq}: event_time is {(now_ms - r.event_time_ms) / 3.6e6:.1f} h old, "
                    f"over the outbox's max age of {max_age_ms / 3.6e6:.1f} h (the privacy "
                    "policy's device_outbox retention)"
                )
        size = sum(r.size for r in records)
        if self._pending_bytes() + size > self.limits.max_bytes:
            raise OutboxFull(
                f"outbox full: {self._pending_bytes()} bytes of {self._pending_events()} "
                f"events wait for the broker; {size} more would pass max_bytes "
                f"({self.limits.max_bytes}); nothing was stored, nothing was dropped"
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

    # -- reading, acknowledging, expiring -----------------------------------------------------

    def pending(
        self, max_records: int = 500, max_bytes: int = 1024 * 1024, after: Position | None = None
    ) -> list[Pending]:
        """The next waiting records in order, from the head (or ``after``): at least one when
        any waits, then up to ``max_records`` and ``max_bytes``."""
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
        if done:
            self._advance(done[-1].end, len(done))

    def expire(self) -> Expired:
        """Remove, from the head, the events that waited longer than ``max_age_s``; returns
        what went (also logged, and added to ``expired.json``)."""
        cutoff = int(self._clock() * 1000) - int(self.limits.max_age_s * 1000)
        head = self._head_appended_ms()
        if head is None or head >= cutoff:
            return Expired()
        first: Pending | None = None
        last: Pending | None = None
        count = 0
        while batch := self.pending(max_records=1000, after=last.end if last else None):
            # A prefix (the queue is in append order), so only the head ever leaves.
            gone = list(takewhile(lambda p: p.record.appended_ms < cutoff, batch))
            if gone:
                first, last, count = first or gone[0], gone[-1], count + len(gone)
            if len(gone) < len(batch):
                break
        assert first is not None and last is not None
        self._advance(last.end, count)
        now_ms = int(self._clock() * 1000)
        total = Expired(
            self._expired.events + count,
            self._expired.first_seq if self._expired.first_seq is not None else first.record.seq,
            last.record.seq,
            now_ms,
        )
        self._reserve.spending(
            lambda: durable.write_json_atomic(self.dir / "expired.json", total.__dict__)
        )
        self._expired = total
        log.error(
            "outbox: %d events waited longer than %.0f h and expired (seq %d to %d); the "
            "pipeline counts them as missing",
            count,
            self.limits.max_age_s / 3600,
            first.record.seq,
            last.record.seq,
        )
        return Expired(count, first.record.seq, last.record.seq, now_ms)

    def _advance(self, end: Position, count: int) -> None:
        self._reserve.spending(
            lambda: durable.write_json_atomic(
                self.dir / "acked.json", {"segment": end.segment, "offset": end.offset}
            )
        )
        self._acked = end
        left = count
        while left and self._segments:
            head = self._segments[0]
            take = min(left, len(head.appended) - self._first_pending)
            self._first_pending += take
            left -= take
            if self._head_done():
                self._drop_head()
            elif take == 0:
                break
        while self._segments and self._head_done():
            self._drop_head()
        self.release_acked()
        self._reserve.ensure()  # given up on a full disk: back once segments freed room

    def _head_done(self) -> bool:
        """The head segment is closed (not the tail) and wholly done with."""
        head = self._segments[0]
        past = self._acked.segment > head.id or (
            self._acked.segment == head.id and self._acked.offset >= head.size
        )
        return past and len(self._segments) > 1

    def _drop_head(self) -> None:
        # The disk first, then memory: a step that raises (a full disk, an I/O error) leaves
        # the segment where it was, counted, and a later call does the rest.
        head = self._segments[0]
        # Before its records are gone (seq.py).
        self._reserve.spending(lambda: self._floor.raise_to(head.max_seq + 1))
        durable.remove(head.path)
        self._segments.pop(0)
        self._first_pending = 0
        if self._segments and self._acked.segment < self._segments[0].id:
            self._acked = Position(self._segments[0].id, 0)

    def release_acked(self) -> None:
        """Delete the last segment too once all of it is done with and it is old enough:
        acknowledged personal data does not linger on the device."""
        if len(self._segments) != 1:
            return
        tail = self._segments[0]
        done = self._acked == Position(tail.id, tail.size) and tail.size > 0
        first_ms = tail.appended[0] if tail.appended else 0
        if done and self._clock() - first_ms / 1000 >= self.limits.release_acked_after_s:
            self._close_writer()
            self._reserve.spending(lambda: self._floor.raise_to(tail.max_seq + 1))
            durable.remove(tail.path)
            self._segments.clear()
            self._first_pending = 0

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
        del tail.appended[len(tail.appended) - dropped :]
        tail.max_seq = kept[-1][1].seq if kept else -1
        return dropped

    def close(self) -> None:
        self._close_writer()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
