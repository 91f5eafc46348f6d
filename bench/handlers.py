"""What the worker's two handlers cost per event, without Kafka.

``hito bench`` measures whole workers against the broker; this measures the part of a worker's
CPU that is Hito's own per-event work: the ingest handler (validate, the key check, dedup,
anonymise, encode, DLQ records, counts) on raw lane batches, and the aggregate handler
(decode, windows, repeat days, counts) on the clean events ingest made, both as their agents
run them in Faust's test context (``hito.pipeline.offline``): no broker, no InfluxDB, the
records they produce kept in memory. The rest of a worker's CPU per event is the Kafka client,
Faust and the lanes (bench/README.md, "What a compiled inner loop would add").

    .venv/bin/python -m hito.bench.handlers [EVENTS [ROUNDS]]     # default 20000 5

Events are the bench's mix (``Mix``: 2 % bad, 2 % duplicates, 1 % out of order), all on
partition 0 of each raw topic, in lane batches of 500. Each round builds a fresh worker (empty
dedup state and windows); CPU is ``time.process_time`` around each handler's batches (the heap
from before each phase frozen: ``_quiet_heap``), and the figures are the medians of the
rounds. A round whose aggregate did not count every clean event exactly once stops the run: a
fast handler that drops events measures nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from faust.types import TP

from hito.bench.dataset import Mix
from hito.device.simulate.fleet import Fleet
from hito.pipeline.offline import (
    RecordingSend,
    Written,
    lane_batches,
    offline_runtime,
    offline_worker,
    put_all,
)
from hito.runtime import Runtime, load_runtime
from hito.settings import load_settings

BATCH = 500
MIX = Mix()  # the bench's own mix (hito.bench.dataset)


@dataclass(frozen=True)
class Round:
    raw: int  # raw events handled by ingest
    clean: int  # clean events ingest made (each counted once by aggregate)
    ingest_us: float  # CPU µs per raw event
    aggregate_us: float  # CPU µs per clean event


@dataclass(frozen=True)
class HandlerCosts:
    events: int
    clean: int
    rounds: list[Round]
    ingest_us_per_event: float  # medians
    aggregate_us_per_event: float
    per_raw_event_us: float  # both handlers' CPU over the raw events


def raw_records(runtime: Runtime, events: int, now: datetime, mix: Mix = MIX) -> list[Written]:
    plan = mix.plan(events, runtime.settings.pipeline.raw_topics, daily_rhythm=False)
    by_topic: dict[str, list[Written]] = {}
    for m in Fleet(runtime.registry, plan, now).messages():
        by_topic.setdefault(m.topic, []).append((m.topic, m.key, m.value, None))
    # A partition's records together, as a fetch brings them (the fleet interleaves topics).
    return [record for records in by_topic.values() for record in records]


@contextlib.asynccontextmanager
async def _quiet_heap() -> AsyncIterator[None]:
    """What exists before a phase (the events, the records of the phase before) is frozen: no
    worker holds it, and the collector walking it made rounds differ by half (20,000 events:
    41-71 µs an event for ingest without this, 45-54 with it)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def one_round(runtime: Runtime, raw: list[Written], now: datetime, name: str) -> Round:
    send = RecordingSend()
    worker = offline_worker(runtime, name, now, send)
    # Every partition read from offset 0, so each handled batch moves its watermark on.
    topics = runtime.settings.pipeline.topics
    worker.lanes.resume({TP(topic, 0): 0 for topic in topics.inputs})
    raw_batches = lane_batches(worker.lanes, raw, size=BATCH)
    async with worker.ingest.test_context() as ingest, _quiet_heap():
        started = time.process_time()
        await put_all(ingest, raw_batches)
        ingest_s = time.process_time() - started
    clean = sorted(
        ((r.topic, r.key, r.value, r.headers) for r in send.starting("hito.clean.")),
        key=lambda record: record[0],  # stable: each topic's records keep their order
    )
    clean_batches = lane_batches(worker.lanes, clean, size=BATCH)
    async with worker.aggregate.test_context() as aggregate, _quiet_heap():
        started = time.process_time()
        outcomes = await put_all(aggregate, clean_batches)
        aggregate_s = time.process_time() - started
    counted = Counter(outcomes)
    if counted != Counter({"counted": len(clean)}):
        raise RuntimeError(f"aggregate did not count each clean event once: {dict(counted)}")
    return Round(
        raw=len(raw),
        clean=len(clean),
        ingest_us=ingest_s / len(raw) * 1e6,
        aggregate_us=aggregate_s / max(len(clean), 1) * 1e6,
    )


def measure(runtime: Runtime, events: int, rounds: int) -> HandlerCosts:
    now = datetime.now(UTC)
    raw = raw_records(runtime, events, now)
    done = [asyncio.run(one_round(runtime, raw, now, f"hito-handlers-{i}")) for i in range(rounds)]
    ingest = statistics.median(r.ingest_us for r in done)
    aggregate = statistics.median(r.aggregate_us for r in done)
    clean = done[0].clean
    return HandlerCosts(
        events=len(raw),
        clean=clean,
        rounds=done,
        ingest_us_per_event=round(ingest, 2),
        aggregate_us_per_event=round(aggregate, 2),
        per_raw_event_us=round(ingest + aggregate * clean / len(raw), 2),
    )


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    costs = measure(offline_runtime(load_runtime(load_settings())), events, rounds)
    sys.stdout.write(json.dumps(asdict(costs), indent=2) + "\n")


if __name__ == "__main__":
    main()
