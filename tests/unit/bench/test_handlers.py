"""The handler bench (hito.bench.handlers): every clean event ingest made is counted once by
the aggregate handler, and a round that loses one stops the run instead of reporting a cost."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from hito.bench import handlers
from hito.device.simulate.fleet import VALID, Fleet
from hito.pipeline.offline import RecordingSend, offline_runtime
from hito.runtime import Runtime, load_runtime
from hito.settings import load_settings


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return offline_runtime(load_runtime(load_settings()))


def test_a_round_counts_every_valid_event_once(runtime: Runtime) -> None:
    costs = handlers.measure(runtime, 600, rounds=2)
    plan = handlers.MIX.plan(600, runtime.settings.pipeline.raw_topics, daily_rhythm=False)
    expected = Fleet(runtime.registry, plan, datetime.now(UTC)).messages()
    valid = sum(m.expected == VALID for m in expected)
    assert costs.events == 600
    assert costs.clean == valid and valid < 600  # the mix has bad events and duplicates
    assert [r.clean for r in costs.rounds] == [valid, valid]
    assert costs.ingest_us_per_event > 0 and costs.aggregate_us_per_event > 0


def test_a_round_that_loses_clean_events_stops_the_run(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every clean event the ingest handler makes is recorded twice: the aggregate handler
    # counts the first and calls the second a duplicate, which the round must not accept.
    record = RecordingSend.__call__

    async def twice(self: RecordingSend, outgoing: object) -> None:
        await record(self, outgoing)  # type: ignore[arg-type]
        if getattr(outgoing, "topic", "").startswith("hito.clean."):
            await record(self, outgoing)  # type: ignore[arg-type]

    monkeypatch.setattr(RecordingSend, "__call__", twice)
    now = datetime.now(UTC)
    raw = handlers.raw_records(runtime, 200, now)
    with pytest.raises(RuntimeError, match="did not count each clean event once"):
        asyncio.run(handlers.one_round(runtime, raw, now, "hito-handlers-lossy"))
