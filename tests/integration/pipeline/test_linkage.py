"""Bounded linkability on the real stack: the same 500 simulated travellers cross on day 1 and
on day 3 (by event time; the worker's clock follows the simulated days). An attacker holding
every clean record and every InfluxDB point links none of day 1's records to day 3's; within
day 1 only the repeat_crossings purpose's pseudonym links records; after the horizon the key
store no longer has day 1's key and nothing the system still holds recomputes day 1's
pseudonyms; repeat_crossings equals an independent count, cell by cell, with suppression."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from influxdb_client import InfluxDBClient

from hito.credentials import client_config
from hito.device.simulate.fleet import VALID, Fleet, FleetPlan, SimMessage
from hito.device.simulate.runner import send_messages
from hito.pipeline.keystore import KeyStore
from hito.pipeline.pseudonyms import epoch_of, pseudonym, ratchet_forward
from hito.pipeline.worker import Worker
from hito.runtime import Runtime, key_grace_s
from hito.schemas.clean import CleanEvent
from hito.settings import HitoSettings
from tests.integration.pipeline.conftest import make_isolated, running_worker, wait_until
from tests.integration.pipeline.test_privacy_leaks import clean_topic_bytes

DAY = 86400
PURPOSE = "repeat_crossings"
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAY1 = TODAY - timedelta(days=5)
DAY3 = DAY1 + timedelta(days=2)
E1, E3 = epoch_of(DAY1, DAY), epoch_of(DAY3, DAY)
# Messages per simulated day: about 1,180 crossings of the 500 travellers on day 1 (each
# crosses twice or three times), about 620 on day 3 (each once, some twice: small cells).
PER_DAY = 2500
DAY3_MESSAGES = 1300
PEOPLE_MEASUREMENTS = {
    "crossings": "mode",
    "crossings_by_nationality": "nationality",
    "wait_time": "mode",
    "repeat_crossings": None,
}


@dataclass
class Run:
    settings: HitoSettings
    store_path: Path
    store: KeyStore
    day1_key: bytes  # captured while it lived, to show the checks below can fail
    sent: dict[int, list[SimMessage]]  # epoch -> messages of that day
    clean: list[CleanEvent]
    points: dict[str, list[dict[str, Any]]]
    person_days_left: list[str]
    k: int


def _crossings_counted(worker: Worker) -> float:
    return sum(
        s.value
        for m in worker.metrics.crossings.collect()
        for s in m.samples
        if s.name == "hito_crossings_total"
    )


def _checkpoint(messages: list[SimMessage]) -> list[dict[str, Any]]:
    envs = [orjson.loads(m.value) for m in messages if m.expected == VALID]
    return [e for e in envs if e["schema"] == "checkpoint.crossing/1"]


def _points(settings: HitoSettings) -> dict[str, list[dict[str, Any]]]:
    i = settings.influxdb
    flux = (
        f'from(bucket: "{i.bucket}") |> range(start: -10d, stop: 1h) '
        '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
    )
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        tables = client.query_api().query(flux)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    skip = {"result", "table", "_start", "_stop"}
    for t in tables:
        for r in t.records:
            row = {k: v for k, v in r.values.items() if k not in skip}
            out[row.pop("_measurement")].append(row)
    return dict(out)


@pytest.fixture(scope="module")
def run(
    stack: HitoSettings, runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    settings = make_isolated(stack)
    privacy = settings.privacy.model_copy(update={"key_refresh_s": 0.5})
    settings = settings.model_copy(update={"privacy": privacy})
    grace = key_grace_s(settings.pipeline)
    store_path = tmp_path_factory.mktemp("keys") / "pseudonym-keys.json"
    clock = [DAY1 + timedelta(hours=12)]
    store = KeyStore.provision(store_path, {PURPOSE: DAY}, clock[0], grace)
    day1_key = store.lookup(PURPOSE, E1)
    assert day1_key is not None
    rt = dataclasses.replace(runtime, settings=settings, key_store=store)
    plan = FleetPlan(
        count=3 * PER_DAY + 2000,
        seed=23,
        daily_rhythm=False,
        travellers=500,
        raw_topics=dict(settings.pipeline.raw_topics),
    )
    stream = Fleet(rt.registry, plan, clock[0], clock=lambda: clock[0]).messages()
    sent: dict[int, list[SimMessage]] = {}
    producer = client_config(settings.kafka, "device")
    k = rt.policy.small_count_k

    async def send_day(worker: Worker, at: datetime, n: int = PER_DAY) -> None:
        clock[0] = at
        batch = list(itertools.islice(stream, n))
        sent.setdefault(epoch_of(at, DAY), []).extend(batch)
        before = worker.metrics.total_events()
        crossings = _crossings_counted(worker) + len(_checkpoint(batch))
        await asyncio.to_thread(send_messages, batch, producer_config=producer, total=len(batch))
        await wait_until(
            lambda: worker.metrics.total_events() >= before + len(batch), 120, "ingest"
        )
        await wait_until(lambda: _crossings_counted(worker) >= crossings, 60, "aggregation")

    def published(worker: Worker) -> float:
        return sum(
            s.value
            for m in worker.metrics.repeat_days_published.collect()
            for s in m.samples
            if s.name == "hito_repeat_days_published_total"
        )

    async def trickle_until(worker: Worker, done: Any, what: str) -> None:
        """Keep a few crossings coming (the per-person state of a published day is deleted
        by the next batch of its partition) until ``done``."""
        for _ in range(30):
            if done():
                return
            await send_day(worker, clock[0], n=40)
            await asyncio.sleep(2)
        raise AssertionError(f"timed out waiting for {what}")

    async def scenario() -> list[str]:
        async with running_worker(rt, clock=lambda: clock[0]) as worker:
            await send_day(worker, DAY1 + timedelta(hours=12))
            assert published(worker) == 0  # day 1 is still open
            # Day 3: day 1 (and 2) closed, their keys go; day 1 is published, then forgotten.
            await send_day(worker, DAY3 + timedelta(hours=12), n=DAY3_MESSAGES)
            await wait_until(lambda: store.chains[PURPOSE].first_epoch == E3, 30, "key gone")
            await wait_until(lambda: published(worker) >= 2, 60, "day 1 published")
            # Day 4: day 3 closes in turn, is published (both sites), then forgotten.
            clock[0] = DAY3 + timedelta(days=1, seconds=grace + 60)
            await trickle_until(worker, lambda: published(worker) >= 4, "day 3 published")
            await trickle_until(
                worker,
                lambda: not [k for k in worker.repeat_table if f"|e{E3}:" in k or f"|e{E1}:" in k],
                "closed days forgotten",
            )
            return list(worker.repeat_table)

    left = asyncio.run(scenario())
    clean = [CleanEvent.model_validate_json(b) for b in clean_topic_bytes(settings)]
    yield Run(settings, store_path, store, day1_key, sent, clean, _points(settings), left, k)


def _traveller_of(run: Run) -> dict[tuple[str, int], str]:
    """(device_id, seq) -> the document number it was sent with: ground truth, the attacker
    does not have it."""
    return {
        (e["device_id"], e["seq"]): e["payload"]["document_number"]
        for messages in run.sent.values()
        for e in _checkpoint(messages)
    }


def _day_records(run: Run, epoch: int) -> list[CleanEvent]:
    return [
        c for c in run.clean if c.source == "checkpoint" and epoch_of(c.event_time, DAY) == epoch
    ]


def _stable_fields(records: list[CleanEvent], truth: dict[tuple[str, int], str]) -> set[str]:
    """The clean payload fields whose value is the same on every crossing of each traveller:
    the quasi-identifiers an attacker could follow a person by."""
    values: defaultdict[tuple[str, str], set[Any]] = defaultdict(set)
    for c in records:
        for name, value in c.payload.items():
            values[(truth[(c.device_id, c.seq)], name)].add(value)
    fields = {name for _, name in values}
    return {f for f in fields if all(len(v) == 1 for (_, name), v in values.items() if name == f)}


def test_no_record_of_day_1_links_to_day_3(run: Run) -> None:
    truth = _traveller_of(run)
    day1, day3 = _day_records(run, E1), _day_records(run, E3)
    travellers1 = {truth[(c.device_id, c.seq)] for c in day1}
    travellers3 = {truth[(c.device_id, c.seq)] for c in day3}
    assert len(travellers1) == len(travellers3) == len(travellers1 & travellers3) == 500
    # No shared pseudonym.
    hexes = [
        {c.pseudonyms[PURPOSE]["document_number"].split(":")[1] for c in d} for d in (day1, day3)
    ]
    assert len(hexes[0]) == len(hexes[1]) == 500 and not hexes[0] & hexes[1]
    # No quasi-identifier singles a traveller out on both days: the only field that stays the
    # same for a person is the nationality group, and every group holds several travellers.
    stable = _stable_fields(day1 + day3, truth)
    assert stable == {"nationality"}
    for records in (day1, day3):
        groups: defaultdict[Any, set[str]] = defaultdict(set)
        for c in records:
            groups[tuple(c.payload[f] for f in sorted(stable))].add(truth[(c.device_id, c.seq)])
        assert min(len(people) for people in groups.values()) >= 2, groups.keys()
    # InfluxDB holds no pseudonym and no cell of fewer than k people.
    blob = repr(run.points)
    assert not any(h in blob for h in hexes[0] | hexes[1])
    for measurement, detail in PEOPLE_MEASUREMENTS.items():
        for p in run.points.get(measurement, []):
            if detail is None or p.get(detail) != "other":
                assert p.get("count", run.k) >= run.k, (measurement, p)


def test_within_day_1_only_the_purposes_pseudonym_links_records(run: Run) -> None:
    truth = _traveller_of(run)
    day1 = _day_records(run, E1)
    by_traveller: defaultdict[str, set[str]] = defaultdict(set)
    for c in day1:
        assert set(c.pseudonyms) == {PURPOSE} and set(c.pseudonyms[PURPOSE]) == {"document_number"}
        by_traveller[truth[(c.device_id, c.seq)]].add(c.pseudonyms[PURPOSE]["document_number"])
    # The purpose recognises each traveller: one pseudonym each, never shared.
    assert all(len(p) == 1 for p in by_traveller.values())
    assert len({next(iter(p)) for p in by_traveller.values()}) == len(by_traveller) == 500
    assert sum(1 for c in Counter(truth[(c.device_id, c.seq)] for c in day1).values() if c > 1)
    # Nothing else in a record is the person's: the payload is what the purposes need.
    assert {frozenset(c.payload) for c in day1} == {
        frozenset({"direction", "mode", "outcome", "nationality", "processing_seconds"})
    }


def test_day_1_keys_are_destroyed_and_nothing_held_recomputes_its_pseudonyms(run: Run) -> None:
    truth = _traveller_of(run)
    day1 = _day_records(run, E1)
    stored = {c.pseudonyms[PURPOSE]["document_number"] for c in day1}
    documents = {truth[(c.device_id, c.seq)] for c in day1}
    assert len(stored) == len(documents) == 500
    # The store's file and memory, as the worker left them (and read afresh).
    assert run.day1_key.hex() not in run.store_path.read_text()
    for store in (run.store, KeyStore.open(run.store_path)):
        assert store.lookup(PURPOSE, E1) is None and store.lookup(PURPOSE, E3) is None
        assert store.chains[PURPOSE].first_epoch > E3
    # Every key the system still holds: the store's first key and all it ratchets to.
    first = run.store.chains[PURPOSE].first_epoch
    held = [run.store.lookup(PURPOSE, e) for e in range(first, first + 400)]
    assert all(held)

    def recomputed(keys: list[bytes]) -> set[str]:
        return {
            pseudonym(key, PURPOSE, "document_number", doc, E1) for key in keys for doc in documents
        }

    assert not recomputed([k for k in held if k]) & stored
    # The check can fail: day 1's key, had it been kept, recomputes every one of them.
    assert recomputed([run.day1_key]) == stored
    assert ratchet_forward(run.day1_key, first - E1) == held[0]  # forward only


def test_repeat_crossings_equals_an_independent_count_cell_by_cell(run: Run) -> None:
    crossings: Counter[tuple[str, str, int, str]] = Counter()
    for messages in run.sent.values():
        for e in _checkpoint(messages):
            day = epoch_of(datetime.fromisoformat(e["event_time"]), DAY)
            crossings[
                (e["site"], e["payload"]["direction"], day, e["payload"]["document_number"])
            ] += 1
    cells: Counter[tuple[str, str, int]] = Counter()
    for (site, direction, day, _), n in crossings.items():
        if n >= 2:
            cells[(site, direction, day)] += 1
    closed = {(s, d, day): n for (s, d, day), n in cells.items() if day in (E1, E3)}
    assert len(closed) == 8  # two sites, two directions, two days
    published = {
        (p["site"], p["direction"], epoch_of(p["_time"], DAY)): p["count"]
        for p in run.points["repeat_crossings"]
    }
    assert published == {cell: n for cell, n in closed.items() if n >= run.k}
    # Both sides of the threshold occur: small cells exist and are not published.
    assert min(closed.values()) < run.k <= max(closed.values())
    assert all(p["_time"] == datetime.fromtimestamp(epoch_of(p["_time"], DAY) * DAY, tz=UTC)
               for p in run.points["repeat_crossings"])  # fmt: skip
    # The worker kept nobody's day beyond its close: only the open day 4 is left.
    assert run.person_days_left and all(f"|e{E3 + 1}:" in key for key in run.person_days_left)
