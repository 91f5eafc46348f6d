"""An outbox's segment files: what a restart finds in them, and the lock on the folder.

A segment is a file of records (hito.device.records) named by its id; ids only grow. On
opening, each segment is read to the end of its good records: in the last one, bytes after
that are a torn tail (an append the power cut short, never sent) and are cut, together with
the whole records of that unfinished append the disk kept (the batch flag; never records
before the acknowledged position: those were sent); in an earlier one they would be
corruption of fsync'd data, which is reported, never hidden.

What is read is made durable first (each segment and the folder fsync'd): after a crash
between an append's write and its fsync (kill -9, the OOM killer), the bytes a restart reads
may still be only in the page cache. Trusted unsynced, their records would be sent and
acknowledged, their seq numbers passed on; a power cut then would lose them, hand out their
seq numbers again (new events dropped downstream as duplicates) and leave the acknowledged
position past the end of the segment (the outbox unreadable for good).
"""

from __future__ import annotations

import fcntl
import logging
import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from hito.device.durable import fsync_dir
from hito.device.records import Decoded, Record, decode

log = logging.getLogger("hito.device.outbox")


class OutboxLocked(RuntimeError):
    """Another process has this outbox open."""


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


@dataclass
class Segment:
    """A segment as the outbox tracks it. ``appended`` holds when each of its waiting records
    was queued (ms), from the first not yet done with when it was loaded: the outbox counts
    acknowledgements and expiries into it from there."""

    id: int
    path: Path
    size: int = 0  # durable end: fsync'd bytes
    appended: array[int] = field(default_factory=lambda: array("q"))
    max_seq: int = -1


def segment_path(directory: Path, segment_id: int) -> Path:
    return directory / f"{segment_id:020d}.seg"


def load_segments(directory: Path, acked: Position) -> tuple[list[Segment], list[str]]:
    """The segments in ``directory``, with their records after ``acked`` counted as waiting,
    and what was wrong with them."""
    segments: list[Segment] = []
    problems: list[str] = []
    ids = sorted(int(p.stem) for p in directory.glob("*.seg"))
    fsync_dir(directory)  # the segments' names, before their bytes are trusted
    for n, segment_id in enumerate(ids):
        seg = Segment(segment_id, segment_path(directory, segment_id))
        data = _read_durably(seg.path)
        last = n == len(ids) - 1
        decoded = decode(data)
        if last:  # only the newest segment takes appends: an unfinished one is there
            # Where its acknowledged records end: all of it when the acknowledged position is
            # past it (files lost: never take back what the broker has).
            if acked.segment == segment_id:
                sent = acked.offset
            else:
                sent = len(data) if acked.segment > segment_id else 0
            records, end, problem = _whole_appends(decoded, sent)
        else:
            records, end, problem = decoded.records, decoded.end, decoded.problem
        for offset, rec in records:
            if Position(segment_id, offset) < acked:
                continue
            seg.appended.append(rec.appended_ms)
        if records:
            seg.max_seq = records[-1][1].seq
        seg.size = end
        if problem is not None:
            problems.append(_short(seg, len(data), problem, last=last))
        segments.append(seg)
    return segments, problems


def _whole_appends(decoded: Decoded, sent: int) -> tuple[list[tuple[int, Record]], int, str | None]:
    """The decoded records without a trailing unfinished append (its last record still says
    more follow: the power went before the rest reached the disk, and the append never
    returned), where the good data then ends, and why it ends there.

    A run that starts before ``sent`` (the acknowledged offset) belongs to an append that
    returned: its records were sent, so what ends it was damaged later (a disk that does not
    honour fsync). It is not cut; the damage is a torn tail as before."""
    records = decoded.records
    start = len(records)
    while start and records[start - 1][1].more_in_batch:
        start -= 1
    if start == len(records) or records[start][0] < sent:
        return records, decoded.end, decoded.problem
    cut = len(records) - start
    problem = f"an unfinished append of {cut} whole record{'s' if cut > 1 else ''}"
    if decoded.problem is not None:
        problem += f", then {decoded.problem}"
    return records[:start], records[start][0], problem


def _read_durably(path: Path) -> bytes:
    """The file's bytes, fsync'd before they are returned (the module's docstring)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


def _short(seg: Segment, length: int, problem: str, *, last: bool) -> str:
    if last:
        # A torn tail: the power went during an append that never returned, so nothing after
        # this point was ever sent. Cut it, so appends continue after good data.
        note = f"{seg.path.name}: cut a torn tail of {length - seg.size} bytes ({problem})"
        truncate(seg.path, seg.size)
        log.warning("outbox recovery: %s", note)
        return note
    # Corruption inside fsync'd data: not a power cut. The records after it cannot be read;
    # say so loudly, keep the file for inspection, and carry on with the rest.
    note = (
        f"{seg.path.name}: unreadable after offset {seg.size} ({problem}); "
        f"{length - seg.size} bytes kept, not sent"
    )
    log.error("outbox recovery: %s", note)
    return note


def truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise OutboxLocked(f"{path.parent} is in use by another process (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
