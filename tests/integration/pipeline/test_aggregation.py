"""Simulated fleet -> ingest -> clean topics -> aggregate -> InfluxDB: values exact."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
import pygeohash

from hito.credentials import client_config
from hito.device.simulate.fleet import VALID, Fleet, FleetPlan, SimMessage
from hito.device.simulate.runner import send_messages
from hito.runtime import Runtime
from hito.settings import HitoSettings
from tests.integration.pipeline.conftest import query_points, running_worker, wait_until

K = 5


def _window(event_time: str, window_s: int) -> datetime:
    ts = int(datetime.fromisoformat(event_time).timestamp())
    return datetime.fromtimestamp(ts - ts % window_s, tz=UTC)


def expected_from(messages: list[SimMessage], window_s: int) -> dict[str, Any]:
    """Independent of the pipeline's code: counts straight from the bytes that were sent."""
    crossings: Counter[tuple[Any, ...]] = Counter()
    totals: Counter[tuple[Any, ...]] = Counter()
    nationality: Counter[tuple[Any, ...]] = Counter()
    sensors: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    drones: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0, 101.0])
    seen = set()
    for m in messages:
        if m.expected != VALID or m.value in seen:
            continue
        seen.add(m.value)
        e = orjson.loads(m.value)
        w, p, site = _window(e["event_time"], window_s), e["payload"], e["site"]
        if e["schema"].startswith("checkpoint"):
            crossings[(site, w, p["direction"], p["mode"], p["outcome"])] += 1
            totals[(site, w, p["direction"])] += 1
            nationality[(site, w, p["direction"], p["nationality"])] += 1
        elif e["schema"].startswith("sensor"):
            cell = sensors[(site, w, p["sensor_type"], pygeohash.encode(p["lat"], p["lon"], 6))]
            cell[0] += p["detections"]
            cell[1] += 1
        else:
            d = drones[(site, w, pygeohash.encode(p["lat"], p["lon"], 6))]
            d[0] += p["detections"]
            d[1] += 1
            d[2] = min(d[2], p["battery_pct"])
    return {
        "crossings": crossings,
        "totals": totals,
        "nationality": nationality,
        "sensors": sensors,
        "drones": drones,
    }


def _published_sum(points: list[dict[str, Any]], dims: tuple[str, ...]) -> Counter[Any]:
    out: Counter[Any] = Counter()
    for p in points:
        out[(p["site"], p["_time"], *(p[d] for d in dims))] += p["count"]
    return out


def assert_exact(settings: HitoSettings, exp: dict[str, Any], policy: str) -> None:
    crossings = query_points(settings, "crossings")
    assert crossings and {p["policy"] for p in crossings} == {policy}
    # Totals per site, window and direction are exact, `other` included ...
    assert _published_sum(crossings, ("direction",)) == exp["totals"]
    # ... every published cell is exact and never under k ...
    for p in crossings:
        if p["mode"] != "other":
            key = (p["site"], p["_time"], p["direction"], p["mode"], p["outcome"])
            assert p["count"] == exp["crossings"][key] >= K, (p, exp["crossings"][key])
    # ... and every true cell under k is hidden.
    shown = {(p["site"], p["_time"], p["direction"], p["mode"], p["outcome"]) for p in crossings}
    assert not {c for c, n in exp["crossings"].items() if n < K} & shown

    nat = query_points(settings, "crossings_by_nationality")
    assert _published_sum(nat, ("direction",)) == exp["totals"]
    for p in nat:
        if p["nationality"] != "other":
            cell = (p["site"], p["_time"], p["direction"], p["nationality"])
            assert p["count"] == exp["nationality"][cell] >= K

    sensors = {
        (p["site"], p["_time"], p["sensor_type"], p["geohash"]): [p["detections"], p["readings"]]
        for p in query_points(settings, "sensor")
    }
    assert sensors == dict(exp["sensors"])
    drones = {
        (p["site"], p["_time"], p["geohash"]): [p["detections"], p["fixes"], p["battery_pct_min"]]
        for p in query_points(settings, "drone")
    }
    assert drones == {k: [v[0], v[1], v[2]] for k, v in exp["drones"].items()}


def totals(settings: HitoSettings) -> tuple[int, int, int]:
    """(crossings, sensor readings, drone fixes) now in InfluxDB.

    Polled while workers write: a worker that takes a window over deletes its old points
    before writing it again, and InfluxDB deletes a point field by field, so a poll can meet a
    point that has lost some fields already; it counts 0 until the window is written again
    (callers wait for the exact totals to hold)."""
    return (
        sum(_int(p.get("count", 0)) for p in query_points(settings, "crossings")),
        sum(_int(p.get("readings", 0)) for p in query_points(settings, "sensor")),
        sum(_int(p.get("fixes", 0)) for p in query_points(settings, "drone")),
    )


def expected_totals(exp: dict[str, Any]) -> tuple[int, int, int]:
    return (
        sum(exp["totals"].values()),
        sum(v[1] for v in exp["sensors"].values()),
        sum(int(v[1]) for v in exp["drones"].values()),
    )


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def run_fleet(runtime: Runtime, messages: list[SimMessage], exp: dict[str, Any]) -> None:
    settings = runtime.settings

    async def scenario() -> None:
        async with running_worker(runtime) as worker:
            await asyncio.to_thread(
                send_messages,
                messages,
                producer_config=client_config(settings.kafka, "device"),
                total=len(messages),
            )

            await wait_until(
                lambda: worker.metrics.total_events() >= len(messages), 120, "ingest to drain"
            )
            await wait_until(
                lambda: totals(settings) == expected_totals(exp),
                60,
                "InfluxDB to hold every crossing, reading and fix",
            )
            await asyncio.sleep(2)  # later flushes must not change anything

    asyncio.run(scenario())


def test_influxdb_values_equal_counts_from_the_sent_events(isolated_runtime: Runtime) -> None:
    settings = isolated_runtime.settings
    plan = FleetPlan(
        count=4000,
        seed=17,
        bad_fraction=0.05,
        duplicate_fraction=0.05,
        out_of_order_fraction=0.03,
        raw_topics=dict(settings.pipeline.raw_topics),
        daily_rhythm=False,  # the same cells above and under k whenever the test runs
    )
    messages = list(Fleet(isolated_runtime.registry, plan, datetime.now(UTC)).messages())
    exp = expected_from(messages, settings.pipeline.window_s)
    run_fleet(isolated_runtime, messages, exp)
    assert_exact(settings, exp, isolated_runtime.policy.version)
