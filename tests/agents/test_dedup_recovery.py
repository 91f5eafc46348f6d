"""The dedup table through its changelog: what the ingest agent writes is what a fresh worker
recovers (Faust's recovery path: ``Table.apply_changelog_batch``), and the fresh worker then
tells duplicates from new events exactly as the first one would have."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hito.device.simulate.fleet import Fleet, FleetPlan
from hito.pipeline.stages.dedup import SeqState
from hito.pipeline.state.dedup_store import seq_states
from hito.pipeline.worker import Worker
from hito.runtime import Runtime
from tests.agents.conftest import RecordingSend, lane_batches, put_all, worker_for_tests

NOW = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


@dataclass(frozen=True)
class _Message:
    value: bytes | None
    partition: int


@dataclass(frozen=True)
class _ChangelogEvent:
    """What Faust's recovery hands a table: the decoded key and value, and the message."""

    key: Any
    value: Any
    message: _Message


def _run(worker: Worker, messages: list[Any]) -> list[str]:
    records = ((m.topic, m.key, m.value, None) for m in messages)

    async def scenario() -> list[str]:
        async with worker.ingest.test_context() as agent:
            return await put_all(agent, lane_batches(worker.lanes, records, size=50))

    return asyncio.run(scenario())


def _recovered(runtime: Runtime, app_id: str, sent: RecordingSend) -> Worker:
    fresh = worker_for_tests(runtime, app_id, NOW, RecordingSend())
    events = [
        _ChangelogEvent(
            json.loads(r.key or b"null"),
            None if r.value is None else json.loads(r.value),
            _Message(r.value, r.partition or 0),
        )
        for r in sent.to(f"{app_id}-dedup-seq-changelog")
    ]
    assert events, "no changelog records"
    fresh.seq_table.apply_changelog_batch(events)
    return fresh


def test_a_fresh_worker_recovers_exactly_the_changelog_and_goes_on_alike(
    runtime: Runtime,
) -> None:
    plan = FleetPlan(count=600, duplicate_fraction=0.1, out_of_order_fraction=0.1, seed=7)
    messages = list(Fleet(runtime.registry, plan, NOW).messages())
    first, later = messages[:400], messages[400:]
    sent = RecordingSend()
    original = worker_for_tests(runtime, "hito-recovery-test", NOW, sent)
    _run(original, first)
    states = dict(seq_states(original.seq_table))
    assert states and all(SeqState.from_json(v).to_json() == v for v in states.values())

    # The changelog's last record per device is the state; a fresh worker holds exactly that.
    last = {
        json.loads(r.key or b""): json.loads(r.value or b"")
        for r in sent.to("hito-recovery-test-dedup-seq-changelog")
    }
    assert last == states
    fresh = _recovered(runtime, "hito-recovery-test", sent)
    assert dict(seq_states(fresh.seq_table)) == states

    # Both go on the same way: replays of the first part are duplicates on the fresh one too.
    assert _run(fresh, later) == _run(original, later)
    assert _run(fresh, first[:100]) == ["duplicate" if m.expected in ("valid", "duplicate")
                                        else m.expected for m in first[:100]]  # fmt: skip


def test_a_tombstone_deletes_and_an_unreadable_record_is_reset_once(runtime: Runtime) -> None:
    worker = worker_for_tests(runtime, "hito-recovery-test-2", NOW, RecordingSend())
    device = next(iter(runtime.registry.devices))
    table = worker.seq_table
    table.apply_changelog_batch(
        [
            _ChangelogEvent(device, "5:1f:0:0", _Message(b'"5:1f:0:0"', 0)),
            _ChangelogEvent(device, None, _Message(None, 0)),
        ]
    )
    assert device not in seq_states(table)
    table.apply_changelog_batch([_ChangelogEvent(device, "garbage", _Message(b"x", 0))])
    assert seq_states(table)[device] == "garbage"  # kept as stored, for the agent to judge
    messages = [m for m in Fleet(runtime.registry, FleetPlan(count=200), NOW).messages()
                if m.device_id == device]  # fmt: skip
    assert _run(worker, messages[:1]) == ["accepted"]
    assert worker.metrics.dedup_state_resets._value.get() == 1
