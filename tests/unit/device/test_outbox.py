"""The durable outbox on a real folder: order, acknowledgement, restart, bounds, torn tails,
and fsync where the module says it happens."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hito.device import durable
from hito.device.outbox import (
    ClockNotSet,
    EventTooOld,
    Outbox,
    OutboxFull,
    OutboxInterrupted,
    OutboxLimits,
    OutboxLocked,
)
from hito.device.records import Record, encode
from hito.schemas.privacy.policy import load_policy

T0 = 1_800_000_000.0  # the tests' clock, in seconds


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def rec(seq: int, *, age_s: float = 0.0, size: int = 100, now: float = T0) -> Record:
    when = int((now - age_s) * 1000)
    return Record(seq, when, int(now * 1000), "sensor", b"e%d-" % seq + b"x" * size)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


def opened(folder: Path, clock: Clock, **limits: float) -> Outbox:
    return Outbox(folder, OutboxLimits(**limits), clock)  # type: ignore[arg-type]


def seqs(box: Outbox, n: int = 1000) -> list[int]:
    return [p.record.seq for p in box.pending(max_records=n)]


def test_append_pending_ack_in_order(folder: Path, clock: Clock) -> None:
    box = opened(folder, clock)
    assert box.next_seq == 0 and box.pending() == []
    box.append([rec(0), rec(1)])
    box.append([rec(2)])
    assert seqs(box) == [0, 1, 2]
    batch = box.pending(max_records=2)
    assert [p.record for p in batch] == [rec(0), rec(1)]
    box.ack(batch)
    assert seqs(box) == [2]
    status = box.status()
    assert (status.pending_events, status.pending_bytes, status.next_seq) == (
        1,
        rec(2).size,
        3,
    )


def test_seq_never_goes_back(folder: Path, clock: Clock) -> None:
    box = opened(folder, clock)
    box.append([rec(0), rec(1)])
    with pytest.raises(ValueError, match="not above the last one used"):
        box.append([rec(1)])
    with pytest.raises(ValueError, match="not above"):
        box.append([rec(5), rec(5)])
    assert seqs(box) == [0, 1]


def test_a_restart_resumes_the_queue_and_the_seq(folder: Path, clock: Clock) -> None:
    box = opened(folder, clock)
    box.append([rec(i) for i in range(5)])
    box.ack(box.pending(max_records=2))
    box.close()
    again = opened(folder, clock)
    assert seqs(again) == [2, 3, 4]
    assert again.next_seq == 5
    assert again.status().pending_events == 3


def test_a_restart_makes_what_it_reads_durable_before_trusting_it(
    folder: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append's write done, its fsync not (kill -9 in between): the restart reads the bytes
    from the page cache. Sent and acknowledged unsynced, a power cut would then lose them and
    their seq numbers would be handed out again. So opening fsyncs every segment it reads, and
    the folder, before any record is given out."""
    box = opened(folder, clock, segment_bytes=3 * rec(0).size)
    for i in range(7):
        box.append([rec(i)])  # three segments: 3, 3 and 1 records
    box.close()
    segments = sorted(folder.glob("*.seg"))
    assert len(segments) == 3
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    again = opened(folder, clock)
    assert {str(p) for p in segments} | {str(folder)} <= set(synced)
    assert seqs(again) == list(range(7))


def test_one_process_per_outbox(folder: Path, clock: Clock) -> None:
    box = opened(folder, clock)
    with pytest.raises(OutboxLocked, match=f"pid {os.getpid()}"):
        opened(folder, clock)
    box.close()
    opened(folder, clock).close()


def test_acknowledged_segments_are_deleted_and_their_seqs_stay_used(
    folder: Path, clock: Clock
) -> None:
    box = opened(folder, clock, segment_bytes=1000, release_acked_after_s=60)
    for i in range(30):
        box.append([rec(i)])
    assert len(list(folder.glob("*.seg"))) == 4  # a segment closes once past 1000 bytes: 8 records
    box.ack(box.pending(max_records=20))
    assert len(list(folder.glob("*.seg"))) == 2  # the two wholly acknowledged are gone
    box.ack(box.pending())
    assert len(list(folder.glob("*.seg"))) == 1  # the tail stays until it is old enough...
    clock.t += 61
    box.release_acked()
    assert list(folder.glob("*.seg")) == []  # ...then acknowledged data leaves the device
    box.close()
    again = opened(folder, clock)
    assert again.next_seq == 30 and again.pending() == []
    again.append([rec(30)])
    assert seqs(again) == [30]


def test_full_by_bytes_refuses_new_events_and_drops_nothing(folder: Path, clock: Clock) -> None:
    box = opened(folder, clock, max_bytes=3 * rec(0).size)
    box.append([rec(0), rec(1), rec(2)])
    with pytest.raises(OutboxFull, match="nothing was stored, nothing was dropped"):
        box.append([rec(3)])
    assert seqs(box) == [0, 1, 2] and box.next_seq == 3
    box.ack(box.pending(max_records=1))
    box.append([rec(3)])
    assert seqs(box) == [1, 2, 3]


def test_the_age_bound_is_the_policys_device_outbox_retention() -> None:
    hours = load_policy().retention_hours["device_outbox"]
    assert OutboxLimits().max_age_s == hours * 3600 == 168 * 3600


def test_events_waiting_past_the_max_age_expire_reported(folder: Path, clock: Clock) -> None:
    box = opened(folder, clock, max_age_s=3600)
    with pytest.raises(EventTooOld, match=r"over the outbox.s max age of 1\.0 h"):
        box.append([rec(0, age_s=3601)])  # too old to be queued at all
    box.append([rec(0, age_s=3000), rec(1)])  # queued at T0
    clock.t += 1800
    box.append([rec(2, now=clock.t)])  # queued half an hour later
    assert box.expire().events == 0
    clock.t += 1801  # the first two waited longer than an hour; the third did not
    gone = box.expire()
    assert (gone.events, gone.first_seq, gone.last_seq) == (2, 0, 1)
    assert seqs(box) == [2]
    box.append([rec(3, now=clock.t)])  # the device keeps working
    box.close()
    again = opened(folder, clock, max_age_s=3600)  # the account survives a restart
    expired = again.status().expired
    assert (expired.events, expired.first_seq, expired.last_seq) == (2, 0, 1)
    assert expired.at_ms == int(clock.t * 1000)
    assert seqs(again) == [2, 3] and again.next_seq == 4
    clock.t += 3601
    assert again.expire().events == 2
    assert again.status().expired.events == 4 and again.status().pending_events == 0


def test_a_torn_tail_is_cut_and_reported(folder: Path, clock: Clock) -> None:
    box = opened(folder, clock)
    box.append([rec(0), rec(1), rec(2)])
    box.close()
    (segment,) = folder.glob("*.seg")
    good = segment.stat().st_size
    with segment.open("ab") as f:
        f.write(encode(rec(3))[:-7])  # the power went during the 4th append
    again = opened(folder, clock)
    assert seqs(again) == [0, 1, 2]
    (problem,) = again.status().problems
    assert "torn tail of" in problem and "incomplete record" in problem
    assert segment.stat().st_size == good
    again.append([rec(3)])  # the torn record was never sent: its seq is free
    again.close()
    assert seqs(opened(folder, clock)) == [0, 1, 2, 3]


def test_a_power_cut_that_keeps_part_of_an_append_keeps_none_of_it(
    folder: Path, clock: Clock
) -> None:
    """send_many is all or none: the disk may keep whole records of an append whose fsync never
    returned (the page cache wrote some back before the power went), and recovery cuts them,
    at every point the cut can fall, so none of them is ever sent."""
    box = opened(folder, clock)
    box.append([rec(0), rec(1)])
    box.append([rec(2), rec(3), rec(4)])
    box.close()
    (segment,) = folder.glob("*.seg")
    data = segment.read_bytes()
    good = rec(0).size + rec(1).size
    boundaries = {good + rec(2).size: 1, good + rec(2).size + rec(3).size: 2}
    for cut in range(good, len(data)):
        segment.write_bytes(data[:cut])
        again = opened(folder, clock)
        assert (seqs(again), again.next_seq) == ([0, 1], 2), cut
        assert segment.stat().st_size == good, cut
        if cut in boundaries:  # whole records only: nothing else tells the append was cut
            whole = boundaries[cut]
            (problem,) = again.status().problems
            assert f"an unfinished append of {whole} whole record" in problem, cut
        elif cut > good:
            (problem,) = again.status().problems
            assert "torn tail of" in problem, cut
        again.close()
    segment.write_bytes(data)
    complete = opened(folder, clock)
    assert seqs(complete) == [0, 1, 2, 3, 4] and complete.status().problems == ()


def test_an_append_already_partly_sent_is_never_cut_as_unfinished(
    folder: Path, clock: Clock
) -> None:
    """Damage after an append returned (a disk that does not honour fsync) can end a batch
    early; once part of it was acknowledged the append is known to have returned, so only the
    damaged record goes, as before the batch flag, and the acknowledged position stays valid."""
    box = opened(folder, clock)
    box.append([rec(0), rec(1), rec(2)])
    box.ack(box.pending(max_records=1))  # seq 0 reached the broker
    box.close()
    (segment,) = folder.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF  # seq 2, the append's last record, damaged
    segment.write_bytes(bytes(data))
    again = opened(folder, clock)
    assert seqs(again) == [1]
    (problem,) = again.status().problems
    assert "checksum mismatch" in problem and "unfinished append" not in problem
    again.append([rec(2)])
    again.close()
    assert seqs(opened(folder, clock)) == [1, 2]


def test_only_the_newest_segment_can_hold_an_unfinished_append(folder: Path, clock: Clock) -> None:
    """An older segment's appends all returned (a newer segment exists only for a later
    append): damage to an append's last record there loses that record only, as before the
    batch flag; the whole records before it are still sent."""
    box = opened(folder, clock, segment_bytes=1)  # every append opens a new segment
    box.append([rec(0), rec(1), rec(2)])
    box.append([rec(3)])
    box.close()
    older, _newer = sorted(folder.glob("*.seg"))
    data = bytearray(older.read_bytes())
    data[-1] ^= 0xFF  # seq 2, the first append's last record
    older.write_bytes(bytes(data))
    again = opened(folder, clock, segment_bytes=1)
    assert seqs(again) == [0, 1, 3]
    (problem,) = again.status().problems
    assert "unreadable after offset" in problem and "unfinished append" not in problem


def test_an_acknowledged_position_past_every_segment_keeps_their_seqs_used(
    folder: Path, clock: Clock
) -> None:
    """acked.json past the newest segment (its files lost, or a hand-made state): every record
    there was acknowledged, so none is cut as unfinished, and their seqs are never handed out
    again (the pipeline would drop the new events as duplicates)."""
    box = opened(folder, clock)
    box.append([rec(0)])
    box.close()
    (segment,) = folder.glob("*.seg")
    with segment.open("ab") as f:  # an append's first records, as a power cut leaves them
        f.write(encode(replace(rec(1), more_in_batch=True)))
        f.write(encode(replace(rec(2), more_in_batch=True)))
    durable.write_json_atomic(folder / "acked.json", {"segment": 99, "offset": 0})
    again = opened(folder, clock)
    assert seqs(again) == [] and again.next_seq == 3


def test_zeros_after_a_power_cut_are_a_torn_tail(folder: Path, clock: Clock) -> None:
    box = opened(folder, clock)
    box.append([rec(0)])
    box.close()
    (segment,) = folder.glob("*.seg")
    with segment.open("ab") as f:
        f.write(b"\0" * 4096)  # a file extended but its data never written
    again = opened(folder, clock)
    assert seqs(again) == [0] and "impossible record length 0" in again.status().problems[0]


def test_corruption_inside_a_closed_segment_is_reported_not_fatal(
    folder: Path, clock: Clock
) -> None:
    box = opened(folder, clock, segment_bytes=500)
    for i in range(8):
        box.append([rec(i)])
    box.close()
    first = sorted(folder.glob("*.seg"))[0]
    data = bytearray(first.read_bytes())
    data[rec(0).size + 20] ^= 0xFF  # inside the second record
    first.write_bytes(bytes(data))
    again = opened(folder, clock)
    assert seqs(again) == [0, 4, 5, 6, 7]
    assert f"unreadable after offset {rec(0).size}" in again.status().problems[0]
    assert again.next_seq == 8


class Fsyncs:
    """Every os.fsync (and unlink) under ``folder``, in order, with the file's size at that
    moment (0 for the folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls: list[tuple[str, int]] = []

    def record(self, fd: int) -> None:
        path = Path(f"/proc/self/fd/{fd}").readlink()
        if path == self.folder or self.folder in path.parents:
            st = os.fstat(fd)
            self.calls.append((path.name, 0 if stat.S_ISDIR(st.st_mode) else st.st_size))


@pytest.fixture
def fsyncs(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fsyncs]:
    seen = Fsyncs(folder)
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.record(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    unlink = os.unlink

    def unlink_(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> None:
        seen.calls.append((f"unlink {Path(path).name}", 0))
        unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink_)
    yield seen


def test_fsync_where_the_module_says(folder: Path, clock: Clock, fsyncs: Fsyncs) -> None:
    box = opened(folder, clock, segment_bytes=250, release_acked_after_s=0)
    fsyncs.calls.clear()
    box.append([rec(0), rec(1)])  # one fsync for the batch, after all of it is written
    seg = "00000000000000000001.seg"
    assert fsyncs.calls == [("outbox", 0), (seg, 2 * rec(0).size)]  # new segment: folder too
    fsyncs.calls.clear()
    box.append([rec(2)])  # rotation: a new segment, its name made durable
    seg2 = "00000000000000000002.seg"
    assert fsyncs.calls == [("outbox", 0), (seg2, rec(0).size)]
    fsyncs.calls.clear()
    box.ack(box.pending(max_records=2))
    # acked.json replaced atomically; then the floor raised BEFORE the segment is unlinked.
    names = [name for name, _ in fsyncs.calls]
    assert names == [
        "acked.json.tmp",
        "outbox",
        "seq-floor.json.tmp",
        "outbox",
        f"unlink {seg}",
        "outbox",
    ]


def test_an_append_interrupted_after_its_fsync_stores_nothing(
    folder: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt once the batch is on disk: the caller hears "failed", so the batch
    is cut back, and the outbox goes on after its last good record, in memory and on disk."""
    box = opened(folder, clock)
    box.append([rec(0)])
    real = os.fsync
    armed = [True]

    def fsync_then_interrupt(fd: int) -> None:
        real(fd)
        if armed and Path(f"/proc/self/fd/{fd}").readlink().suffix == ".seg":
            armed.clear()
            raise KeyboardInterrupt("Ctrl-C just after the fsync")

    monkeypatch.setattr(os, "fsync", fsync_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        box.append([rec(1), rec(2)])
    assert not box.interrupted and box.next_seq == 1 and seqs(box) == [0]
    box.append([rec(1, size=10)])  # seq 1 again: nobody saw the cut one
    expected = [rec(0).event, rec(1, size=10).event]
    assert [p.record.event for p in box.pending()] == expected
    box.close()
    assert [p.record.event for p in opened(folder, clock).pending()] == expected


def test_an_append_that_cannot_be_cut_back_stops_the_outbox_until_reopened(
    folder: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = opened(folder, clock)
    real = os.fsync

    def fsync_then_interrupt(fd: int) -> None:
        real(fd)
        if Path(f"/proc/self/fd/{fd}").readlink().suffix == ".seg":
            raise SystemExit("a signal handler's exit")

    def ftruncate_fails(fd: int, size: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync_then_interrupt)
    monkeypatch.setattr(os, "ftruncate", ftruncate_fails)
    with pytest.raises(OSError, match="Input/output error"):
        box.append([rec(0), rec(1)])
    monkeypatch.undo()
    assert box.interrupted
    with pytest.raises(OutboxInterrupted, match="until it is reopened"):
        box.append([rec(0)])  # would reuse seq 0, which the file holds
    box.close()
    again = opened(folder, clock)  # recovery reads what the disk holds
    assert seqs(again) == [0, 1] and again.next_seq == 2 and not again.interrupted


def test_a_clock_that_is_not_set_queues_nothing(folder: Path, clock: Clock) -> None:
    """A ground station without a real-time-clock battery boots at 1970. Its flight log's
    fixes (correct GPS times) were queued with 1970 queue times; once NTP stepped the clock,
    the next expiry took them for 56 years old and deleted them all. Now nothing is queued
    until the clock is set, and what is queued after that waits its full max age."""
    box = opened(folder, clock, max_age_s=3600)
    clock.t = 86_400.0  # 1970-01-02: not set
    fix = Record(0, int(T0 * 1000), int(clock.t * 1000), "drone", b"a fix at its GPS time")
    with pytest.raises(ClockNotSet):
        box.append([fix])
    assert box.pending() == [] and box.next_seq == 0
    clock.t = T0  # NTP stepped it
    box.append([rec(0)])
    assert box.expire().events == 0
    assert seqs(box) == [0]


def test_a_segment_whose_deletion_fails_stays_counted(
    folder: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head segment was taken from memory before its deletion: when the deletion raised,
    the outbox had forgotten where its waiting records began (4 counted of 8 waiting)."""
    box = opened(folder, clock, segment_bytes=3 * rec(0).size)
    for i in range(9):
        box.append([rec(i)])  # segments of 3, 3 and 3 records
    real_remove = durable.remove
    failures = [OSError(5, "Input/output error")]

    def failing_remove(path: Path) -> None:
        if failures:
            raise failures.pop()
        real_remove(path)

    monkeypatch.setattr(durable, "remove", failing_remove)
    with pytest.raises(OSError, match="Input/output"):
        box.ack(box.pending(max_records=3))  # the first segment, wholly
    assert box.status().pending_events == 6
    assert seqs(box) == list(range(3, 9))
    box.ack(box.pending(max_records=1))  # the next ack deletes it
    assert seqs(box) == list(range(4, 9)) and box.status().pending_events == 5
    assert len(list(folder.glob("*.seg"))) == 2
