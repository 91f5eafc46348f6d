"""The simulated fleet: a seeded, pure generator of messages with their expected outcome.

Every message carries what the pipeline must make of it (``valid``, ``duplicate`` or a DLQ
reason), so a run can be checked exactly: accepted + DLQ per reason + duplicates == sent.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from hito.device import sdk
from hito.device.simulate import identities
from hito.device.simulate.patterns import traffic_multiplier
from hito.devices import Device, DeviceRegistry
from hito.schemas.reasons import Reason
from hito.schemas.registry import Source
from hito.schemas.topics import DEFAULT_RAW_TOPICS

VALID = "valid"
DUPLICATE = "duplicate"
# Signed and well formed, but older than the backfill horizon (HITO_PIPELINE__BACKFILL_HORIZON_S,
# 7 days by default): refused at validation as late_beyond_window. A younger late event is
# counted (it revises its window, docs/aggregation.md "Backfill"): the offline devices make those.
LATE = "late"
# Reasons the validation stage can produce (late_beyond_window and sink_rejected come later).
INJECTABLE: tuple[Reason, ...] = (
    Reason.MALFORMED_JSON,
    Reason.SCHEMA_VIOLATION,
    Reason.UNKNOWN_SCHEMA,
    Reason.BAD_SIGNATURE,
    Reason.UNKNOWN_DEVICE,
    Reason.CLOCK_SKEW,
    Reason.OVERSIZED,
)
_SCHEMA_OF: dict[Source, str] = {
    "checkpoint": "checkpoint.crossing/1",
    "sensor": "sensor.reading/1",
    "drone": "drone.telemetry/1",
}
_SITE_COORDS = {"sector-concordia": (-18.3525, -70.3790), "sector-escritos": (-18.3710, -70.3620)}


@dataclass(frozen=True)
class SimMessage:
    topic: str
    key: bytes
    value: bytes
    expected: str  # VALID, DUPLICATE or a Reason value
    device_id: str
    site: str
    # False for a surge's extra traffic: the runner paces the base stream only, so a surge
    # adds to the rate instead of slowing everyone else down.
    paced: bool = True
    # True for an offline device's event, released with its backlog when it reconnects.
    buffered: bool = False


@dataclass(frozen=True)
class FleetPlan:
    count: int
    seed: int = 7
    bad_fraction: float = 0.0  # spread evenly over INJECTABLE reasons
    duplicate_fraction: float = 0.0
    out_of_order_fraction: float = 0.0
    late_fraction: float = 0.0
    late_by_s: float = 8 * 86400.0  # a day past the default backfill horizon
    surge_site: str | None = None
    surge_factor: float = 1.0  # the surge site's checkpoint traffic times this
    surge_start_s: float = 0.0  # seconds into the run (by the fleet's clock)
    surge_duration_s: float | None = None  # None: until the end
    silent_devices: frozenset[str] = frozenset()
    silent_after_s: float = 0.0  # the silent devices send normally until then
    # False: checkpoints weigh as in an ordinary daytime hour whatever the clock says, so a
    # test's mix of events (and the identifiers in it) does not depend on when it runs.
    daily_rhythm: bool = True
    raw_topics: dict[Source, str] = field(default_factory=lambda: dict(DEFAULT_RAW_TOPICS))
    # 0: every crossing is a new person. N: crossings are made by N travellers who come back
    # (the same document, nationality, birth year and plate each time; the frequent crossers
    # between Arica and Tacna), each once per round of N crossings, a new round each UTC day.
    # The pool depends on the seed and N only.
    travellers: int = 0
    # Devices whose uplink is down from offline_after_s for offline_for_s (None: to the end of
    # the run), by the fleet's clock (a batch fleet's clock stands still: the whole run). They
    # keep producing (the same events as online, the same seed), held as their outbox holds
    # them, and released in one go, in order, when they reconnect. offline_span_s > 0 spreads
    # the held valid events' times evenly over that many seconds before the reconnection: a
    # compressed outage (two hours of a terminal's crossings from a one-minute run).
    offline_devices: frozenset[str] = frozenset()
    offline_after_s: float = 0.0
    offline_for_s: float | None = None
    offline_span_s: float = 0.0
    # Each device's first seq (default 0): a fleet that goes on from an earlier run, as devices
    # that keep their seq across restarts do (the pipeline's dedup state remembers it).
    first_seq: dict[str, int] = field(default_factory=dict)


class Fleet:
    """``now`` fixes every event's time (a batch for tests); a ``clock`` instead makes event
    times, the daily rhythm, the surge window and silences follow it (a live run)."""

    def __init__(
        self,
        registry: DeviceRegistry,
        plan: FleetPlan,
        now: datetime,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._plan = plan
        self._rng = random.Random(plan.seed)  # noqa: S311 - reproducible synthetic data
        self._clock = clock or (lambda: now)
        self._start = self._clock()
        self._devices = [d for d in registry.devices.values() if not d.revoked]
        if not [d for d in self._devices if d.device_id not in plan.silent_devices]:
            raise ValueError("no active, non-silent device in the registry")
        self._seq: dict[str, int] = {}
        self._travellers = identities.travellers(plan.travellers, seed=plan.seed)
        self._round: list[int] = []
        self._round_day: date | None = None
        self._sent_valid: list[SimMessage] = []
        self._held: SimMessage | None = None  # out-of-order: held back one step
        self._backlog: list[tuple[SimMessage, Device]] = []  # offline devices' outboxes
        self._by_id = {d.device_id: d for d in self._devices}

    def messages(self) -> Iterator[SimMessage]:
        reasons = list(INJECTABLE)
        for i in range(self._plan.count):
            yield from self._reconnected()
            roll = self._rng.random()
            p = self._plan
            if roll < p.bad_fraction:
                msg = self._bad(reasons[i % len(reasons)])
            elif roll < p.bad_fraction + p.duplicate_fraction and self._sent_valid:
                original = self._rng.choice(self._sent_valid[-200:])
                msg = SimMessage(
                    original.topic,
                    original.key,
                    original.value,
                    DUPLICATE,
                    original.device_id,
                    original.site,
                )
            # A duplicate's roll before anything valid was sent makes a valid event (below),
            # never a late one: a run with late_fraction=0 has no late events.
            elif 0 <= roll - p.bad_fraction - p.duplicate_fraction < p.late_fraction:
                device = self._pick_device()
                when = self._now - timedelta(seconds=p.late_by_s)
                msg = self._message(device, self._envelope(device, event_time=when), LATE)
            else:
                msg = self._valid(self._pick_device())
                offline = self._offline(msg.device_id)
                if (
                    self._held is None
                    and self._rng.random() < p.out_of_order_fraction
                    and not offline
                ):
                    self._held = msg  # emitted after the device's next event
                    continue
                if not offline:
                    self._sent_valid.append(msg)
            yield from self._out(msg)
            for extra in self._surge_extras(msg):
                yield from self._out(extra)
            if self._held is not None and self._held.device_id == msg.device_id:
                self._sent_valid.append(self._held)
                yield from self._out(self._held)
                self._held = None
        if self._held is not None:
            yield from self._out(self._held)
        yield from self._release()  # offline to the end: they reconnect after the run

    def _offline(self, device_id: str) -> bool:
        p = self._plan
        if device_id not in p.offline_devices:
            return False
        t = self._elapsed_s()
        return t >= p.offline_after_s and (
            p.offline_for_s is None or t < p.offline_after_s + p.offline_for_s
        )

    def _out(self, msg: SimMessage) -> Iterator[SimMessage]:
        """``msg`` now, or into its device's backlog while the device is offline."""
        if self._offline(msg.device_id):
            self._backlog.append((msg, self._by_id[msg.device_id]))
        else:
            yield msg

    def _reconnected(self) -> Iterator[SimMessage]:
        if self._backlog and not any(self._offline(d) for d in self._plan.offline_devices):
            yield from self._release()

    def _release(self) -> Iterator[SimMessage]:
        """The backlog in one go (unpaced), in the order it was produced; valid events re-timed
        over ``offline_span_s`` before now when that is set."""
        backlog, self._backlog = self._backlog, []
        span = self._plan.offline_span_s
        valid = [m for m, _ in backlog if m.expected == VALID]
        start = self._now - timedelta(seconds=span)
        k = 0
        for msg, device in backlog:
            value = msg.value
            if span > 0 and msg.expected == VALID:
                when = start + timedelta(seconds=span * (k + 0.5) / len(valid))
                k += 1
                env = orjson.loads(value)
                env["event_time"] = when.isoformat()
                value = orjson.dumps(sdk.with_signature(env, device.key))
            released = SimMessage(
                msg.topic, msg.key, value, msg.expected, msg.device_id, msg.site, False, True
            )
            if msg.expected == VALID:
                self._sent_valid.append(released)
            yield released

    @property
    def _now(self) -> datetime:
        return self._clock()

    def _elapsed_s(self) -> float:
        return (self._clock() - self._start).total_seconds()

    def _surging(self) -> bool:
        p = self._plan
        t = self._elapsed_s()
        return (
            p.surge_site is not None
            and p.surge_factor > 1.0
            and t >= p.surge_start_s
            and (p.surge_duration_s is None or t < p.surge_start_s + p.surge_duration_s)
        )

    def _surge_extras(self, msg: SimMessage) -> Iterator[SimMessage]:
        """During a surge, each base message from the surge site's checkpoints brings
        (factor - 1) more on average from the same site: its traffic times the factor."""
        p = self._plan
        if msg.site != p.surge_site or msg.topic != p.raw_topics["checkpoint"]:
            return
        if not self._surging():
            return
        extra = p.surge_factor - 1.0
        n = int(extra) + (1 if self._rng.random() < extra - int(extra) else 0)
        site_devices = [d for d in self._live_devices() if d.site == p.surge_site]
        if p.offline_devices:  # only with the option: without it, a seed draws as it always did
            site_devices = [d for d in site_devices if not self._offline(d.device_id)]
            if not site_devices:
                return
        for _ in range(n):
            device = self._rng.choice(site_devices)
            valid = self._valid(device)
            self._sent_valid.append(valid)
            yield SimMessage(
                valid.topic, valid.key, valid.value, VALID, valid.device_id, valid.site, False
            )

    def _live_devices(self) -> list[Device]:
        if self._elapsed_s() < self._plan.silent_after_s:
            return self._devices
        return [d for d in self._devices if d.device_id not in self._plan.silent_devices]

    def _pick_device(self) -> Device:
        devices = self._live_devices()
        rhythm = traffic_multiplier(self._now) if self._plan.daily_rhythm else 1.0
        weights = [rhythm if d.kind == "checkpoint" else 1.0 for d in devices]
        return self._rng.choices(devices, weights=weights)[0]

    def next_seqs(self) -> dict[str, int]:
        """Each device's next seq: every lower one is allocated (sent, held or skipped)."""
        return {**self._plan.first_seq, **self._seq}

    def _next_seq(self, device: Device) -> int:
        seq = self._seq.get(device.device_id, self._plan.first_seq.get(device.device_id, 0))
        self._seq[device.device_id] = seq + 1
        return seq

    def _envelope(
        self,
        device: Device,
        *,
        payload: dict[str, Any] | None = None,
        event_time: datetime | None = None,
    ) -> dict[str, Any]:
        when = event_time or self._now - timedelta(seconds=self._rng.uniform(0, 2))
        # Drawn first, as always: the same seed gives the same fleet.
        event_id = uuid.UUID(int=self._rng.getrandbits(128), version=4)
        # The SDK's own envelope and signature (not validated: bad events are built from it).
        unsigned = sdk.envelope(
            schema=_SCHEMA_OF[device.kind],
            device_id=device.device_id,
            site=device.site,
            seq=self._next_seq(device),
            event_time=when,
            payload=payload if payload is not None else self._payload(device),
            event_id=event_id,
        )
        return sdk.with_signature(unsigned, device.key)

    def _message(
        self, device: Device, env: dict[str, Any], expected: str, value: bytes | None = None
    ) -> SimMessage:
        return SimMessage(
            self._plan.raw_topics[device.kind],
            device.device_id.encode(),
            value if value is not None else orjson.dumps(env),
            expected,
            device.device_id,
            device.site,
        )

    def _valid(self, device: Device) -> SimMessage:
        return self._message(device, self._envelope(device), VALID)

    def _payload(self, device: Device) -> dict[str, Any]:
        rng = self._rng
        if device.kind == "checkpoint":
            mode = rng.choices(["pedestrian", "car", "bus", "truck"], [0.35, 0.45, 0.12, 0.08])[0]
            p: dict[str, Any] = {
                "direction": rng.choice(["entry", "exit"]),
                "mode": mode,
                "lane": f"L{rng.randint(1, 12)}",
                "document_type": rng.choices(["passport", "national_id", "tvf"], [3, 5, 2])[0],
                "document_number": identities.document_number(rng),
                "nationality": identities.nationality(rng),
                "birth_year": identities.birth_year(rng, self._now.year),
                "outcome": rng.choices(["admitted", "refused", "secondary"], [96, 1, 3])[0],
                "processing_seconds": round(rng.lognormvariate(3.6, 0.5), 1),
            }
            plate = identities.vehicle_plate(rng) if mode in ("car", "truck") else None
            if self._travellers:
                person = self._next_traveller()
                p.update(person.payload())
                plate = person.vehicle_plate if plate else None
            if plate:
                p["vehicle_plate"] = plate
            return p
        lat0, lon0 = _SITE_COORDS.get(device.site, (-18.36, -70.37))
        lat = round(lat0 + rng.uniform(-0.01, 0.01), 6)
        lon = round(lon0 + rng.uniform(-0.01, 0.01), 6)
        if device.kind == "sensor":
            return {
                "sensor_type": rng.choice(["ground", "infrared", "camera", "environment"]),
                "lat": lat,
                "lon": lon,
                "detections": rng.choices([0, 1, 2, 3], [80, 14, 4, 2])[0],
                "battery_pct": round(rng.uniform(20, 100), 1),
            }
        return {
            "flight_id": f"F{self._now:%Y%m%d}-{device.device_id[-2:]}",
            "lat": lat,
            "lon": lon,
            "alt_m": round(rng.uniform(80, 140), 1),
            "speed_mps": round(rng.uniform(5, 18), 1),
            "heading_deg": round(rng.uniform(0, 359), 1),
            "battery_pct": round(rng.uniform(25, 100), 1),
            "detections": rng.randint(0, 2),
            "operator_id": f"op-{rng.randint(100, 999)}",
        }

    def _next_traveller(self) -> identities.Traveller:
        """Every traveller once per round, in a fresh random order each round, and a new day
        (UTC) starts a new round: in a day of more crossings than travellers, every one of
        them crosses."""
        day = self._now.astimezone(UTC).date()
        if not self._round or day != self._round_day:
            self._round = self._rng.sample(range(len(self._travellers)), len(self._travellers))
            self._round_day = day
        return self._travellers[self._round.pop()]

    def _bad(self, reason: Reason) -> SimMessage:
        device = self._pick_device()
        env = self._envelope(device)
        r = reason.value
        if reason is Reason.MALFORMED_JSON:
            data = orjson.dumps(env)
            return self._message(device, env, r, data[: len(data) // 2])
        if reason is Reason.SCHEMA_VIOLATION:
            env["payload"] = {**env["payload"], "detections": -1, "direction": "sideways"}
            sdk.with_signature(env, device.key)
        elif reason is Reason.UNKNOWN_SCHEMA:
            env["schema"] = env["schema"].replace("/1", "/9")
            sdk.with_signature(env, device.key)
        elif reason is Reason.BAD_SIGNATURE:
            env["sig"] = ("0" if env["sig"][0] != "0" else "1") + env["sig"][1:]
        elif reason is Reason.UNKNOWN_DEVICE:
            env["device_id"] = f"zz-unregistered-{self._rng.randint(10, 99)}"
            sdk.with_signature(env, bytes(32))
        elif reason is Reason.CLOCK_SKEW:
            env["event_time"] = (self._now + timedelta(hours=2)).isoformat()
            sdk.with_signature(env, device.key)
        elif reason is Reason.OVERSIZED:
            data = orjson.dumps(env)
            return self._message(device, env, r, data + b" " * (70 * 1024))
        return self._message(device, env, r)
