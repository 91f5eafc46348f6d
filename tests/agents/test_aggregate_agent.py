"""The aggregate agent in Faust's test context: real ingest output counted into windows, each
event once; late and unreadable clean events dead-lettered with their reason."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from hito.device.simulate.fleet import VALID, Fleet, FleetPlan
from hito.ops.dlq import decode_record
from hito.pipeline.state.versioned import partition_of
from hito.pipeline.worker import build_worker
from hito.runtime import Runtime
from hito.schemas.clean import CleanEvent
from hito.schemas.reasons import Reason
from tests.agents.conftest import put_all

NOW = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


def test_aggregate_counts_each_clean_event_once(runtime: Runtime) -> None:
    plan = FleetPlan(count=300, daily_rhythm=False)
    messages = [m for m in Fleet(runtime.registry, plan, NOW).messages() if m.expected == VALID]
    sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        sent.append((topic, key, value))

    worker = build_worker(runtime, app_id="hito-agg-test", clock=lambda: NOW, send=send)

    async def scenario() -> list[str]:
        async with worker.ingest.test_context() as ingest:
            await put_all(ingest, ((m.value, m.key) for m in messages))
        clean = [(k, v) for t, k, v in sent if t.startswith("hito.clean.")]
        # Every clean event twice (a redelivery), then one too late and one unreadable.
        late = CleanEvent.model_validate_json(clean[0][1]).model_copy(
            update={"event_time": NOW - timedelta(hours=1), "seq": 10**6}
        )
        extra = [
            (late.model_dump_json(by_alias=True).encode(), b"chacalluta"),
            (b'{"not": "clean"}', b"chacalluta"),
        ]
        async with worker.aggregate.test_context() as aggregate:
            twice = [(v, k) for k, v in clean] * 2
            return await put_all(aggregate, [*twice, *extra])

    outcomes = asyncio.run(scenario())
    n = len(messages)
    assert outcomes == ["counted"] * n + ["duplicate"] * n + [
        "late_beyond_window",
        "schema_violation",
    ]

    # The windows hold exactly the fleet's crossings, once each.
    counted: Counter[tuple[str, str]] = Counter()
    for key, state in worker.windows.items():
        assert partition_of(key) == 0
        for cell, count in state["crossings"].items():
            counted[(state["site"], cell.split("|", 1)[0])] += count
    checkpoint = [
        CleanEvent.model_validate_json(v) for t, _, v in sent if t == "hito.clean.checkpoint"
    ]
    assert counted == Counter((c.site, str(c.payload["direction"])) for c in checkpoint)
    assert sum(counted.values()) == len(checkpoint) > 0

    dlq = [decode_record(v) for t, _, v in sent if t == "hito.dlq"]
    assert [(r.reason, r.stage) for r in dlq] == [
        (Reason.LATE_BEYOND_WINDOW, "aggregate"),
        (Reason.SCHEMA_VIOLATION, "aggregate"),
    ]
    first_clean = next(v for t, _, v in sent if t.startswith("hito.clean."))
    assert dlq[0].device_id == CleanEvent.model_validate_json(first_clean).device_id
    assert dlq[1].device_id is None
