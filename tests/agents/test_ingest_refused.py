"""A clean event Kafka refuses for good is dead-lettered as ``sink_rejected``, with its
device and site, and the batch goes on (the bookkeeping the ingest agent keeps per clean send,
hito.pipeline.agents.ingest._deliver)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.errors import MessageSizeTooLargeError

from hito.device.simulate.fleet import VALID, Fleet, FleetPlan
from hito.ops.dlq import decode_original, decode_record
from hito.pipeline.output import Outgoing
from hito.runtime import Runtime
from hito.schemas.clean import CleanEvent
from hito.schemas.reasons import Reason
from tests.agents.conftest import RecordingSend, lane_batches, put_all, worker_for_tests

NOW = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


class RefusingSend(RecordingSend):
    """Kafka that refuses the clean events of ``refused`` ((device, seq) pairs) as too large,
    every time they are sent."""

    def __init__(self, refused: set[tuple[str, int]]) -> None:
        super().__init__()
        self.refused = refused

    async def __call__(self, record: Outgoing) -> Any:
        await super().__call__(record)
        if record.topic.startswith("hito.clean.") and record.value is not None:
            clean = CleanEvent.model_validate_json(record.value)
            if (clean.device_id, clean.seq) in self.refused:
                failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                failed.set_exception(MessageSizeTooLargeError())
                return failed
        return None


def _identity(raw: bytes) -> tuple[str, int]:
    envelope = orjson.loads(raw)
    return envelope["device_id"], envelope["seq"]


def test_a_refused_clean_event_is_dead_lettered_with_its_device(runtime: Runtime) -> None:
    plan = FleetPlan(count=60, bad_fraction=0.0, duplicate_fraction=0.0)
    messages = [m for m in Fleet(runtime.registry, plan, NOW).messages() if m.expected == VALID]
    refused = {_identity(messages[7].value), _identity(messages[40].value)}
    send = RefusingSend(refused)
    worker = worker_for_tests(runtime, "hito-refused-test", NOW, send)
    records = ((m.topic, m.key, m.value, None) for m in messages)

    async def scenario() -> list[str]:
        async with worker.ingest.test_context() as agent:
            return await put_all(agent, lane_batches(worker.lanes, records, size=16))

    outcomes = asyncio.run(scenario())
    expected = [
        Reason.SINK_REJECTED.value if _identity(m.value) in refused else "accepted"
        for m in messages
    ]
    assert outcomes == expected
    assert expected.count(Reason.SINK_REJECTED.value) == 2
    rejected = [m for m in messages if _identity(m.value) in refused]
    dlq = [decode_record(r.value) for r in send.to("hito.dlq") if r.value]
    assert [(r.reason, r.stage, r.device_id, r.site) for r in dlq] == [
        (Reason.SINK_REJECTED, "publish", m.device_id, m.site) for m in rejected
    ]
    assert {r.detail for r in dlq} == {
        "the clean event was refused by Kafka (MessageSizeTooLargeError)"
    }
    originals = [decode_original(r.value) for r in send.to("hito.dlq.originals") if r.value]
    assert [o.original for o in originals] == [m.value for m in rejected]
