"""repeat_crossings through the real agents in Faust's test context: the ingest agent's
pseudonyms, the aggregate agent's per-person days (exact under redelivery), the publisher's
one write per closed day (small cells not published), the deletion of the day's per-person
state after it, and a late event that cannot bring it back."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from hito.device import sdk
from hito.pipeline.keystore import KeyStore
from hito.pipeline.pseudonyms import epoch_of
from hito.pipeline.stages import repeat
from hito.pipeline.state.repeat_days import unpack
from hito.runtime import Runtime
from hito.schemas.clean import CleanEvent
from tests.agents.conftest import RecordingSend, lane_batches, put_all, worker_for_tests

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
DAY = epoch_of(NOW, 86400)


def crossings(runtime: Runtime) -> list[tuple[bytes, bytes]]:
    """At Chacalluta: 7 people cross in twice, 3 people out twice, 20 make one round trip
    (60 crossings)."""
    devices = sorted(
        (d for d in runtime.registry.devices.values() if d.site == "chacalluta"),
        key=lambda d: d.device_id,
    )
    seqs: dict[str, int] = {}
    trips = [(f"TWICEIN{i:02d}", d) for i in range(7) for d in ("entry", "entry")]
    trips += [(f"TWICEOUT{i:02d}", d) for i in range(3) for d in ("exit", "exit")]
    trips += [(f"ROUNDTR{i:02d}", d) for i in range(20) for d in ("exit", "entry")]
    out = []
    for n, (document, direction) in enumerate(trips):
        device = devices[n % len(devices)]
        seq = seqs.get(device.device_id, 0)
        seqs[device.device_id] = seq + 1
        payload = {
            "direction": direction,
            "mode": "pedestrian",
            "lane": "L1",
            "document_type": "tvf",
            "document_number": document,
            "nationality": "PER",
            "birth_year": 1980,
            "outcome": "admitted",
            "processing_seconds": 20.0,
        }
        env = sdk.build_event(
            schema="checkpoint.crossing/1",
            device_id=device.device_id,
            site=device.site,
            seq=seq,
            event_time=NOW - timedelta(seconds=n),
            payload=payload,
            key=device.key,
        )
        out.append((orjson.dumps(env), device.device_id.encode()))
    return out


def test_repeat_crossings_exact_published_once_closed_then_forgotten(
    runtime: Runtime, tmp_path: Path
) -> None:
    store = KeyStore.provision(
        tmp_path / "keys.json", {"repeat_crossings": 86400}, NOW, runtime.key_grace_s
    )
    runtime = dataclasses.replace(runtime, key_store=store)
    clock = [NOW]
    send = RecordingSend()
    written: list[str] = []
    worker = worker_for_tests(runtime, "hito-repeat-test", lambda: clock[0], send)
    raw_topic = runtime.settings.pipeline.raw_topics["checkpoint"]
    sink, windows = worker.publisher.sink, worker.publisher.windows

    async def capture(lines: list[str], *, archive: bool = False) -> None:
        if not archive:
            written.extend(lines)

    sink.write = capture  # type: ignore[method-assign]
    # No waiting between scans and evictions here.
    windows.eviction_due = lambda: True  # type: ignore[method-assign]
    worker.publisher.repeat_days.scan_due = lambda: True  # type: ignore[method-assign]

    async def scenario() -> tuple[list[Any], list[Any]]:
        raw = [(raw_topic, k, v, None) for v, k in crossings(runtime)]
        async with worker.ingest.test_context() as ingest:
            await put_all(ingest, lane_batches(worker.lanes, raw))
        clean = [(r.topic, r.key, r.value, r.headers) for r in send.to("hito.clean.checkpoint")]
        async with worker.aggregate.test_context() as aggregate:
            # everything delivered twice (a redelivery: the same raw origins)
            first = await put_all(aggregate, lane_batches(worker.lanes, clean * 2))
            people = dict(worker.repeat_table.data.items())
            # The day is open: nothing is published yet.
            assert await worker.publisher.flush_repeat({0}) is None and written == []
            clock[0] = datetime.fromtimestamp((DAY + 1) * 86400, tz=UTC) + timedelta(
                seconds=runtime.key_grace_s
            )
            await worker.publisher.flush_repeat({0})
        # The next batch of the partition deletes the published day's people; a late copy of
        # one of its events is a revision of its minute (a duplicate there: counted once)
        # and cannot bring the day back.
        async with worker.aggregate.test_context() as aggregate:
            later = await put_all(aggregate, lane_batches(worker.lanes, [clean[0]]))
        return [first, people], later

    (outcomes, people), later = asyncio.run(scenario())
    assert outcomes == ["counted"] * 60 + ["duplicate"] * 60
    assert len(people) == 7 + 3 + 20  # one record per person and day
    assert repeat.day_cells(unpack(v)[0] for v in people.values()) == {"entry": 7, "exit": 3}
    assert all(key.startswith(f"0|chacalluta|e{DAY}:") for key in people)
    assert {unpack(v)[1] for v in people.values()} == {runtime.policy.version}
    # The exit cell (3 people) is under k = 5: not published at all.
    policy = runtime.policy.version
    assert written == [
        f"repeat_crossings,direction=entry,policy={policy},site=chacalluta count=7i {DAY * 86400}"
    ]
    assert later == ["duplicate"]
    assert dict(worker.repeat_table.data.items()) == {}
    assert worker.metrics.repeat_days_published.labels(site="chacalluta")._value.get() == 1
    # Every clean event carried the purpose's pseudonym, and nothing else that links.
    events = [
        CleanEvent.model_validate_json(r.value or b"") for r in send.to("hito.clean.checkpoint")
    ]
    assert {tuple(c.pseudonyms) for c in events} == {("repeat_crossings",)}
    assert len({c.pseudonyms["repeat_crossings"]["document_number"] for c in events}) == 30


def test_an_event_whose_key_is_destroyed_is_counted_without_its_pseudonym(
    runtime: Runtime, tmp_path: Path
) -> None:
    store = KeyStore.provision(
        tmp_path / "keys.json", {"repeat_crossings": 86400}, NOW + timedelta(days=1), 360
    )
    runtime = dataclasses.replace(runtime, key_store=store)
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-withheld-test", NOW, send)
    raw_topic = runtime.settings.pipeline.raw_topics["checkpoint"]
    raw = [(raw_topic, k, v, None) for v, k in crossings(runtime)[:4]]

    async def scenario() -> list[str]:
        async with worker.ingest.test_context() as ingest:
            return await put_all(ingest, lane_batches(worker.lanes, raw))

    assert asyncio.run(scenario()) == ["accepted"] * 4
    clean = [CleanEvent.model_validate_json(r.value or b"") for r in send.starting("hito.clean")]
    assert [c.pseudonyms for c in clean] == [{}] * 4
    assert worker.metrics.pseudonyms_withheld.labels(purpose="repeat_crossings")._value.get() == 4
