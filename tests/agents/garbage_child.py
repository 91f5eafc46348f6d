"""The rounds of tests/agents/test_cyclic_garbage.py, in a process of their own: no other
test's threads (a device's sender, a producer) can make garbage while they are watched.

    python -m tests.agents.garbage_child     # prints {"handled": [...], "garbage": {...}}
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hito.device.simulate.fleet import Fleet, FleetPlan
from hito.pipeline.offline import RecordingSend, lane_batches, offline_runtime, put_all
from hito.pipeline.offline import offline_worker as worker_for_tests
from hito.runtime import Runtime, load_runtime
from hito.settings import HitoSettings

START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
ROUNDS = 4
EVENTS = 400  # a round's raw events (the simulator's mix: bad, duplicate, out of order)


def _described(garbage: list[Any]) -> Counter[str]:
    def name(o: Any) -> str:
        if hasattr(o, "__qualname__") and hasattr(o, "__module__"):
            return f"{type(o).__name__} {o.__module__}.{o.__qualname__}"
        return f"{type(o).__module__}.{type(o).__qualname__}"

    return Counter(name(o) for o in garbage)


def rounds(runtime: Runtime) -> tuple[list[tuple[int, int, int]], Counter[str]]:
    """Run the rounds; per round (raw events handled, clean events counted, lines written), and
    the cyclic garbage of all rounds but the first, by kind."""
    clock = [START]
    send = RecordingSend()
    worker = worker_for_tests(runtime, "hito-garbage-test", lambda: clock[0], send)
    written: list[str] = []

    async def write(lines: list[str], *, archive: bool = False) -> None:
        written.extend(lines)

    async def delete(start: datetime, predicates: list[str]) -> None:
        return None

    async def nothing(*_: Any) -> Any:
        return {}

    async def no_history(*_: Any) -> list[Any]:
        return []

    worker.sink.write = write  # type: ignore[method-assign]
    worker.sink.delete = delete  # type: ignore[method-assign]
    worker.sink.ready = lambda: True  # type: ignore[method-assign]
    worker.publisher.archive.query = nothing
    worker.publisher.detector.history = no_history
    # Eviction at each batch, not every 5 s of wall time: rounds 3 and 4 evict old windows.
    worker.publisher.windows.eviction_due = lambda: True  # type: ignore[method-assign]
    fleet = Fleet(
        runtime.registry,
        FleetPlan(
            count=EVENTS * (ROUNDS + 1),
            seed=7,
            bad_fraction=0.05,
            duplicate_fraction=0.04,
            out_of_order_fraction=0.02,
        ),
        START,
        clock=lambda: clock[0],
    )
    messages = fleet.messages()
    offsets: dict[str, int] = {}  # per topic: the next offset (topics are hole-free)
    handled: list[tuple[int, int, int]] = []  # per round: raw events, clean events, lines

    def batches(records: list[Any]) -> list[Any]:
        """Lane batches, each topic's offsets following on from the last round's."""
        out = []
        for topic, group in itertools.groupby(sorted(records, key=lambda r: r[0]), lambda r: r[0]):
            listed = list(group)  # (sorted() keeps each topic's order)
            first = offsets.get(topic, 0)
            offsets[topic] = first + len(listed)
            out += lane_batches(worker.lanes, listed, first_offset=first)
        return out

    async def one_round(n: int, ingest: Any, aggregate: Any) -> None:
        clock[0] = START + timedelta(minutes=4 * n, seconds=30)
        raw = [(m.topic, m.key, m.value, None) for m in itertools.islice(messages, EVENTS)]
        raw_outcomes = await put_all(ingest, batches(raw))
        clean = [(r.topic, r.key, r.value, r.headers) for r in send.starting("hito.clean.")]
        send.sent.clear()
        counted = await put_all(aggregate, batches(clean))
        send.sent.clear()
        await worker.publisher.flush({0})
        handled.append((len(raw_outcomes), counted.count("counted"), len(written)))
        written.clear()

    async def scenario() -> list[Any]:
        async with worker.ingest.test_context() as ingest, worker.aggregate.test_context() as agg:
            await one_round(0, ingest, agg)  # warm-up: first windows, caches, lazy imports
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                for n in range(1, ROUNDS + 1):
                    await one_round(n, ingest, agg)
                gc.collect()
                return list(gc.garbage)
            finally:
                gc.set_debug(0)
                gc.garbage.clear()

    garbage = asyncio.run(scenario())
    return handled, _described(garbage)


def main() -> None:
    runtime = offline_runtime(load_runtime(HitoSettings()))
    handled, garbage = rounds(runtime)
    sys.stdout.write(json.dumps({"handled": handled, "garbage": garbage}) + "\n")


if __name__ == "__main__":
    main()
