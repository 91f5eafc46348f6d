"""The recovery watch: which changelog partitions of a recovery are read again, and when."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP

from hito.pipeline.faust.recovery_watch import RecoveryWatch, watch_recovery

A = TP("app-dedup-seq-changelog", 0)
B = TP("app-dedup-seq-changelog", 1)
C = TP("app-agg-windows-changelog", 0)


def test_a_partition_stuck_behind_its_highwater_is_read_again_from_where_recovery_is() -> None:
    watch = RecoveryWatch(stall_s=20)
    highwaters = {A: 471, B: 285, C: 356}
    offsets: dict[TP, int | None] = {A: -1, B: 120, C: 10}
    assert watch.stalled(highwaters, offsets, now=0.0) == {}
    offsets[C] = 200  # C moves on; A and B do not
    assert watch.stalled(highwaters, offsets, now=19.9) == {}
    offsets[C] = 300
    # Nothing applied yet (-1): from the start; B from its last applied offset, as Faust seeks.
    assert watch.stalled(highwaters, offsets, now=20.0) == {A: 0, B: 120}
    # Once per stall, not at every check.
    assert watch.stalled(highwaters, offsets, now=25.0) == {}
    offsets[C] = 356  # recovered
    assert watch.stalled(highwaters, offsets, now=40.0) == {A: 0, B: 120}


def test_recovered_empty_and_moving_partitions_are_never_read_again() -> None:
    watch = RecoveryWatch(stall_s=20)
    highwaters: dict[TP, int | None] = {A: 471, B: -1, C: None}
    for step in range(10):
        # A moves by one record every 10 s: slow, not stalled.
        assert watch.stalled(highwaters, {A: step, B: -1, C: None}, now=10.0 * step) == {}
    assert watch.stalled({A: 471}, {A: 471}, now=500.0) == {}  # recovered


def test_a_partition_that_moves_again_restarts_its_clock_and_reset_forgets() -> None:
    watch = RecoveryWatch(stall_s=20)
    assert watch.stalled({A: 100}, {A: None}, now=0.0) == {}
    assert watch.stalled({A: 100}, {A: 5}, now=15.0) == {}  # moved at 15 s
    assert watch.stalled({A: 100}, {A: 5}, now=30.0) == {}  # 15 s at 5
    assert watch.stalled({A: 100}, {A: 5}, now=35.0) == {A: 5}
    watch.reset()  # a recovery ended; the next one starts afresh
    assert watch.stalled({A: 100}, {A: 5}, now=50.0) == {}
    assert watch.stalled({A: 100}, {A: 5}, now=70.0) == {A: 5}


def test_a_failing_check_is_logged_and_the_watch_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """The watch is a task of Faust's consumer: an exception escaping it would crash the
    consumer and the worker. A check that fails (here: reading the recovery) is logged and the
    watch looks again at the next check."""
    looks = []

    class Tables:
        @property
        def recovery(self) -> object:
            looks.append(1)
            if len(looks) == 1:
                raise RuntimeError("recovery not there yet")
            return SimpleNamespace(in_recovery=False)

    class Consumer:
        should_stop = False
        app = SimpleNamespace(tables=Tables())

        async def sleep(self, seconds: float) -> None:
            if len(looks) >= 2:
                self.should_stop = True

    asyncio.run(watch_recovery(Consumer()))
    assert len(looks) == 2  # it looked again after the failure
    assert "recovery watch: RuntimeError('recovery not there yet')" in caplog.text
