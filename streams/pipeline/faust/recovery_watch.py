"""A watch on Faust's table recovery: a changelog partition whose recovery stops moving is
read again.

After every rebalance Faust (0.15.3) reads each assigned table's changelog partitions up to
their highwater before the worker takes any input, and it waits for that without limit: if a
changelog's records are fetched (the consumer's position past them) but never reach the
recovery, it logs "No event received for active tp ..." every 5 s and the worker never takes
its partitions, so their sites stop. Seen in 2 of 60 runs of the handover soak of 2026-12-04
(`bench/handover_soak.sh`, one core kept busy, both in `test_two_workers_one_stopped...`): the
worker taking over read one changelog partition (agg-windows 0) and nothing of five others.
The warning below records what the consumer thought of each stalled partition: the second
time, aiokafka's position was at the end and not one record had been delivered since the
seek (docs/aggregation.md, "A table recovery that never ends"). That cause was found since and
is fixed where it happens (a fetch returning while flow is stopped:
``GaplessConsumer._keep_changelog_positions``); this watch stays as a net for a stall whose
cause is not known.

The remedy does not depend on the cause: a partition behind its highwater whose recovery
offset has not moved for ``STALL_S`` is resumed and sought back to the last offset recovery
applied, as Faust's own recovery seeks (it ignores records at or below that offset, so reading
them again changes nothing). Checked again after another ``STALL_S``, never given up: a
worker that waits is still better than one that starts without its state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from time import monotonic
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)

CHECK_S = 5.0  # how often the watch looks (Faust's own "No event received" period)
STALL_S = 20.0  # no recovery progress for this long: read the partition again


class RecoveryWatch:
    """Which changelog partitions of a recovery have stalled (pure: the caller reads Faust's
    recovery and acts)."""

    def __init__(self, stall_s: float = STALL_S) -> None:
        self.stall_s = stall_s
        self._since: dict[TP, tuple[int | None, float]] = {}  # tp -> (offset, when first seen)

    def reset(self) -> None:
        """No recovery in progress: forget every partition."""
        self._since.clear()

    def stalled(
        self,
        highwaters: Mapping[TP, int | None],
        offsets: Mapping[TP, int | None],
        now: float,
    ) -> dict[TP, int]:
        """The partitions to read again, each with the offset to seek to: behind their
        highwater (the last offset in the changelog when recovery began) at the same recovery
        offset for ``stall_s`` (-1 or None: nothing applied yet, read from 0)."""
        behind: dict[TP, int | None] = {}
        for tp, highwater in highwaters.items():
            offset = offsets.get(tp)
            if highwater is None or highwater < 0:
                continue  # an empty changelog: nothing to read
            if offset is not None and offset >= highwater:
                continue  # recovered
            behind[tp] = offset
        for tp in [tp for tp in self._since if tp not in behind]:
            del self._since[tp]
        again: dict[TP, int] = {}
        for tp, offset in behind.items():
            seen = self._since.get(tp)
            if seen is None or seen[0] != offset:
                self._since[tp] = (offset, now)  # moved (or new): the clock starts again
            elif now - seen[1] >= self.stall_s:
                again[tp] = offset if offset is not None and offset > 0 else 0
                self._since[tp] = (offset, now)  # once per stall_s, not at every check
        return again


async def watch_recovery(consumer: Any) -> None:
    """The consumer's task (Faust's consumer, hito.pipeline.faust.consumer): every ``CHECK_S``
    while a recovery runs, read its stalled partitions again."""
    watch = RecoveryWatch()
    while not consumer.should_stop:
        await consumer.sleep(CHECK_S)
        if consumer.should_stop:
            return
        try:
            recovery = consumer.app.tables.recovery
            if not recovery.in_recovery:
                watch.reset()
                continue
            highwaters, offsets = recovery.active_highwaters, recovery.active_offsets
            again = watch.stalled(highwaters, offsets, monotonic())
            if again:
                await read_again(consumer, again, highwaters)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. a partition revoked while it was sought
            # A failing watch must not take the worker down (a crashed task of Faust's consumer
            # would): it looks again at the next check.
            log.warning("recovery watch: %r; trying again in %.0f s", exc, CHECK_S)


async def read_again(
    consumer: Any, again: Mapping[TP, int], highwaters: Mapping[TP, int | None]
) -> None:
    """Resume the partitions (also from a buffer-full pause) and seek them back."""
    active = consumer._get_active_partitions()
    for tp, offset in again.items():
        try:
            position: object = await consumer.position(tp)
        except Exception as exc:  # the answer is for the log only
            position = f"unknown ({type(exc).__name__})"
        state = (
            "fetched"
            if tp in active
            else "paused, buffer full"
            if tp in consumer._buffered_partitions
            else "paused"
        )
        log.warning(
            "recovery of %s has not moved for %.0f s (highwater %s; consumer position %s, %s, "
            "read offset %s): reading it again from %d",
            tp,
            STALL_S,
            highwaters.get(tp),
            position,
            state,
            consumer._read_offset.get(tp),
            offset,
        )
        notify = type(consumer).on_rewind
        if notify is not None:
            notify(tp.topic)
    tps = set(again)
    consumer._buffered_partitions.difference_update(tps)
    consumer.resume_partitions(tps)
    for tp in tps:
        consumer._read_offset.pop(tp, None)
    await consumer.seek_wait(dict(again))
