"""The ``ingest`` agent's work, one batch at a time: validate -> dedup -> anonymise -> clean.

A batch is handled in three steps, so that a crash at any point loses nothing and a
re-delivered event is never counted twice downstream:

1. every event is validated, checked against its device's dedup state (the table's value, or
   the state this batch already moved it to) and, when new, anonymised and *sent* to its clean
   topic; rejections are sent to the DLQ;
2. the batch waits once for all its clean events to be in Kafka;
3. only then is each device's new dedup state written, once per device (one changelog
   record), and the batch's pipeline counts once per partition.

A crash before step 3 leaves the dedup state as it was: the batch is delivered again (its
offsets were not acked) and its events go out again; the aggregator recognises what it
already counted by ``(device_id, seq)``. Nothing after ``anonymise`` ever sees a raw identifier.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from hito.devices import RegistryWatcher
from hito.ops.dlq import encode_record, make_record
from hito.pipeline.faust.batches import last_event_per_partition, on_behalf_of
from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.stages import anonymise, dedup, validate
from hito.pipeline.stages.validate import Accepted, Rejected
from hito.pipeline.state import pipeline_counts
from hito.runtime import Runtime
from hito.schemas.reasons import Reason
from hito.schemas.registry import Source

log = logging.getLogger(__name__)

Send = Callable[[str, bytes | None, bytes], Awaitable[Any]]
"""Sends (topic, key, value) and returns the delivery future (or None, in agent tests)."""

_EVICT_EVERY_S = 5.0
Cells = Counter[tuple[str, str]]  # (stage, outcome) -> events


class Ingest:
    """State and collaborators of one worker's ingest agent (``handle_batch`` is the agent)."""

    def __init__(
        self,
        runtime: Runtime,
        metrics: PipelineMetrics,
        registry: RegistryWatcher,
        seq_table: Any,
        counts_table: Any,
        counts_written: dict[str, int],
        emit: Send,
        clock: Callable[[], datetime],
    ) -> None:
        self.runtime = runtime
        self.p = runtime.settings.pipeline
        self.metrics = metrics
        self.registry = registry
        self.seq_table = seq_table
        self.counts_table = counts_table
        self.counts_written = counts_written
        self.emit = emit
        self.clock = clock
        self.source_of: dict[str, Source] = {t: s for s, t in self.p.raw_topics.items()}
        self.clean_topics = {s: f"{self.p.clean_topic_prefix}{s}" for s in self.p.raw_topics}
        self._last_evict = time.monotonic()
        self._event_counters: dict[tuple[str, str], Any] = {}

    async def handle_batch(self, events: Sequence[Any]) -> list[str]:
        """One outcome per event, in order: ``accepted``, ``duplicate``, ``stale`` or the
        reason code it was rejected with."""
        now = self.clock()
        registry = self.registry.current()
        outcomes: list[str] = []
        states: dict[str, dedup.SeqState | None] = {}  # device -> state as of this batch
        changed: dict[str, Any] = {}  # device -> an event of its partition (for the write)
        newest: dict[tuple[str, str], float] = {}
        cells: defaultdict[int, Cells] = defaultdict(Counter)
        deliveries: list[Awaitable[Any]] = []
        validate_s = anonymise_s = 0.0
        anonymised = 0
        for event in events:
            message = event.message
            raw: bytes = event.value if isinstance(event.value, bytes) else b""
            started = time.perf_counter()
            result = validate.validate(
                raw,
                registry=registry,
                limits=self.p,
                now=now,
                expected_source=self.source_of.get(message.topic),
            )
            validate_s += time.perf_counter() - started
            if isinstance(result, Accepted) and event.key != result.event.device_id.encode():
                # Dedup state is partitioned by the message key: it must be the device id.
                result = Rejected(
                    Reason.SCHEMA_VIOLATION,
                    "kafka message key is not the envelope's device_id",
                    result.event.device_id,
                )
            if isinstance(result, Rejected):
                await self._reject(result, raw, message, now)
                cells[message.partition][(result.stage, result.reason.value)] += 1
                outcomes.append(result.reason.value)
                continue
            outcome = self._observe(result, states)
            if outcome == "accepted":
                ev = result.event
                changed[result.device.device_id] = event
                started = time.perf_counter()
                clean = anonymise.anonymise(ev, self.runtime.policy, self.runtime.keyring)
                body = anonymise.encode(clean)
                anonymise_s += time.perf_counter() - started
                anonymised += 1
                delivered = await self.emit(
                    self.clean_topics[clean.source], clean.site.encode(), body
                )
                if delivered is not None:
                    deliveries.append(delivered)
                device = (result.device.site, result.device.device_id)
                newest[device] = max(newest.get(device, 0.0), ev.event_time.timestamp())
                cells[message.partition][(anonymise.STAGE, "published")] += 1
            else:
                cells[message.partition][(dedup.STAGE, outcome)] += 1
            self._count_event(result.source, outcome)
            outcomes.append(outcome)
        if deliveries:
            # The clean events must be in Kafka before the dedup state says "seen": otherwise
            # a crash in between could lose them for good.
            await asyncio.gather(*deliveries)
        for device_id, event in changed.items():
            state = states[device_id]
            assert state is not None  # a device is "changed" only by an accepted event
            with on_behalf_of(event):
                self.seq_table[device_id] = state.to_json()
        self._mark_seen(newest)
        self._write_counts(events, cells, now)
        if events:
            self.metrics.stage_seconds.labels(stage=validate.STAGE).observe(
                validate_s / len(events)
            )
        if anonymised:
            self.metrics.stage_seconds.labels(stage=anonymise.STAGE).observe(
                anonymise_s / anonymised
            )
        return outcomes

    def _observe(self, accepted: Accepted, states: dict[str, dedup.SeqState | None]) -> str:
        """The dedup stage for one event; moves ``states`` on when the event is new."""
        ev = accepted.event
        device_id = accepted.device.device_id  # the registry's string: shared by all state
        before = states[device_id] if device_id in states else self._stored_state(device_id)
        state, seen = dedup.observe(before, ev.seq, self.p.dedup_window)
        if seen is not dedup.SeqOutcome.NEW:
            states[device_id] = before
            return "duplicate" if seen is dedup.SeqOutcome.DUPLICATE else "stale"
        states[device_id] = state
        opened = state.gaps_opened - (before.gaps_opened if before else 0)
        filled = state.gaps_filled - (before.gaps_filled if before else 0)
        if opened:
            self.metrics.seq_gaps.labels(site=ev.site).inc(opened)
        if filled:
            self.metrics.seq_gap_fills.labels(site=ev.site).inc(filled)
        if opened or filled:
            # Out-of-order arrivals before a device's first event can fill more than was opened.
            missing = max(0, state.gaps_opened - state.gaps_filled)
            self.metrics.device_seq_missing.set(accepted.device.site, device_id, missing)
        return "accepted"

    def _stored_state(self, device_id: str) -> dedup.SeqState | None:
        stored = self.seq_table.get(device_id)
        if stored is None:
            return None
        try:
            return dedup.SeqState.from_json(stored)
        except (KeyError, TypeError, ValueError):
            # Unreadable state (e.g. written by an older format) must not stop the pipeline
            # forever: start the device afresh and say so; at worst one replay gets through.
            log.warning("dedup state of %s unreadable; starting it afresh", device_id)
            self.metrics.dedup_state_resets.inc()
            return None

    async def _reject(self, rejected: Rejected, raw: bytes, message: Any, now: datetime) -> None:
        record = make_record(
            rejected,
            raw,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            now=now,
            key=message.key,
        )
        key = rejected.device_id.encode() if rejected.device_id else None
        await self.emit(self.p.dlq_topic, key, encode_record(record))
        self.metrics.dlq.labels(reason=rejected.reason.value, stage=rejected.stage).inc()
        self._count_event(self.source_of.get(message.topic, "unknown"), "rejected")

    def _count_event(self, source: str, outcome: str) -> None:
        counter = self._event_counters.get((source, outcome))
        if counter is None:
            counter = self.metrics.events.labels(source=source, outcome=outcome)
            self._event_counters[(source, outcome)] = counter
        counter.inc()

    def _mark_seen(self, newest: dict[tuple[str, str], float]) -> None:
        for device, seen_at in newest.items():
            # A late event is no sign of life now.
            if seen_at > (self.metrics.device_last_seen.get(*device) or 0.0):
                self.metrics.device_last_seen.set(device[0], device[1], seen_at)

    def _write_counts(self, events: Sequence[Any], cells: dict[int, Cells], now: datetime) -> None:
        evict = time.monotonic() - self._last_evict > _EVICT_EVERY_S
        if evict:
            self._last_evict = time.monotonic()
        horizon = now - timedelta(seconds=self.p.window_s + 2 * self.p.allowed_lateness_s)
        for partition, event in last_event_per_partition(events).items():
            with on_behalf_of(event):
                if cells.get(partition):
                    pipeline_counts.count_many(
                        self.counts_table, partition, now, self.p.window_s, cells[partition]
                    )
                if evict:
                    # This agent is the only writer of some partitions' counts (raw topics are
                    # keyed by device, clean ones by site): it must forget its old minutes too.
                    pipeline_counts.evict(
                        self.counts_table, self.counts_written, partition, horizon
                    )
