"""The aggregate agent in Faust's test context: real ingest output counted into windows, each
event once (its replay recognised by its raw origin), late and unreadable clean events
dead-lettered with their reason."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from faust.types import TP

from hito.device.simulate.fleet import VALID, Fleet, FleetPlan
from hito.ops.dlq import decode_record
from hito.pipeline.cancellation import Cancelled
from hito.pipeline.delivery import Deliveries
from hito.pipeline.faust.batches import LaneBatch, RefusedBatch
from hito.pipeline.faust.fetched_records import TOO_LARGE
from hito.pipeline.raw_origin import raw_origin_header
from hito.pipeline.state.versioned import partition_of
from hito.runtime import Runtime
from hito.schemas.clean import CleanEvent
from hito.schemas.reasons import Reason
from tests.agents.conftest import RecordingSend, lane_batches, put_all, worker_for_tests

NOW = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


def test_aggregate_counts_each_clean_event_once(runtime: Runtime) -> None:
    plan = FleetPlan(count=300, daily_rhythm=False)
    messages = [m for m in Fleet(runtime.registry, plan, NOW).messages() if m.expected == VALID]
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-agg-test", NOW, send)
    raw = ((m.topic, m.key, m.value, None) for m in messages)

    async def scenario() -> list[str]:
        async with worker.ingest.test_context() as ingest:
            await put_all(ingest, lane_batches(worker.lanes, raw))
        clean = [(r.topic, r.key, r.value, r.headers) for r in send.starting("hito.clean.")]
        # Every clean event twice (a redelivery: same raw origin), then one older than the
        # backfill horizon and one
        # unreadable.
        late = CleanEvent.model_validate_json(clean[0][2] or b"").model_copy(
            update={"event_time": NOW - timedelta(days=8)}  # beyond the backfill horizon
        )
        extra = [
            (
                clean[0][0],
                b"chacalluta",
                late.model_dump_json(by_alias=True).encode(),
                [raw_origin_header("hito.raw.checkpoint", 0, 10**6)],
            ),
            (clean[0][0], b"chacalluta", b'{"not": "clean"}', None),
        ]
        async with worker.aggregate.test_context() as aggregate:
            # One clean partition's records in one lane (the test keeps their order).
            records = [(clean[0][0], k, v, h) for _, k, v, h in [*clean, *clean, *extra]]
            return await put_all(aggregate, lane_batches(worker.lanes, records, size=97))

    outcomes = asyncio.run(scenario())
    n = len(messages)
    assert outcomes == ["counted"] * n + ["duplicate"] * n + [
        "late_beyond_window",
        "schema_violation",
    ]

    # The windows hold exactly the fleet's crossings, once each.
    counted: Counter[tuple[str, str]] = Counter()
    for key, state in worker.windows.data.items():
        assert partition_of(key) == 0
        for cell, count in state["crossings"].items():
            counted[(state["site"], cell.split("|", 1)[0])] += count
    checkpoint = [
        CleanEvent.model_validate_json(r.value or b"") for r in send.to("hito.clean.checkpoint")
    ]
    assert counted == Counter((c.site, str(c.payload["direction"])) for c in checkpoint)
    assert sum(counted.values()) == len(checkpoint) > 0

    dlq = [decode_record(r.value) for r in send.to("hito.dlq") if r.value]
    assert [(r.reason, r.stage) for r in dlq] == [
        (Reason.LATE_BEYOND_WINDOW, "aggregate"),
        (Reason.SCHEMA_VIOLATION, "aggregate"),
    ]
    first_clean = send.starting("hito.clean.")[0].value or b""
    assert dlq[0].device_id == CleanEvent.model_validate_json(first_clean).device_id
    assert dlq[1].device_id is None
    # One changelog record per window changed in a batch, holding counts and marks together.
    changelog = send.to("hito-agg-test-agg-windows-changelog")
    assert changelog and all(r.partition == 0 for r in changelog)


def test_a_batch_whose_writes_fail_is_read_again_exactly(runtime: Runtime) -> None:
    """A batch's writes do not all reach Kafka (cancelled here, before they even started): it
    is read again (Lanes), finds each of its events counted already, and its windows'
    changelog records go out again with it (they would otherwise be missing from the
    changelog for good once the commit passes the batch); the re-read does not fail with the
    writes that failed before it."""
    plan = FleetPlan(count=200, daily_rhythm=False)
    messages = [m for m in Fleet(runtime.registry, plan, NOW).messages() if m.expected == VALID]
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-agg-fail-test", NOW, send)
    raw = ((m.topic, m.key, m.value, None) for m in messages)
    changelog = worker.windows.changelog_topic.get_topic_name()

    async def scenario() -> tuple[list[str], list[str], list[bytes | None], list[bytes | None]]:
        async with worker.ingest.test_context() as ingest:
            await put_all(ingest, lane_batches(worker.lanes, raw))
        clean = send.starting("hito.clean.")
        records = [(clean[0].topic, r.key, r.value, r.headers) for r in clean]
        (batch,) = lane_batches(worker.lanes, records, size=len(records))
        aggregator = worker.aggregate_handler
        first = await aggregator.handle_batch(batch.records)
        tail = aggregator.settled()
        assert tail is not None
        tail.cancel()  # its writes did not complete
        with contextlib.suppress(asyncio.CancelledError):
            await tail  # (its callbacks run, as they do long before a re-read's back-off)
        before = [r.key for r in send.to(changelog)]
        again = await aggregator.handle_batch(batch.records)  # the re-read
        settled = aggregator.settled()
        assert settled is not None
        await settled
        return first, again, before, [r.key for r in send.to(changelog)][len(before) :]

    first, again, written, rewritten = asyncio.run(scenario())
    assert first == ["counted"] * len(first) and len(first) > 100
    assert again == ["duplicate"] * len(first)
    assert written and sorted(k or b"" for k in rewritten) == sorted(k or b"" for k in written)


class FlushCancelledOnce(RecordingSend):
    """A send whose first flush once ``armed`` meets a future the client cancelled (not a
    stop)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    async def flush(self) -> None:
        if self.armed:
            self.armed = False
            raise asyncio.CancelledError


def test_writes_cancelled_by_the_client_fail_the_batch_they_do_not_stop_it(
    runtime: Runtime,
) -> None:
    """A batch's writes meet a CancelledError that is no stop of theirs: their task ends with
    a failure (the lanes back the batch off and count it) and marks the batch's keys to be
    written again. It used to end *cancelled*, which the lanes take for a stop: read again
    at once, never counted."""
    plan = FleetPlan(count=50, daily_rhythm=False)
    messages = [m for m in Fleet(runtime.registry, plan, NOW).messages() if m.expected == VALID]
    send = FlushCancelledOnce()
    worker = worker_for_tests(runtime, "hito-agg-cancel-test", NOW, send)
    raw = ((m.topic, m.key, m.value, None) for m in messages)

    async def scenario() -> tuple[bool, BaseException | None, int]:
        async with worker.ingest.test_context() as ingest:
            await put_all(ingest, lane_batches(worker.lanes, raw))
        clean = send.starting("hito.clean.")
        records = [(clean[0].topic, r.key, r.value, r.headers) for r in clean]
        (batch,) = lane_batches(worker.lanes, records, size=len(records))
        aggregator = worker.aggregate_handler
        send.armed = True  # the aggregator's first flush is cancelled
        await aggregator.handle_batch(batch.records)
        tail = aggregator.settled()
        assert tail is not None
        await asyncio.wait({tail})
        error = None if tail.cancelled() else tail.exception()
        return tail.cancelled(), error, len(aggregator.windows._dirty)

    cancelled, error, to_rewrite = asyncio.run(scenario())
    assert not cancelled
    assert isinstance(error, Cancelled)
    assert to_rewrite > 0


def test_unwritten_changes_of_partitions_gone_elsewhere_are_dropped_at_a_rebalance(
    runtime: Runtime,
) -> None:
    """A window changed here but not in the changelog yet (its batch's writes failed) whose
    partition went to another worker is not written from here: the new owner restores the
    changelog without it and reads that batch again; a late write from here could land after
    its own."""
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-forget-test", NOW, send)
    windows = worker.aggregate_handler.windows
    for partition in (0, 1):
        windows.put(partition, "chacalluta|2026-11-29T18:59:00Z", {"version": 1})
    clean = runtime.settings.pipeline.topics.clean_by_source["checkpoint"]

    async def scenario() -> None:
        await worker.app.on_partitions_assigned.send({TP(clean, 1)})  # 0 went elsewhere
        await windows.write_changelog(Deliveries(send))

    asyncio.run(scenario())
    changelog = worker.windows.changelog_topic.get_topic_name()
    assert [r.key for r in send.to(changelog)] == [b'"1|chacalluta|2026-11-29T18:59:00Z"']


def test_a_clean_event_no_count_can_take_is_dead_lettered_not_summed(runtime: Runtime) -> None:
    """Two readings of DBL_MAX in one minute and cell (written by an older ingest, or by
    anything but ingest) summed to inf: the window's changelog record held null for the sum,
    and after a restart the next reading there failed every batch of its partition. Now
    they are schema violations of the aggregate stage, and the window holds the rest."""
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-agg-unfit-test", NOW, send)

    records = [_reading(runtime, 0, 1.7976931348623157e308),
               _reading(runtime, 1, 1.7976931348623157e308), _reading(runtime, 2, 2.5)]  # fmt: skip

    async def scenario() -> list[str]:
        async with worker.aggregate.test_context() as aggregate:
            return await put_all(aggregate, lane_batches(worker.lanes, records))

    outcomes = asyncio.run(scenario())
    assert outcomes == ["schema_violation", "schema_violation", "counted"]
    dlq = [decode_record(r.value) for r in send.to("hito.dlq") if r.value]
    assert [(r.reason, r.stage, r.detail) for r in dlq] == [
        (Reason.SCHEMA_VIOLATION, "aggregate", "payload field value is not a bounded number")
    ] * 2
    (state,) = worker.windows.data.values()
    assert state["sensor"] == {
        "ground|6ur2x": {"detections": 1, "readings": 1, "value_sum": 2.5, "values": 1}
    }
    changelog = send.to(worker.windows.changelog_topic.get_topic_name())
    assert changelog and all(orjson.loads(r.value or b"null") is not None for r in changelog)


def test_clean_records_whose_time_epoch_or_origin_cannot_be_used_are_dead_lettered(
    runtime: Runtime,
) -> None:
    """Shapes a clean event passes its schema with, written by anything but ingest, that
    raised in the aggregator and failed every batch of their partition for good: a time at
    the calendar's ends (no window start: OverflowError), a pseudonym of an epoch far away
    (its day has no start: ValueError), a raw-origin header without a value (AttributeError).
    Each is a schema violation of the aggregate stage; the batch's other event is counted."""
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-agg-shapes-test", NOW, send)
    purpose = worker.aggregate_handler.repeat_rules.purpose
    minute_ago = (NOW - timedelta(seconds=30)).isoformat()
    today = int(NOW.timestamp()) // 86400

    def record(
        offset: int, event_time: str = minute_ago, person: str | None = None, header: bool = True
    ) -> tuple[str, bytes, bytes, list[tuple[str, bytes]]]:
        event = {
            "schema": "checkpoint.crossing/1",
            "source": "checkpoint",
            "policy": runtime.policy.version,
            "device_id": "cl-chacalluta-ckpt-01",
            "site": "chacalluta",
            "seq": offset,
            "event_time": event_time,
            "payload": {"direction": "entry", "mode": "car", "outcome": "admitted",
                        "nationality": "other", "processing_seconds": 40},
            "pseudonyms": {purpose: {"document_number": person}} if person else {},
        }  # fmt: skip
        _, value = raw_origin_header("hito.raw.checkpoint", 0, offset)
        header_value: Any = value if header else None  # aiokafka gives None for no value
        return (
            "hito.clean.checkpoint",
            b"chacalluta",
            orjson.dumps(event),
            [("hito-raw", header_value)],
        )

    records = [
        record(0, event_time="0001-01-01T00:30:00+01:00"),
        record(1, event_time="9999-12-31T23:59:00-01:00"),
        record(2, person="e999999999:" + "0" * 32),
        record(3, header=False),
        record(4, person=f"e{today + 5}:" + "2" * 32),  # a day to come: never closes
        record(5, person=f"e{today + 1}:" + "3" * 32),  # tomorrow's (a clock ahead): counted
        record(6, person=f"e{today}:" + "1" * 32),
    ]

    async def scenario() -> list[str]:
        async with worker.aggregate.test_context() as aggregate:
            return await put_all(aggregate, lane_batches(worker.lanes, records))

    outcomes = asyncio.run(scenario())
    assert outcomes == ["schema_violation"] * 5 + ["counted"] * 2
    dlq = [decode_record(r.value) for r in send.to("hito.dlq") if r.value]
    assert [(r.stage, r.source_offset, r.detail) for r in dlq] == [
        ("aggregate", 0, "event_time is outside the years 2000-2199"),
        ("aggregate", 1, "event_time is outside the years 2000-2199"),
        ("aggregate", 2, f"pseudonyms.{purpose}.document_number: an epoch not begun"),
        ("aggregate", 3, "no raw origin header"),
        ("aggregate", 4, f"pseudonyms.{purpose}.document_number: an epoch not begun"),
    ]
    (state,) = worker.windows.data.values()
    assert state["crossings"] == {"entry|car|admitted": 2}


def test_a_refused_clean_batch_is_one_oversized_dead_letter_naming_its_offsets(
    runtime: Runtime,
) -> None:
    """A clean topic's batch the fetch refused unread (only a misused worker credential can
    write one): the same dead letter as ingest's, not a schema violation without offsets."""
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-agg-refused-test", NOW, send)

    (batch,) = lane_batches(worker.lanes, [_reading(runtime, 0), _reading(runtime, 1)])
    refused = RefusedBatch(
        "hito.clean.sensor", 0, 9, 0, 0, None, None, None, -1, -1, (), first_offset=2, why=TOO_LARGE
    )

    async def scenario() -> list[str]:
        async with worker.aggregate.test_context() as aggregate:
            records = [*batch.records, refused]
            return await put_all(aggregate, [LaneBatch(batch.tp, records, batch.generation)])

    assert asyncio.run(scenario()) == ["counted", "counted", "oversized"]
    (dead,) = [decode_record(r.value) for r in send.to("hito.dlq") if r.value]
    assert (dead.reason, dead.stage, dead.device_id) == (Reason.OVERSIZED, "fetch", None)
    assert dead.detail == f"records 2..9: {TOO_LARGE}"
    assert (dead.source_topic, dead.source_offset, dead.original_bytes) == (
        "hito.clean.sensor",
        9,
        0,
    )


def _reading(
    runtime: Runtime, offset: int, value: float | None = None
) -> tuple[str, bytes, bytes, list[tuple[str, bytes]]]:
    """A clean sensor reading of concordia half a minute before NOW, as ingest writes one
    (``value`` left out when None), from raw offset ``offset``."""
    payload: dict[str, Any] = {"sensor_type": "ground", "geohash": "6ur2x", "detections": 1}
    if value is not None:
        payload["value"] = value
    event = {
        "schema": "sensor.reading/1",
        "source": "sensor",
        "policy": runtime.policy.version,
        "device_id": "sensor-concordia-01",
        "site": "concordia",
        "seq": offset,
        "event_time": (NOW - timedelta(seconds=30)).isoformat(),
        "payload": payload,
    }
    origin = raw_origin_header("hito.raw.sensor", 0, offset)
    return "hito.clean.sensor", b"concordia", orjson.dumps(event), [origin]
