"""Tables with array stores through their changelog: what the agents write is what a fresh
worker recovers (Faust's recovery path: ``Table.apply_changelog_batch``); the dedup table's
fresh worker then tells duplicates from new events exactly as the first one would have."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hito.device.simulate.fleet import Fleet, FleetPlan
from hito.pipeline.keystore import KeyStore
from hito.pipeline.stages.dedup import SeqState
from hito.pipeline.state.stores import seq_states
from hito.pipeline.worker import Worker
from hito.runtime import Runtime
from hito.schemas.privacy.retention import PERSON_STATE_TABLE
from tests.agents.conftest import RecordingSend, lane_batches, put_all, worker_for_tests
from tests.agents.test_repeat_crossings import NOW as REPEAT_NOW
from tests.agents.test_repeat_crossings import crossings as repeat_crossings

NOW = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


@dataclass(frozen=True)
class _Message:
    value: bytes | None
    partition: int
    timestamp: float | None = None  # when the record was written (Unix s)


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


def test_a_device_silent_before_a_restart_is_silent_after_it(runtime: Runtime) -> None:
    """Its dedup state was written when its last event was handled: the recovered worker
    reports it as last seen then, so DeviceSilent keeps firing across a restart or handover
    (a fresh worker would otherwise not know the device and the alert would resolve)."""
    worker = worker_for_tests(runtime, "hito-recovery-silent", NOW, RecordingSend())
    worker.metrics.devices.owned = lambda: {("hito.raw.checkpoint", 3)}  # its partition
    device = runtime.registry.get("pe-santarosa-ckpt-02")
    assert device is not None
    written = NOW.timestamp() - 600  # ten minutes before the restart
    worker.seq_table.apply_changelog_batch(
        [_ChangelogEvent(device.device_id, "5:1f:0:0", _Message(b'"5:1f:0:0"', 3, written))]
    )
    series = {
        s.labels["device_id"]: s.value
        for family in worker.metrics.registry.collect()
        if family.name == "hito_device_last_seen_seconds"
        for s in family.samples
    }
    assert series == {device.device_id: written}


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


def test_a_fresh_worker_recovers_the_people_of_repeat_crossings_exactly(
    runtime: Runtime, tmp_path: Path
) -> None:
    """Some people crossed once (array rows), some twice (kept as text): all come back."""
    store = KeyStore.provision(
        tmp_path / "keys.json", {"repeat_crossings": 86400}, REPEAT_NOW, runtime.key_grace_s
    )
    runtime = dataclasses.replace(runtime, key_store=store)
    sent = RecordingSend()
    worker = worker_for_tests(runtime, "hito-recovery-test-3", REPEAT_NOW, sent)
    raw_topic = runtime.settings.pipeline.raw_topics["checkpoint"]
    trips = repeat_crossings(runtime)  # the twice-in and twice-out, then the round trips' exits
    raw = [(raw_topic, k, v, None) for v, k in trips[:20] + trips[20::2]]

    async def scenario() -> None:
        async with worker.ingest.test_context() as ingest:
            await put_all(ingest, lane_batches(worker.lanes, raw))
        clean = [(r.topic, r.key, r.value, r.headers) for r in sent.to("hito.clean.checkpoint")]
        async with worker.aggregate.test_context() as aggregate:
            await put_all(aggregate, lane_batches(worker.lanes, clean, size=10))

    asyncio.run(scenario())
    people = dict(worker.repeat_table.data.items())
    single = [v for v in people.values() if v.count("\n") == 1]
    assert (len(people), len(single)) == (7 + 3 + 20, 20)
    fresh = worker_for_tests(runtime, "hito-recovery-test-3", REPEAT_NOW, RecordingSend())
    records = sent.to(f"hito-recovery-test-3-{PERSON_STATE_TABLE}-changelog")
    fresh.repeat_table.apply_changelog_batch(
        [
            _ChangelogEvent(
                json.loads(r.key or b"null"),
                None if r.value is None else json.loads(r.value),
                _Message(r.value, r.partition or 0),
            )
            for r in records
        ]
    )
    assert dict(fresh.repeat_table.data.items()) == people
