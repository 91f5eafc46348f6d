"""Hostile inputs through the real ingest agent (Faust test context): nothing crashes, and
each gets exactly its outcome (a DLQ reason, or duplicate for a replay)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hito.ops.dlq import decode_original, decode_record
from hito.pipeline.worker import build_worker
from hito.runtime import Runtime
from hito.schemas.dlq import MAX_ORIGINAL_BYTES
from tests.abuse.corpus import corpus
from tests.agents.conftest import put_all

NOW = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


def test_every_hostile_input_gets_its_outcome(runtime: Runtime) -> None:
    hostile = corpus(runtime.registry, NOW)
    sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        sent.append((topic, key, value))

    worker = build_worker(runtime, app_id="hito-abuse-test", clock=lambda: NOW, send=send)

    async def scenario() -> list[str]:
        async with worker.ingest.test_context() as agent:
            return await put_all(agent, ((h.value, h.key) for h in hostile))

    outcomes = asyncio.run(scenario())
    assert dict(zip([h.label for h in hostile], outcomes, strict=True)) == {
        h.label: h.expected for h in hostile
    }
    # Every rejection is one DLQ record with its reason, holding the exact bytes.
    dlq = [decode_record(v) for t, _, v in sent if t == "hito.dlq"]
    originals = [decode_original(v) for t, _, v in sent if t == "hito.dlq.originals"]
    rejected = [h for h in hostile if h.expected not in ("accepted", "duplicate")]
    assert [r.reason.value for r in dlq] == [h.expected for h in rejected]
    # The bytes are in the raw zone's records, whole up to MAX_ORIGINAL_BYTES, else a prefix.
    assert [(o.original, o.cut, o.original_bytes) for o in originals] == [
        (h.value[:MAX_ORIGINAL_BYTES], len(h.value) > MAX_ORIGINAL_BYTES, len(h.value))
        for h in rejected
    ]
    assert worker.metrics.events_by_outcome()["accepted"] == 1
