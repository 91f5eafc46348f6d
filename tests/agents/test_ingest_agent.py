"""The ingest agent in Faust's test context: no broker, real stages, real table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import cast

from hito.device.simulate.fleet import DUPLICATE, VALID, Fleet, FleetPlan
from hito.ops.dlq import decode_original, decode_record
from hito.pipeline.faust.batches import LaneBatch, Record, RefusedBatch
from hito.pipeline.faust.fetched_records import TOO_LARGE
from hito.pipeline.raw_origin import raw_origin
from hito.runtime import Runtime
from hito.schemas.clean import CleanEvent
from tests.agents.conftest import RecordingSend, lane_batches, put_all, worker_for_tests

NOW = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


def test_agent_routes_every_message_to_its_outcome(runtime: Runtime) -> None:
    plan = FleetPlan(
        count=400, bad_fraction=0.15, duplicate_fraction=0.1, out_of_order_fraction=0.03
    )
    messages = list(Fleet(runtime.registry, plan, NOW).messages())
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-agent-test", NOW, send)
    records = ((m.topic, m.key, m.value, None) for m in messages)

    async def scenario() -> list[str]:
        async with worker.ingest.test_context() as agent:
            return await put_all(agent, lane_batches(worker.lanes, records, size=64))

    outcomes = asyncio.run(scenario())
    expected = ["accepted" if m.expected == VALID else m.expected for m in messages]
    assert outcomes == expected
    assert worker.metrics.events_by_outcome()["duplicate"] == expected.count(DUPLICATE)

    dlq = [decode_record(r.value) for r in send.to("hito.dlq") if r.value]
    originals = [decode_original(r.value) for r in send.to("hito.dlq.originals") if r.value]
    rejected = [m for m in messages if m.expected not in (VALID, DUPLICATE)]
    assert [r.reason.value for r in dlq] == [m.expected for m in rejected]
    # Operators' records hold no bytes; the originals (raw zone) hold them exactly, paired by
    # the source coordinates and the rejection's id, one id per rejection.
    assert [o.original for o in originals] == [m.value for m in rejected]
    assert [(r.source_offset, r.rejection_id) for r in dlq] == [
        (o.source_offset, o.rejection_id) for o in originals
    ]
    assert len({r.rejection_id for r in dlq} - {None}) == len(rejected)
    assert [r.original_bytes for r in dlq] == [len(m.value) for m in rejected]

    # One clean event per accepted event, on its source's clean topic, keyed by site, with
    # where its raw event was read.
    clean = [(r, CleanEvent.model_validate_json(r.value or b"")) for r in send.starting("hito.c")]
    valid = [m for m in messages if m.expected == VALID]
    assert [(c.device_id, c.site) for _, c in clean] == [(m.device_id, m.site) for m in valid]
    assert all(r.topic == f"hito.clean.{c.source}" and r.key == c.site.encode() for r, c in clean)
    assert {c.policy for _, c in clean} == {runtime.policy.version}
    assert all(raw_origin(cast(Record, r)) is not None for r, _ in clean)

    # One dedup changelog record per device and batch: the latest state of each device.
    changelog = send.to("hito-agent-test-dedup-seq-changelog")
    assert {r.key for r in changelog} == {f'"{m.device_id}"'.encode() for m in valid}


class _StopAtSecondWait(RecordingSend):
    """Cancelled at the batch's second wait (its dedup changelog records'), as a stop is."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1
        if self.flushes == 2:
            raise asyncio.CancelledError


def test_a_batch_stopped_before_its_dedup_state_is_in_kafka_is_new_when_read_again(
    runtime: Runtime,
) -> None:
    """The dedup state in memory moves on only once its changelog records are in Kafka: a
    batch stopped before is read again (Lanes) as new — its clean events go out again (the
    aggregator knows them by their raw origin) and its state is written. Taken for duplicates,
    its state would never reach the changelog, and after a restart a device's re-sent event
    would be counted twice."""
    plan = FleetPlan(count=120, daily_rhythm=False)
    messages = [m for m in Fleet(runtime.registry, plan, NOW).messages() if m.expected == VALID]
    send = _StopAtSecondWait()
    worker = worker_for_tests(runtime, "hito-stop-test", NOW, send)
    records = [(m.topic, m.key, m.value, None) for m in messages[:40]]
    (batch,) = lane_batches(worker.lanes, [r for r in records if r[0] == records[0][0]])
    changelog = "hito-stop-test-dedup-seq-changelog"

    async def scenario() -> list[str]:
        handler = worker.ingest_handler
        try:
            await handler.handle_batch(batch.records)
            raise AssertionError("the second wait was not cancelled")
        except asyncio.CancelledError:
            pass
        return await handler.handle_batch(batch.records)  # read again

    again = asyncio.run(scenario())
    assert again == ["accepted"] * len(batch.records)
    clean = send.starting("hito.clean.")
    assert len(clean) == 2 * len(batch.records)  # published twice: same raw origins
    assert [raw_origin(cast(Record, r)) for r in clean[: len(batch.records)]] == [
        raw_origin(cast(Record, r)) for r in clean[len(batch.records) :]
    ]
    devices = {m.device_id for m in messages[:40] if m.topic == records[0][0]}
    assert len(send.to(changelog)) == 2 * len(devices)  # sent again with the re-read


def test_a_refused_batch_is_one_oversized_dead_letter_naming_its_offsets(
    runtime: Runtime,
) -> None:
    """A batch the fetch reader refused unread (it unpacks beyond the cap: fetched_records)
    reaches ingest as one record with no value: one ``oversized`` DLQ record (stage fetch)
    naming the batch's offsets, no device, nothing echoed; the events around it as ever."""
    plan = FleetPlan(count=40, bad_fraction=0.0, duplicate_fraction=0.0)
    fleet = list(Fleet(runtime.registry, plan, NOW).messages())
    messages = [m for m in fleet if m.topic == fleet[0].topic][:4]
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-refused-test", NOW, send)
    (batch,) = lane_batches(worker.lanes, ((m.topic, m.key, m.value, None) for m in messages))
    topic = messages[0].topic
    assert all(m.topic == topic for m in messages)
    refused = RefusedBatch(
        topic, 0, 11, 0, 0, None, None, None, -1, -1, (), first_offset=4, why=TOO_LARGE
    )
    records = [*batch.records, refused]
    assert [r.offset for r in records[:4]] == [0, 1, 2, 3]

    async def scenario() -> list[str]:
        async with worker.ingest.test_context() as agent:
            return await put_all(agent, [LaneBatch(batch.tp, records, batch.generation)])

    assert asyncio.run(scenario()) == ["accepted"] * 4 + ["oversized"]
    (dead,) = [decode_record(r.value) for r in send.to("hito.dlq") if r.value]
    assert (dead.reason.value, dead.stage, dead.device_id) == ("oversized", "fetch", None)
    assert dead.detail == f"records 4..11: {TOO_LARGE}"
    assert (dead.source_offset, dead.original_bytes) == (11, 0)
