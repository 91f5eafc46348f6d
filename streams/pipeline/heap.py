"""The worker's heap and CPython's cycle collector: what exists at start frozen, young
collections rarer.

Why (measured with ``hito bench --only hito --workers 1``, 60,000 events, 2026-12-05): the
cycle collector took about a tenth of a worker's CPU. Each full (oldest-generation) collection
walked every container alive since start — the modules imported and the objects built by
then (Faust's, aiokafka's, pydantic's and Hito's modules, the app, its tables, the registry),
about 124,000 — and took 0.07 s; eight of them in a 5 s run cost 0.56 s. The young
collections (every 700 net container allocations, CPython's default) cost another 0.19 s,
although nearly everything a batch allocates is freed by reference counting, not by the
collector: a lane batch of 500 events builds tens of thousands of short-lived containers,
and the survivors the collections find are the batch's own, alive until it ends.

- ``gc.freeze()`` once the worker is built moves those objects to a generation no collection
  walks. They are the worker's for its life; any of them that becomes garbage is still freed
  by reference counting, only a cycle among them would never be (none is made on purpose;
  at worst the start-up objects' size stays, once). What Faust's worker creates later (the
  event loop, the Kafka clients, lazily imported modules) is not frozen. Frozen objects are
  also hidden from ``gc.get_objects()`` and ``gc.get_referrers()`` (memory debugging).
- The young threshold goes from 700 to ``YOUNG_THRESHOLD``: a collection then finds the same
  survivors (a batch's working set), far less often. A garbage cycle waits longer: up to that
  many allocations in the young generation, until an older generation's collection once it
  survived one.

Together: in a perf profile of the worker while it handled events, the collector's share fell
from 7.9 % of the samples to 0.3 % (the collector's own CPU in the run, from a probe: 0.75 s
to 0.01 s), about 6 µs of the worker's ~80 µs per event (bench/README.md, "Results, 2026-12-05
evening"). The collector stays on: cycles made later are still collected.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

YOUNG_THRESHOLD = 20_000  # CPython's default: 700


@dataclass(frozen=True)
class SettledHeap:
    frozen: int  # objects moved out of the collector's reach
    thresholds: tuple[int, int, int]  # gc.get_threshold() after


def settle_heap(young_threshold: int = YOUNG_THRESHOLD) -> SettledHeap:
    """Collect once, freeze what is left, and make young collections rarer (keeping the older
    generations' thresholds). For a process that has built what it keeps for its life."""
    if young_threshold < 1:
        raise ValueError("young_threshold must be at least 1 (0 would turn the collector off)")
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, oldest)
    return SettledHeap(gc.get_freeze_count(), gc.get_threshold())
