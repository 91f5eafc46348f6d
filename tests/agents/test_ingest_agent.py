"""The ingest agent in Faust's test context: no broker, real stages, real table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hito.device.simulate.fleet import DUPLICATE, VALID, Fleet, FleetPlan
from hito.ops.dlq import decode_original, decode_record
from hito.pipeline.worker import build_worker
from hito.runtime import Runtime
from hito.schemas.clean import CleanEvent
from tests.agents.conftest import put_all

NOW = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


def test_agent_routes_every_message_to_its_outcome(runtime: Runtime) -> None:
    plan = FleetPlan(
        count=400, bad_fraction=0.15, duplicate_fraction=0.1, out_of_order_fraction=0.03
    )
    messages = list(Fleet(runtime.registry, plan, NOW).messages())
    sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        sent.append((topic, key, value))

    worker = build_worker(runtime, app_id="hito-agent-test", clock=lambda: NOW, send=send)

    async def scenario() -> list[str]:
        async with worker.ingest.test_context() as agent:
            return await put_all(agent, ((m.value, m.key) for m in messages))

    outcomes = asyncio.run(scenario())
    expected = ["accepted" if m.expected == VALID else m.expected for m in messages]
    assert outcomes == expected
    assert worker.metrics.events_by_outcome()["duplicate"] == expected.count(DUPLICATE)

    dlq = [decode_record(v) for t, _, v in sent if t == "hito.dlq"]
    originals = [decode_original(v) for t, _, v in sent if t == "hito.dlq.originals"]
    rejected = [m for m in messages if m.expected not in (VALID, DUPLICATE)]
    assert [r.reason.value for r in dlq] == [m.expected for m in rejected]
    # Operators' records hold no bytes; the originals (raw zone) hold them exactly, paired by
    # the source coordinates and digest.
    assert [o.original for o in originals] == [m.value for m in rejected]
    assert [(r.source_offset, r.original_sha256) for r in dlq] == [
        (o.source_offset, o.original_sha256) for o in originals
    ]
    assert [r.original_bytes for r in dlq] == [len(m.value) for m in rejected]

    # One clean event per accepted event, on its source's clean topic, keyed by site.
    clean = [
        (t, k, CleanEvent.model_validate_json(v)) for t, k, v in sent if t.startswith("hito.clean.")
    ]
    valid = [m for m in messages if m.expected == VALID]
    assert [(c.device_id, c.site) for _, _, c in clean] == [(m.device_id, m.site) for m in valid]
    assert all(t == f"hito.clean.{c.source}" and k == c.site.encode() for t, k, c in clean)
    assert {c.policy for _, _, c in clean} == {runtime.policy.version}
