"""Backfill in Faust's test context: a terminal's two-hour backlog revises windows the worker
has already archived and forgotten, exactly (each event once, replays recognised across the
archive), with the revisions marked; the public points lose only what suppression now hides.

The archive is InfluxDB in production; here the publisher's own archive writes are captured
and served back to the aggregator's reads, so the test runs the real publish -> archive ->
evict -> read back -> count path (tests/integration/pipeline/test_backfill.py runs it on the
real stack).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hito.device.sdk import build_event, encode
from hito.ops.dlq import decode_record
from hito.pipeline.sinks.errors import PermanentSinkError, RetryableSinkError
from hito.pipeline.stages.aggregate import window_name
from hito.pipeline.stages.windows import format_start, window_start
from hito.runtime import Runtime
from hito.schemas.clean import CleanEvent
from hito.schemas.reasons import Reason
from tests.agents.conftest import RecordingSend, lane_batches, put_all, worker_for_tests

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
OUTAGE_START = NOW - timedelta(hours=2)
DEVICE = "cl-chacalluta-ckpt-02"
MODES = ("pedestrian", "car", "bus")


def crossing(i: int) -> dict[str, Any]:
    return {
        "direction": "entry" if i % 3 else "exit",
        "mode": MODES[i % len(MODES)],
        "lane": "L1",
        "document_type": "passport",
        "document_number": f"P{i:08d}",
        "nationality": ("CHL", "PER", "BOL", "ARG")[i % 4],
        "birth_year": 1960 + i % 40,
        "outcome": "admitted",
        "processing_seconds": 20.0 + i % 30,
    }


def raw_events(runtime: Runtime, times: list[datetime], first_seq: int) -> list[Any]:
    device = runtime.registry.get(DEVICE)
    assert device is not None
    topic = runtime.settings.pipeline.raw_topics["checkpoint"]
    return [
        (
            topic,
            DEVICE.encode(),
            encode(
                build_event(
                    schema="checkpoint.crossing/1",
                    device_id=DEVICE,
                    site=device.site,
                    seq=first_seq + i,
                    event_time=at,
                    payload=crossing(first_seq + i),
                    key=device.key,
                )
            ),
            None,
        )
        for i, at in enumerate(times)
    ]


class CapturedInflux:
    """The publisher's writes: public lines, and the archive (name -> JSON) it reads back."""

    def __init__(self) -> None:
        self.public: list[str] = []
        self.archive: dict[str, str] = {}
        self.deleted: list[tuple[datetime, list[str]]] = []
        self.reads = 0

    async def write(self, lines: list[str], *, archive: bool = False) -> None:
        if not archive:
            self.public.extend(lines)
            return
        for ln in lines:
            found = re.fullmatch(r'window_state,site=(\S+) state="(.*)" (\d+)', ln)
            assert found, ln
            site, text, ts = found.groups()
            start = datetime.fromtimestamp(int(ts), tz=UTC)
            self.archive[window_name(site, start)] = re.sub(r'\\(["\\])', r"\1", text)

    async def delete(self, start: datetime, predicates: list[str]) -> None:
        self.deleted.append((start, predicates))

    async def query(self, sites: list[str], first: datetime, last: datetime) -> dict[str, str]:
        self.reads += 1
        return {
            name: text
            for name, text in self.archive.items()
            if name.split("|")[0] in sites
            and format_start(first) <= name.split("|")[1] <= format_start(last)
        }


async def _no_history(*_: Any) -> list[Any]:
    return []


def _wire(worker: Any, influx: CapturedInflux) -> None:
    worker.sink.write = influx.write
    worker.sink.delete = influx.delete
    worker.publisher.archive.query = influx.query
    worker.publisher.detector.history = _no_history
    worker.publisher.windows.eviction_due = lambda: True


def test_a_two_hour_backlog_revises_archived_windows_exactly(runtime: Runtime) -> None:
    clock = [OUTAGE_START + timedelta(seconds=30)]
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-backfill-test", lambda: clock[0], send)
    influx = CapturedInflux()
    _wire(worker, influx)
    # Before the outage's first minutes closed, 12 crossings of them arrived live.
    live_times = [OUTAGE_START + timedelta(seconds=5 * i) for i in range(12)]
    # The backlog: one crossing every 20 s for two hours, uploaded at NOW.
    backlog_times = [OUTAGE_START + timedelta(seconds=20 * i) for i in range(360)]

    delivered: list[Any] = []  # clean records, as the aggregator read them

    async def aggregate(records: list[Any], raw_offset: int, replay: list[Any]) -> list[str]:
        async with worker.ingest.test_context() as ingest:
            await put_all(ingest, lane_batches(worker.lanes, records, first_offset=raw_offset))
        clean = [(r.topic, r.key, r.value, r.headers) for r in send.starting("hito.clean.")]
        send.sent.clear()
        delivered.extend(clean)
        async with worker.aggregate.test_context() as agent:
            return await put_all(agent, lane_batches(worker.lanes, replay + clean, size=100))

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        live = await aggregate(raw_events(runtime, live_times, 0), 0, [])
        # Time passes: the minutes close, are published, archived and forgotten.
        for minutes in (1, 8, 15):
            clock[0] = OUTAGE_START + timedelta(minutes=minutes)
            await worker.publisher.flush({0})
            # Eviction runs with a partition's batches: an unreadable record makes one.
            junk = [("hito.clean.checkpoint", b"chacalluta", b"{}", None)]
            async with worker.aggregate.test_context() as agent:
                await put_all(agent, lane_batches(worker.lanes, junk))
        assert dict(worker.publisher.windows.writer.items()) == {}
        assert len(influx.archive) == 1
        # The terminal is back at NOW: its outbox drains the two hours, in seq order (raw
        # offsets 12 on), after a redelivery of the live twelve (the same clean records).
        clock[0] = NOW
        influx.public.clear()
        influx.deleted.clear()
        backlog = await aggregate(raw_events(runtime, backlog_times, 12), 12, list(delivered))
        for _ in range(3):
            await worker.publisher.flush({0})
        return live, backlog, influx.public

    live, backlog, public = asyncio.run(scenario())
    assert live == ["counted"] * 12
    # Its last minutes are live still (closed at most the allowed lateness ago).
    live_again = [t for t in backlog_times if NOW - window_start(t, 60) <= timedelta(seconds=360)]
    assert len(live_again) == 18
    assert backlog == ["duplicate"] * 12 + ["backfilled"] * 342 + ["counted"] * 18
    assert influx.reads >= 1

    # Every window of the two hours holds exactly its crossings: the 12 live ones once.
    expected = Counter(format_start(window_start(t, 60)) for t in backlog_times + live_times)
    states = {state["start"]: state for _, state in worker.publisher.windows.writer.items()}
    got = {start: sum(s["crossings"].values()) for start, s in states.items()}
    assert got == dict(expected)
    assert sum(got.values()) == 372
    first = format_start(window_start(OUTAGE_START, 60))
    assert states[first]["revisions"] == {"checkpoint": 3}
    assert states[first]["revised_at"] == int(NOW.timestamp())
    assert (
        worker.metrics.backfill_events.labels(site="chacalluta", source="checkpoint")._value.get()
        == 342
    )
    # The revised minutes are published again with a revisions point each; nothing else of
    # the first minute was deleted than series suppression hides now (none: no surge there).
    revisions = [ln for ln in public if ln.startswith("revisions,")]
    assert len(revisions) == 114  # the minutes closed beyond the lateness
    assert all(
        predicates != ['site="chacalluta"']
        for start, predicates in influx.deleted
        if format_start(start) == first
    )
    # The archive now has every revised window at its final version.
    assert len(influx.archive) == 114  # the live ones follow once closed


def test_a_replayed_backlog_is_counted_once(runtime: Runtime) -> None:
    """The same backlog twice (a device that re-sent after a lost acknowledgement reaches the
    raw topic twice: dedup drops the second at ingest), and its clean events delivered again
    (a redelivery after a crash): the windows do not change."""
    clock = [NOW]
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-backfill-replay", lambda: clock[0], send)
    influx = CapturedInflux()
    _wire(worker, influx)
    times = [OUTAGE_START + timedelta(seconds=30 * i) for i in range(40)]

    async def scenario() -> tuple[list[str], list[str]]:
        records = raw_events(runtime, times, 0)
        async with worker.ingest.test_context() as ingest:
            await put_all(ingest, lane_batches(worker.lanes, records + records))
        clean = [(r.topic, r.key, r.value, r.headers) for r in send.starting("hito.clean.")]
        async with worker.aggregate.test_context() as agent:
            first = await put_all(agent, lane_batches(worker.lanes, clean))
            again = await put_all(agent, lane_batches(worker.lanes, clean))
        return first, again

    first, again = asyncio.run(scenario())
    assert first == ["backfilled"] * 40
    assert again == ["duplicate"] * 40
    states = [s for _, s in worker.publisher.windows.writer.items()]
    assert sum(sum(s["crossings"].values()) for s in states) == 40


@pytest.mark.parametrize("refusal", ["retryable", "permanent"])
def test_an_unreadable_archive_never_counts_onto_an_empty_window(
    runtime: Runtime, refusal: str
) -> None:
    """InfluxDB down: the revision waits and is counted once the archive answers. InfluxDB
    refusing for good (400: a status the sink classifies as permanent; a missing bucket, 404,
    is retryable): the events go to the DLQ as sink_rejected instead of overwriting an
    archived minute with less."""
    send = RecordingSend()
    worker = worker_for_tests(runtime, f"hito-backfill-{refusal}", NOW, send)
    worker.publisher.sink.wait_ready = _no_wait  # type: ignore[method-assign]
    answers: list[Exception | dict[str, str]] = (
        [RetryableSinkError("connection refused"), {}]
        if refusal == "retryable"
        else [PermanentSinkError(400, "the query could not be parsed")]
    )

    async def query(*_: Any) -> dict[str, str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    worker.publisher.archive.query = query
    times = [OUTAGE_START + timedelta(seconds=30 * i) for i in range(4)]

    async def scenario() -> list[str]:
        async with worker.ingest.test_context() as ingest:
            await put_all(ingest, lane_batches(worker.lanes, raw_events(runtime, times, 0)))
        clean = [(r.topic, r.key, r.value, r.headers) for r in send.starting("hito.clean.")]
        send.sent.clear()
        async with worker.aggregate.test_context() as agent:
            return await put_all(agent, lane_batches(worker.lanes, clean))

    outcomes = asyncio.run(scenario())
    assert answers == []
    if refusal == "retryable":
        assert outcomes == ["backfilled"] * 4
        return
    assert outcomes == ["sink_rejected"] * 4
    dlq = [decode_record(r.value) for r in send.to("hito.dlq") if r.value]
    assert [(r.reason, r.stage) for r in dlq] == [(Reason.SINK_REJECTED, "aggregate")] * 4
    assert dlq[0].detail == "window archive refused the read: HTTP 400"
    assert dict(worker.publisher.windows.writer.items()) == {}
    originals = send.to("hito.dlq.originals")
    assert len(originals) == 4
    assert CleanEvent.model_validate_json(_original_event(originals[0].value)).seq == 0


async def _no_wait() -> None:
    return None


def _original_event(value: bytes | None) -> bytes:
    from hito.schemas.dlq import DlqOriginal

    return DlqOriginal.model_validate_json(value or b"").original
