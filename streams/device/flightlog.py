"""Drone flight logs: their file format, and queueing a log's fixes exactly once.

The format (``hito.flight-log/1``, docs/ingestion.md "Drone flight logs"): UTF-8 JSON lines,
one fix per non-blank line, each ``{"fix_time": <RFC 3339 with offset>, <the
drone.telemetry/1 payload: flight_id, lat, lon, alt_m, speed_mps, heading_deg, battery_pct,
detections, operator_id>}``. A fix is identified by ``(flight_id, fix_time)``: a line
repeated exactly is one fix; two different lines with the same identity make the log invalid.

Exactly once: the upload journal (a folder in the device's state) maps every fix ever queued
to the ``seq`` it was queued with. Fixes already there are skipped, so an upload run twice, a
copy of the log, or a longer export of the same flight queues only the fixes not yet queued;
the outbox then delivers each queued event (at least once, same bytes, same seq) and the
pipeline's dedup counts it once. ``event_id`` is derived from the device and the fix identity.

Crash consistency: the journal's ``pending.json`` names the batch (its seqs) *before* the
batch is appended to the outbox, and is folded into the per-flight files after. On start-up
(:meth:`UploadJournal.recover`) a pending batch the outbox holds completely is committed; one
it holds partly (the append never returned, so nothing of it was sent) is cut from the outbox.
Without a crash: an append that raised stored nothing (the outbox cut it back), so the batch is
forgotten, unless the outbox is ``interrupted`` (then the next start decides); a batch whose
commit raised is committed by the next :meth:`UploadJournal.queue` before it looks fixes up.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from hito.device import durable
from hito.device.outbox import EventTooOld, Outbox
from hito.device.records import Record
from hito.schemas.envelope import DroneTelemetryV1
from hito.schemas.errors import describe, field_names

SCHEMA = "drone.telemetry/1"
FORMAT = "hito.flight-log/1"
_EVENT_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:hito:flight-log-fix")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_FIX_NAMES = field_names(DroneTelemetryV1)  # what an error about a fix may name
EXPIRY_MARGIN_S = 60.0  # a fix this close to the outbox's max age is not queued


class FlightLogError(ValueError):
    """The log is not a valid ``hito.flight-log/1`` file (the message names the line)."""


@dataclass(frozen=True)
class Fix:
    line: int
    fix_time: datetime
    payload: Mapping[str, Any]

    @property
    def flight_id(self) -> str:
        return str(self.payload["flight_id"])

    @property
    def fix_us(self) -> int:
        """The fix time in microseconds since the epoch: one spelling per instant."""
        return (self.fix_time - _EPOCH) // _US

    def event_id(self, device_id: str) -> uuid.UUID:
        return uuid.uuid5(_EVENT_IDS, f"{device_id}/{self.flight_id}/{self.fix_us}")


def read_flight_log(path: Path) -> list[Fix]:
    """Every fix of the log, in file order; raises FlightLogError on the first bad line."""
    fixes: list[Fix] = []
    seen: dict[tuple[str, int], Fix] = {}
    lines = path.read_bytes().split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        fix = _parse_line(raw, number, torn=number == len(lines))
        identity = (fix.flight_id, fix.fix_us)
        earlier = seen.get(identity)
        if earlier is None:
            seen[identity] = fix
            fixes.append(fix)
        elif dict(earlier.payload) != dict(fix.payload):
            raise FlightLogError(
                f"{path}:{number}: flight {fix.flight_id} has another fix at "
                f"{fix.fix_time.isoformat()} (line {earlier.line})"
            )
    if not fixes:
        raise FlightLogError(f"{path}: no fixes")
    return fixes


def _parse_line(raw: bytes, number: int, *, torn: bool) -> Fix:
    where = f"line {number}"
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        hint = " (the last line, without a newline: a log cut short?)" if torn else ""
        raise FlightLogError(f"{where}: not JSON{hint}: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("fix_time"), str):
        raise FlightLogError(f"{where}: not an object with a fix_time string")
    try:
        fix_time = datetime.fromisoformat(obj.pop("fix_time"))
    except ValueError:
        raise FlightLogError(f"{where}: fix_time is not RFC 3339") from None
    if fix_time.tzinfo is None:
        raise FlightLogError(f"{where}: fix_time has no UTC offset")
    try:
        DroneTelemetryV1.model_validate_json(orjson.dumps(obj), strict=True)
    except ValidationError as exc:
        # Names the log chose (an unknown key may be personal data) are <unknown>.
        problems = describe(exc, _FIX_NAMES, limit=5)
        raise FlightLogError(f"{where}: not a {SCHEMA} payload ({problems})") from None
    return Fix(number, fix_time, obj)


@dataclass(frozen=True)
class UploadReport:
    fixes: int  # distinct fixes in the log
    queued: int  # queued by this call
    already_queued: int  # queued before (an earlier or interrupted run, a copy of the log)
    too_old: int  # past the outbox's max age, not queued (and never sent)
    first_seq: int | None  # of the fixes queued by this call
    last_seq: int | None
    flights: tuple[str, ...]


class UploadJournal:
    """``pending.json`` (a batch being queued) and ``flight-<flight_id>.json`` (fix -> seq) in
    one folder. Used under the device client's lock."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        durable.make_dirs(directory)

    def _flight_path(self, flight_id: str) -> Path:
        return self.dir / f"flight-{flight_id}.json"  # flight_id: [A-Za-z0-9-]{1,64}

    def _queued(self, flight_id: str) -> dict[str, int]:
        stored = durable.read_json(self._flight_path(flight_id))
        if isinstance(stored, dict):
            return dict(stored["fixes"])
        return {}

    def queue(
        self,
        fixes: Sequence[Fix],
        outbox: Outbox,
        build: Callable[[int, Fix], Record],
    ) -> UploadReport:
        # A pending.json left by this process names seqs the outbox may hold: it must not be
        # overwritten by a new batch before it is settled.
        outbox.ensure_appendable()
        self._commit_appended(outbox)
        flights = sorted({f.flight_id for f in fixes})
        queued = {flight: self._queued(flight) for flight in flights}
        new = [f for f in fixes if str(f.fix_us) not in queued[f.flight_id]]
        # A station may export everything on its disk: a flight past the outbox's max age (the
        # privacy policy's device_outbox retention) may not be sent, and must not keep the new
        # flights beside it from being sent (the outbox refuses a batch with one such event).
        # Within EXPIRY_MARGIN_S of that age counts as past it: the append checks again later.
        cutoff_us = int((outbox.now() - outbox.limits.max_age_s + EXPIRY_MARGIN_S) * 1_000_000)
        too_old = sum(1 for f in new if f.fix_us < cutoff_us)
        if too_old and too_old == len(fixes):  # the whole log: say so loudly
            raise EventTooOld(
                f"all {too_old} fixes of the log are older than the outbox's max age of "
                f"{outbox.limits.max_age_s / 3600:.1f} h (the privacy policy's device_outbox "
                "retention): nothing was queued"
            )
        new = [f for f in new if f.fix_us >= cutoff_us]
        first = outbox.next_seq
        if new:
            records = [build(first + i, f) for i, f in enumerate(new)]
            pending = self.dir / "pending.json"
            entries = [[f.flight_id, str(f.fix_us), first + i] for i, f in enumerate(new)]
            try:
                durable.write_json_atomic(
                    pending, {"first_seq": first, "last_seq": records[-1].seq, "fixes": entries}
                )
                outbox.append(records)
            except BaseException:
                # A failed append stored nothing (the outbox cut it back), unless the outbox
                # says it is interrupted: then the next start's recover() decides from the disk.
                if not outbox.interrupted:
                    durable.remove(pending)
                raise
            self._commit()
            self._prune(outbox)
        return UploadReport(
            fixes=len(fixes),
            queued=len(new),
            already_queued=len(fixes) - len(new) - too_old,
            too_old=too_old,
            first_seq=first if new else None,
            last_seq=first + len(new) - 1 if new else None,
            flights=tuple(flights),
        )

    def _commit_appended(self, outbox: Outbox) -> None:
        """A batch this process appended whose commit raised (a full disk): commit it now, so
        its fixes are not queued again under new seqs."""
        stored = durable.read_json(self.dir / "pending.json")
        if isinstance(stored, dict) and outbox.last_seq >= int(stored["last_seq"]):
            self._commit()

    def _commit(self) -> None:
        """Fold ``pending.json`` into the per-flight files (idempotent), then remove it."""
        pending = self.dir / "pending.json"
        stored = durable.read_json(pending)
        if not isinstance(stored, dict):
            return
        by_flight: dict[str, dict[str, int]] = {}
        for flight, fix_us, seq in stored["fixes"]:
            by_flight.setdefault(flight, {})[fix_us] = seq
        for flight, fixes in by_flight.items():
            merged = self._queued(flight) | fixes
            newest = max(int(k) for k in merged)
            durable.write_json_atomic(
                self._flight_path(flight),
                {"flight_id": flight, "newest_fix_us": newest, "fixes": merged},
            )
        durable.remove(pending)

    def _prune(self, outbox: Outbox) -> None:
        """Forget flights whose newest fix is past the outbox's max age: a re-upload of them
        is refused as too old anyway, so the journal stays bounded."""
        cutoff_us = int((outbox.now() - outbox.limits.max_age_s) * 1_000_000)
        for path in self.dir.glob("flight-*.json"):
            stored = durable.read_json(path)
            if isinstance(stored, dict) and int(stored["newest_fix_us"]) < cutoff_us:
                durable.remove(path)

    def recover(self, outbox: Outbox) -> None:
        """After a crash during :meth:`queue`: commit the batch if the outbox holds all of it,
        else cut the part it holds (never sent: the append had not returned)."""
        stored = durable.read_json(self.dir / "pending.json")
        if not isinstance(stored, dict):
            return
        if outbox.last_seq >= int(stored["last_seq"]):
            self._commit()
        else:
            outbox.drop_unsent_tail(int(stored["first_seq"]))
            durable.remove(self.dir / "pending.json")
