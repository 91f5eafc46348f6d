"""Drone flight logs: the format's checks, and uploads that queue each fix exactly once (the
same fix is always the same event: same seq, same event_id), across re-runs, copies, longer
exports and a crash in the middle of queueing."""

from __future__ import annotations

import dataclasses
import errno
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from hito.device import flightlog
from hito.device.flightlog import FlightLogError, read_flight_log
from hito.device.outbox import EventTooOld, OutboxInterrupted
from hito.device.records import decode, encode
from hito.device.sdk import DeviceClient
from hito.device.sender import SenderConfig
from hito.device.simulate.flight_log import flight_fixes, write_flight_log
from hito.schemas.envelope import DroneTelemetryEvent
from hito.schemas.signing import signature_valid
from tests.unit.device.fakes import FakeBroker

DEVICE, SITE, KEY = "drone-gs-cl-01", "sector-concordia", b"d" * 32
LANDED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
TAKEOFF = LANDED - timedelta(minutes=40)


def fixes(
    n: int | None = None, takeoff: datetime = TAKEOFF, interval_s: float = 10.0
) -> list[dict[str, Any]]:
    all_fixes = flight_fixes(
        site=SITE, flight_id="F20261129-01", takeoff=takeoff, interval_s=interval_s
    )
    return all_fixes if n is None else all_fixes[:n]


def log_file(tmp_path: Path, lines: list[dict[str, Any]], name: str = "flight.jsonl") -> Path:
    path = tmp_path / name
    write_flight_log(path, lines)
    return path


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def client_for(tmp_path: Path, broker: FakeBroker) -> Iterator[Callable[[], DeviceClient]]:
    made: list[DeviceClient] = []

    def make() -> DeviceClient:
        c = DeviceClient(
            device_id=DEVICE,
            site=SITE,
            key=KEY,
            state_dir=tmp_path / "state",
            producer_factory=broker.connect,
            sender=SenderConfig(backoff_min_s=0.01, idle_wake_s=0.05),
        )
        made.append(c)
        return c

    yield make
    for c in made:
        c.close(timeout=1)


def test_the_simulated_flight_is_a_valid_log(tmp_path: Path) -> None:
    lines = fixes(interval_s=5.0)
    assert len(lines) == 481  # 40 minutes, a fix every 5 s, both ends included
    parsed = read_flight_log(log_file(tmp_path, lines))
    assert [f.fix_time for f in parsed] == [TAKEOFF + timedelta(seconds=5 * i) for i in range(481)]
    assert parsed[0].payload["alt_m"] == 0.0 and parsed[-1].payload["speed_mps"] == 0.0
    assert fixes() == fixes()  # seeded


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"fix_time": "2026-11-29T10:00:00Z"', "not JSON (the last line, without a newline"),
        (b"[1]\n", "not an object with a fix_time"),
        (b'{"fix_time": "yesterday"}\n', "fix_time is not RFC 3339"),
        (b'{"fix_time": "2026-11-29T10:00:00"}\n', "fix_time has no UTC offset"),
        (b'{"fix_time": "2026-11-29T10:00:00Z", "flight_id": "F1"}\n', "alt_m: missing"),
        (b"\n\n", "no fixes"),
    ],
)
def test_a_bad_log_is_refused_naming_the_line(tmp_path: Path, text: bytes, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(orjson.dumps(fixes(1)[0]) + b"\n" + text if message != "no fixes" else text)
    with pytest.raises(FlightLogError, match="line 2" if message != "no fixes" else message) as e:
        read_flight_log(path)
    assert message in str(e.value)


def test_a_name_the_log_chose_is_not_repeated_in_the_error(tmp_path: Path) -> None:
    """An unknown key may be personal data (a ground station that wrote the operator's
    document number as a key): the error says <unknown>, as the SDK's and the DLQ's do."""
    fix = {**fixes(1)[0], "P12345678-Juan-Perez": 1}
    with pytest.raises(FlightLogError) as e:
        read_flight_log(log_file(tmp_path, [fix]))
    assert "<unknown>: extra_forbidden" in str(e.value)
    assert "P12345678" not in str(e.value) and "Juan" not in str(e.value)


def test_a_repeated_line_is_one_fix_a_conflicting_one_is_an_error(tmp_path: Path) -> None:
    a, b = fixes(2)
    assert len(read_flight_log(log_file(tmp_path, [a, b, a]))) == 2
    with pytest.raises(FlightLogError, match=r":3: flight F20261129-01 has another fix .*line 1"):
        read_flight_log(log_file(tmp_path, [a, b, {**a, "alt_m": 1.0}]))


def test_upload_publishes_signed_drone_events_at_the_fix_times(
    tmp_path: Path, client_for: Callable[[], DeviceClient], broker: FakeBroker
) -> None:
    client = client_for()
    lines = fixes()
    report = client.upload_flight_log(log_file(tmp_path, lines))
    assert (report.fixes, report.queued, report.first_seq, report.last_seq) == (241, 241, 0, 240)
    client.flush(timeout=10)
    events = [e for _, _, e in broker.acked]
    assert [e["seq"] for e in events] == list(range(241))
    for line, event in zip(lines, events, strict=True):
        DroneTelemetryEvent.model_validate_json(orjson.dumps(event), strict=True)
        assert signature_valid(event, KEY)
        assert datetime.fromisoformat(event["event_time"]) == datetime.fromisoformat(
            line["fix_time"]
        )
        assert event["payload"] == {k: v for k, v in line.items() if k != "fix_time"}


def test_run_twice_or_from_a_copy_queues_nothing_new(
    tmp_path: Path, client_for: Callable[[], DeviceClient], broker: FakeBroker
) -> None:
    client = client_for()
    client.upload_flight_log(log_file(tmp_path, fixes()))
    again = client.upload_flight_log(log_file(tmp_path, fixes()))
    copy = client.upload_flight_log(log_file(tmp_path, list(reversed(fixes())), "copy.jsonl"))
    for r in (again, copy):
        assert (r.queued, r.already_queued, r.first_seq) == (0, 241, None)
    client.flush(timeout=10)
    assert len(broker.acked) == 241


def test_a_longer_export_of_the_same_flight_queues_only_the_new_fixes(
    tmp_path: Path, client_for: Callable[[], DeviceClient], broker: FakeBroker
) -> None:
    client = client_for()
    client.upload_flight_log(log_file(tmp_path, fixes(100)))
    client.send(
        "drone.telemetry/1",
        {k: v for k, v in fixes(1)[0].items() if k != "fix_time"},
        event_time=datetime.now(UTC),
    )  # a live event in between takes seq 100
    report = client.upload_flight_log(log_file(tmp_path, fixes()))
    assert (report.queued, report.already_queued, report.first_seq) == (141, 100, 101)
    client.flush(timeout=10)
    assert [e["seq"] for _, _, e in broker.acked] == list(range(242))


def test_the_same_fix_is_always_the_same_event(tmp_path: Path, broker: FakeBroker) -> None:
    """Two devices' states uploading the same log: event_ids depend on device and fix only."""
    ids = []
    for state in ("a", "b"):
        c = DeviceClient(
            device_id=DEVICE,
            site=SITE,
            key=KEY,
            state_dir=tmp_path / state,
            producer_factory=broker.connect,
        )
        c.upload_flight_log(log_file(tmp_path, fixes(3)))
        c.flush(timeout=10)
        c.close()
        ids.append([e["event_id"] for _, _, e in broker.acked[-3:]])
    assert ids[0] == ids[1] and len(set(ids[0])) == 3


def test_a_crash_after_the_append_commits_the_batch_on_restart(
    tmp_path: Path,
    client_for: Callable[[], DeviceClient],
    broker: FakeBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker.reachable = False
    client = client_for()

    def crash(self: flightlog.UploadJournal) -> None:
        raise KeyboardInterrupt("the power went")

    monkeypatch.setattr(flightlog.UploadJournal, "_commit", crash)
    with pytest.raises(KeyboardInterrupt):
        client.upload_flight_log(log_file(tmp_path, fixes(50)))
    assert (tmp_path / "state" / "uploads" / "pending.json").exists()
    client.close(timeout=1)
    monkeypatch.undo()
    broker.reachable = True
    again = client_for()  # recovery: the outbox holds the whole batch, so it is committed
    report = again.upload_flight_log(log_file(tmp_path, fixes(50)))
    assert (report.queued, report.already_queued) == (0, 50)
    again.flush(timeout=10)
    assert [e["seq"] for _, _, e in broker.acked] == list(range(50))


def interrupt_after_the_segment_fsync(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException | None = None
) -> None:
    """The next fsync of an outbox segment happens, then Ctrl-C (or ``exc``): the batch is on
    disk."""
    real = os.fsync
    armed = [exc or KeyboardInterrupt("Ctrl-C just after the fsync")]

    def fsync(fd: int) -> None:
        real(fd)
        if armed and Path(f"/proc/self/fd/{fd}").readlink().suffix == ".seg":
            raise armed.pop()

    monkeypatch.setattr(os, "fsync", fsync)


def test_an_upload_interrupted_after_the_fsync_queues_each_fix_once_when_run_again(
    tmp_path: Path,
    client_for: Callable[[], DeviceClient],
    broker: FakeBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker.reachable = False
    client = client_for()
    interrupt_after_the_segment_fsync(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        client.upload_flight_log(log_file(tmp_path, fixes(50)))
    client.close(timeout=1)
    broker.reachable = True
    again = client_for()  # a fresh start, then the operator runs the upload again
    report = again.upload_flight_log(log_file(tmp_path, fixes(50)))
    assert (report.queued, report.first_seq) == (50, 0)
    again.flush(timeout=10)
    assert [e["seq"] for _, _, e in broker.acked] == list(range(50))


def test_after_an_interrupted_upload_a_running_client_reuses_no_seq(
    tmp_path: Path,
    client_for: Callable[[], DeviceClient],
    broker: FakeBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = client_for()
    interrupt_after_the_segment_fsync(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        client.upload_flight_log(log_file(tmp_path, fixes(50)))
    live = uuid.uuid4()
    payload = {k: v for k, v in fixes(1)[0].items() if k != "fix_time"}
    assert (
        client.send("drone.telemetry/1", payload, event_time=datetime.now(UTC), event_id=live) == 0
    )
    report = client.upload_flight_log(log_file(tmp_path, fixes(50)))
    assert (report.queued, report.first_seq) == (50, 1)
    client.flush(timeout=10)
    events = [e for _, _, e in broker.acked]
    assert [e["seq"] for e in events] == list(range(51))
    assert events[0]["event_id"] == str(live)
    assert len({e["event_id"] for e in events}) == 51  # each fix once


def test_an_append_that_cannot_be_undone_keeps_the_batch_for_the_restart_to_decide(
    tmp_path: Path,
    client_for: Callable[[], DeviceClient],
    broker: FakeBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker.reachable = False
    client = client_for()
    interrupt_after_the_segment_fsync(monkeypatch, SystemExit("a signal handler's exit"))

    def ftruncate_fails(fd: int, size: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "ftruncate", ftruncate_fails)
    with pytest.raises(OSError, match="Input/output error"):
        client.upload_flight_log(log_file(tmp_path, fixes(50)))
    monkeypatch.undo()
    pending = tmp_path / "state" / "uploads" / "pending.json"
    batch = pending.read_bytes()  # kept: the disk may hold the batch
    with pytest.raises(OutboxInterrupted):  # its seqs may be on disk: none is handed out again
        client.upload_flight_log(log_file(tmp_path, fixes(60)))
    assert pending.read_bytes() == batch  # not replaced by the refused upload's batch
    client.close(timeout=1)
    broker.reachable = True
    again = client_for()  # recovery: the outbox holds the whole batch, so it is committed
    report = again.upload_flight_log(log_file(tmp_path, fixes(50)))
    assert (report.queued, report.already_queued) == (0, 50)
    again.flush(timeout=10)
    assert [e["seq"] for _, _, e in broker.acked] == list(range(50))


def test_a_commit_that_failed_is_made_before_the_next_upload_of_the_process(
    tmp_path: Path,
    client_for: Callable[[], DeviceClient],
    broker: FakeBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = client_for()
    real = flightlog.UploadJournal._commit
    failures = [OSError(errno.ENOSPC, "No space left on device")]

    def commit(self: flightlog.UploadJournal) -> None:
        if failures:
            raise failures.pop()
        real(self)

    monkeypatch.setattr(flightlog.UploadJournal, "_commit", commit)
    with pytest.raises(OSError, match="No space left"):
        client.upload_flight_log(log_file(tmp_path, fixes(50)))  # appended, not recorded
    report = client.upload_flight_log(log_file(tmp_path, fixes(50)))  # the operator retries
    assert (report.queued, report.already_queued) == (0, 50)
    client.flush(timeout=10)
    assert [e["seq"] for _, _, e in broker.acked] == list(range(50))


@pytest.mark.parametrize(
    "flagged",
    [
        # As this SDK writes a batch: the outbox's recovery cuts the unfinished append.
        True,
        # As an SDK before the batch flag wrote it: each record looks whole, and the
        # journal's recovery cuts the batch from the outbox (drop_unsent_tail).
        False,
    ],
)
def test_a_batch_the_outbox_holds_only_in_part_is_cut_and_queued_again(
    tmp_path: Path, client_for: Callable[[], DeviceClient], broker: FakeBroker, flagged: bool
) -> None:
    broker.reachable = False
    client = client_for()
    client.upload_flight_log(log_file(tmp_path, fixes(5)))  # seqs 0..4
    client.close(timeout=1)
    # As a power cut during the next upload leaves it: its pending.json written (seqs 5..9),
    # one record whole in the outbox, the next torn, the rest never written.
    uploads = tmp_path / "state" / "uploads"
    (uploads / "pending.json").write_bytes(
        orjson.dumps({"first_seq": 5, "last_seq": 9, "fixes": [["F20261129-01", "1", 5]]})
    )
    (segment,) = (tmp_path / "state" / "outbox").glob("*.seg")
    first = decode(segment.read_bytes()).records[0][1]
    five, six = (
        encode(dataclasses.replace(first, seq=seq, more_in_batch=flagged)) for seq in (5, 6)
    )
    with segment.open("ab") as f:
        f.write(five + six[: len(six) // 2])
    broker.reachable = True
    again = client_for()
    assert not (uploads / "pending.json").exists()
    report = again.upload_flight_log(log_file(tmp_path, fixes(10)))
    assert (report.queued, report.first_seq) == (5, 5)  # seqs 5.. queued again, anew
    again.flush(timeout=10)
    assert [e["seq"] for _, _, e in broker.acked] == list(range(10))


def test_a_log_older_than_the_outbox_max_age_is_refused_whole(
    tmp_path: Path, client_for: Callable[[], DeviceClient]
) -> None:
    client = client_for()
    old = fixes(5, takeoff=datetime.now(UTC) - timedelta(hours=169))  # the policy: 168 h
    with pytest.raises(EventTooOld):
        client.upload_flight_log(log_file(tmp_path, old))
    assert client.status().outbox.pending_events == 0
    assert not (tmp_path / "state" / "uploads" / "pending.json").exists()
    assert list((tmp_path / "state" / "uploads").glob("flight-*.json")) == []


def test_a_flight_past_the_max_age_in_a_longer_export_does_not_hold_back_the_new_one(
    tmp_path: Path, client_for: Callable[[], DeviceClient], broker: FakeBroker
) -> None:
    """A station that exports everything on its disk: last week's flight may not be sent (the
    outbox refuses it), and this flight's fixes are queued and delivered all the same."""
    client = client_for()
    old = flight_fixes(
        site=SITE,
        flight_id="F20261120-01",
        takeoff=datetime.now(UTC) - timedelta(hours=169),  # the policy: 168 h
        interval_s=60.0,
    )[:5]
    report = client.upload_flight_log(log_file(tmp_path, old + fixes(10)))
    assert (report.fixes, report.queued, report.too_old, report.already_queued) == (15, 10, 5, 0)
    assert report.flights == ("F20261120-01", "F20261129-01")
    client.flush(timeout=10)
    sent = [e for _, _, e in broker.acked]
    assert [e["seq"] for e in sent] == list(range(10))
    assert {e["payload"]["flight_id"] for e in sent} == {"F20261129-01"}
    again = client.upload_flight_log(log_file(tmp_path, old + fixes(10), name="copy.jsonl"))
    assert (again.queued, again.too_old, again.already_queued) == (0, 5, 10)
