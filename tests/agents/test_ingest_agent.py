"""The ingest agent in Faust's test context: no broker, real stages, real table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hito.device.simulate.fleet import DUPLICATE, VALID, Fleet, FleetPlan
from hito.ops.dlq import decode_record
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

    dlq = [(k, v) for t, k, v in sent if t == "hito.dlq"]
    rejected = [m for m in messages if m.expected not in (VALID, DUPLICATE)]
    assert [decode_record(v).reason.value for _, v in dlq] == [m.expected for m in rejected]
    assert [decode_record(v).original for _, v in dlq] == [m.value for m in rejected]

    # One clean event per accepted event, on its source's clean topic, keyed by site.
    clean = [(t, k, CleanEvent.model_validate_json(v)) for t, k, v in sent if t != "hito.dlq"]
    valid = [m for m in messages if m.expected == VALID]
    assert [(c.device_id, c.site) for _, _, c in clean] == [(m.device_id, m.site) for m in valid]
    assert all(t == f"hito.clean.{c.source}" and k == c.site.encode() for t, k, c in clean)
    assert {c.policy for _, _, c in clean} == {runtime.policy.version}
