"""The ingest agent in Faust's test context: no broker, real stages, real table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from streams.devices import DeviceRegistry
from streams.dlq import decode_record
from streams.settings import HitoSettings
from streams.simulate.fleet import DUPLICATE, VALID, Fleet, FleetPlan
from streams.worker import build_worker

NOW = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


def test_agent_routes_every_message_to_its_outcome(
    settings: HitoSettings, registry: DeviceRegistry
) -> None:
    plan = FleetPlan(
        count=400, bad_fraction=0.15, duplicate_fraction=0.1, out_of_order_fraction=0.03
    )
    messages = list(Fleet(registry, plan, NOW).messages())
    dlq: list[tuple[bytes | None, bytes]] = []

    async def send_dlq(key: bytes | None, value: bytes) -> None:
        dlq.append((key, value))

    worker = build_worker(
        settings, registry, app_id="hito-agent-test", clock=lambda: NOW, send_dlq=send_dlq
    )

    async def scenario() -> list[str]:
        outcomes = []
        async with worker.ingest.test_context() as agent:
            for m in messages:
                event = await agent.put(m.value, key=m.key)
                outcomes.append(agent.results[event.message.offset])
        return outcomes

    outcomes = asyncio.run(scenario())
    expected = ["accepted" if m.expected == VALID else m.expected for m in messages]
    assert outcomes == expected
    assert worker.metrics.events_by_outcome()["duplicate"] == expected.count(DUPLICATE)
    rejected = [m for m in messages if m.expected not in (VALID, DUPLICATE)]
    assert [decode_record(v).reason.value for _, v in dlq] == [m.expected for m in rejected]
    assert [decode_record(v).original for _, v in dlq] == [m.value for m in rejected]
