"""settle_heap: the objects alive at the call frozen, young collections rarer, the collector
still on. Run in a child interpreter: freezing changes the whole process's collector."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from hito.pipeline.heap import settle_heap

CHILD = textwrap.dedent(
    """
    import gc, json, weakref
    from hito.pipeline.heap import settle_heap

    before = gc.get_threshold()

    class Node:
        pass

    kept = [Node() for _ in range(1000)]  # alive at the call: frozen
    heap = settle_heap(5000)
    frozen_after = gc.get_freeze_count()

    # A cycle made later is still collected, without an explicit gc.collect() (which works
    # even with the collector off): the young threshold's allocations trigger a collection.
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    alive = [[] for _ in range(3 * 5000)]
    print(json.dumps({
        "before": before,
        "thresholds": heap.thresholds,
        "reported": heap.frozen,
        "frozen": frozen_after,
        "enabled": gc.isenabled(),
        "cycle_collected": gone() is None,
        "kept_tracked_not_walked": gc.is_tracked(kept[0]) and kept[0] not in gc.get_objects(),
    }))
    """
)


def test_settle_heap_freezes_what_exists_and_keeps_collecting() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(out.stdout)
    # Only the young threshold changes.
    assert seen["thresholds"] == [5000, seen["before"][1], seen["before"][2]]
    assert seen["reported"] == seen["frozen"]
    # The interpreter, the modules and the thousand nodes: far more than a thousand.
    assert seen["frozen"] > 1000
    assert seen["kept_tracked_not_walked"] is True
    assert seen["enabled"] is True
    assert seen["cycle_collected"] is True


def test_a_threshold_that_would_stop_the_collector_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        settle_heap(0)
