"""The ``ingest`` agent's work, one batch at a time: validate -> dedup -> anonymise -> clean.

A batch is handled in three steps, so that a crash at any point loses nothing and a
re-delivered event is never counted twice downstream:

1. every event is validated, checked against its device's dedup state (the table's value, or
   the state this batch already moved it to) and, when new, anonymised and *sent* to its clean
   topic; rejections are sent to the DLQ;
2. the batch waits once for all its clean events to be in Kafka;
3. only then is each device's new dedup state written, once per device (one changelog
   record), and the batch's pipeline counts once per partition; the state in memory moves on
   once those records are in Kafka too (a batch that fails before is read again whole).

A crash before step 3 leaves the dedup state as it was: the batch is delivered again (its
offsets were not acked) and its events go out again; the aggregator recognises what it
already counted by ``(device_id, seq)``. Nothing after ``anonymise`` ever sees a raw identifier.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hito.devices import RegistryWatcher
from hito.pipeline.dead_letters import DEAD_LETTER, DeadLetters, Origin, refused_batch
from hito.pipeline.delivery import Deliveries
from hito.pipeline.faust.batches import Record, RefusedBatch
from hito.pipeline.metrics import LabelledChildren, PipelineMetrics
from hito.pipeline.output import Send
from hito.pipeline.pseudonyms import KeyLookup
from hito.pipeline.raw_origin import raw_origin_header
from hito.pipeline.stages import anonymise, dedup, validate
from hito.pipeline.stages.outcomes import Accepted, Limits, Rejected
from hito.pipeline.state import dedup_compact
from hito.pipeline.state.changelog import CHANGELOG, TableWriter
from hito.pipeline.state.dedup_arrays import DedupArrays, UnreadableState
from hito.pipeline.state.pipeline_counts import Cells, PipelineCounts
from hito.schemas.privacy.policy import Policy
from hito.schemas.reasons import Reason
from hito.schemas.topics import TopicNames

log = logging.getLogger(__name__)
PUBLISH_STAGE = "publish"  # sending a clean event to its topic
_NEW, _DUPLICATE = dedup.SeqOutcome.NEW, dedup.SeqOutcome.DUPLICATE


def _origin(record: Record) -> Origin:
    return Origin(record.topic, record.partition, record.offset, record.key)


def _event_outcome(outcome: str) -> str:
    """hito_events_total's outcome: accepted, duplicate, stale, or rejected (any reason)."""
    return outcome if outcome in ("accepted", "duplicate", "stale") else "rejected"


def _cell(outcome: str) -> tuple[str, str]:
    """The pipeline measurement's (stage, outcome) of an event's outcome."""
    if outcome == "accepted":
        return anonymise.STAGE, "published"
    if outcome in ("duplicate", "stale"):
        return dedup.STAGE, outcome
    if outcome == Reason.SINK_REJECTED.value:
        return PUBLISH_STAGE, outcome
    return validate.STAGE, outcome


@dataclass(eq=False, kw_only=True)
class Ingest:
    """State and collaborators of one worker's ingest agent (``handle_batch`` is the agent)."""

    topics: TopicNames
    limits: Limits
    dedup_window: int
    policy: Policy
    keys: KeyLookup  # (purpose, epoch) -> key: the key store's view, no I/O
    registry: RegistryWatcher
    seq_table: TableWriter  # device_id -> dedup state (SeqState.to_json); its store: arrays
    counts: PipelineCounts
    send: Send
    dead_letters: DeadLetters
    metrics: PipelineMetrics
    clock: Callable[[], datetime]
    count_horizon: timedelta  # pipeline counts are forgotten this long after their minute
    kill_after_publish: int | None = None  # a fault hook for tests (_fault_hook)
    _batches: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._events = LabelledChildren(self.metrics.events)  # (source, outcome)
        self.source_of = self.topics.source_of_raw
        self.clean_topics = self.topics.clean_by_source
        # The dedup table's store (hito.pipeline.state.stores): states by registry entry.
        self.seqs: DedupArrays = self.seq_table.store.data
        assert isinstance(self.seqs, DedupArrays), "dedup-seq needs its store (worker.py)"

    async def handle_batch(self, records: Sequence[Record]) -> list[str]:
        """One lane batch (the records of one raw partition, in order); one outcome per
        record: ``accepted``, ``duplicate``, ``stale`` or the reason code it was rejected
        with."""
        if not records:
            return []
        now = self.clock()
        registry = self.registry.current()
        # Per-device state is by registry entry: it follows the registry the batch uses.
        self.seqs.follow(registry)
        self.metrics.devices.follow(registry)
        partition = records[0].partition
        outcomes: list[str] = []
        sources: list[str] = []
        states: dict[int, dedup_compact.State | None] = {}  # entry -> state as of this batch
        changed: dict[int, str] = {}  # entry -> device id, of states this batch moves on
        newest: dict[int, float] = {}  # entry -> newest event time
        deliveries = Deliveries(self.send)
        withheld = 0  # events a purpose could not link (their epoch key is destroyed)
        validate_s = anonymise_s = 0.0
        anonymised = 0
        source_of, clean_topics = self.source_of, self.clean_topics
        limits, policy, keys = self.limits, self.policy, self.keys
        perf_counter = time.perf_counter
        for i, record in enumerate(records):
            raw = record.value or b""
            expected = source_of.get(record.topic)
            sources.append(expected or "unknown")
            started = perf_counter()
            if raw or type(record) is not RefusedBatch:
                result = validate.validate(
                    raw, registry=registry, limits=limits, now=now, expected_source=expected
                )
            else:  # a batch the fetch reader refused unread: its records, as one
                result = refused_batch(record)
            validate_s += perf_counter() - started
            if isinstance(result, Accepted) and record.key != result.event.device_id.encode():
                # Dedup state is partitioned by the message key: it must be the device id.
                result = Rejected(
                    Reason.SCHEMA_VIOLATION,
                    "kafka message key is not the envelope's device_id",
                    result.event.device_id,
                    site=result.device.site,
                )
            if isinstance(result, Rejected):
                await self.dead_letters.reject(deliveries, result, raw, _origin(record))
                outcomes.append(result.reason.value)
                continue
            outcome = self._observe(result, states)
            outcomes.append(outcome)
            if outcome != "accepted":
                continue
            ev, device = result.event, result.device
            changed[device.index] = device.device_id
            timestamp = ev.event_time.timestamp()  # once: anonymise and _mark_seen
            started = perf_counter()
            made = anonymise.anonymise(ev, policy, keys, timestamp=timestamp)
            body = anonymise.encode(made)
            anonymise_s += perf_counter() - started
            anonymised += 1
            if made.withheld:
                withheld += 1
                for purpose in made.withheld:
                    self.metrics.pseudonyms_withheld.labels(purpose=purpose).inc()
            await deliveries.add(
                clean_topics[made.source],
                made.site.encode(),
                body,
                # What a refusal needs (_deliver), not the event: the parsed event and its
                # objects die here instead of living, promoted by the garbage collector, until
                # the batch is delivered. Fewer old objects, no full collections: 13 -> 0.8 µs
                # of collection an event without Kafka (46-49 -> 36-38 µs an event, load 3;
                # measured as hito.bench.handlers now does).
                (i, raw, device.device_id, device.site),
                headers=[raw_origin_header(record.topic, record.partition, record.offset)],
            )
            index = device.index
            newest[index] = max(newest.get(index, 0.0), timestamp)
        # The clean events (and dead letters) must be in Kafka before the dedup state says
        # "seen": otherwise a crash in between could lose them for good.
        await self._deliver(deliveries, records, outcomes)
        await self._fault_hook()
        for index, device_id in changed.items():
            state = states[index]
            assert state is not None  # a device is "changed" only by an accepted event
            value = dedup_compact.to_json(state)  # the changelog's value, as ever
            await self.seq_table.changelog(deliveries, partition, device_id, value)
        self._count(partition, sources, outcomes, now, withheld)
        if self.counts.windows.eviction_due():
            # This agent is the only writer of its raw partitions' counts: it must forget
            # their old minutes too.
            await self.counts.windows.evict(deliveries, partition, now - self.count_horizon)
        await self.counts.windows.write_changelog(deliveries)
        await self._deliver(deliveries, records, outcomes)  # the state's changelog records
        # "Seen" in memory only now: a batch that fails before (read again: Lanes) publishes
        # its events and writes their state again, instead of taking them for duplicates.
        for index in changed:
            state = states[index]
            assert state is not None
            self.seqs.put(index, state, partition)
        self._mark_seen(records[0].topic, partition, newest)
        self.metrics.stage_seconds.labels(stage=validate.STAGE).observe(validate_s / len(records))
        if anonymised:
            self.metrics.stage_seconds.labels(stage=anonymise.STAGE).observe(
                anonymise_s / anonymised
            )
        return outcomes

    async def _fault_hook(self) -> None:
        """Tests kill the worker here (HITO_TEST_KILL_AFTER_PUBLISH=<n>: at the n-th batch),
        between publishing a batch's clean events and writing its dedup state."""
        if self.kill_after_publish is not None:
            self._batches += 1
            if self._batches >= self.kill_after_publish:
                log.error("test fault hook: killed between publish and dedup state")
                os.kill(os.getpid(), signal.SIGKILL)

    async def _deliver(
        self, deliveries: Deliveries, records: Sequence[Record], outcomes: list[str]
    ) -> None:
        """Wait for the batch's sends. A clean event Kafka refuses for good (never seen: they
        are a few hundred bytes) is dead-lettered as ``sink_rejected``; a refused dead letter
        or changelog record is counted. Nothing refused holds the partition."""
        while refused := await deliveries.wait():
            for r in refused:
                if r.record.tag in (DEAD_LETTER, CHANGELOG):
                    self.dead_letters.refused(r)
                    continue
                i, raw, device_id, site = r.record.tag
                self.metrics.send_refused.labels(topic=r.record.topic).inc()
                outcomes[i] = Reason.SINK_REJECTED.value
                rejected = Rejected(
                    Reason.SINK_REJECTED,
                    f"the clean event was refused by Kafka ({type(r.error).__name__})",
                    device_id,
                    stage=PUBLISH_STAGE,
                    site=site,
                )
                await self.dead_letters.reject(deliveries, rejected, raw, _origin(records[i]))

    def _count(
        self,
        partition: int,
        sources: list[str],
        outcomes: list[str],
        now: datetime,
        withheld: int,
    ) -> None:
        """The batch's outcomes into hito_events_total and the pipeline counts, with the
        events whose epoch key was destroyed (anonymise/pseudonym_withheld)."""
        # Counted per (source, outcome) first: one counter increment per pair and batch, not
        # per event (a Prometheus increment takes a lock; 1.0 -> 0.2 µs an event).
        pairs = Counter(zip(sources, outcomes, strict=True))
        cells: Cells = Counter()
        for (source, outcome), n in pairs.items():
            cells[_cell(outcome)] += n
            self._events(source, _event_outcome(outcome)).inc(n)
        if withheld:
            cells[(anonymise.STAGE, "pseudonym_withheld")] += withheld
        self.counts.add(partition, now, cells)

    def _observe(self, accepted: Accepted, states: dict[int, dedup_compact.State | None]) -> str:
        """The dedup stage for one event; moves ``states`` on when the event is new."""
        ev = accepted.event
        index = accepted.device.index  # the device's registry entry: where its state is kept
        before = states[index] if index in states else self._stored_state(accepted)
        state, seen = dedup_compact.observe(before, ev.seq, self.dedup_window)
        if seen is not _NEW:
            states[index] = before
            return "duplicate" if seen is _DUPLICATE else "stale"
        states[index] = state
        (opened_before, filled_before), (opened, filled) = (
            dedup_compact.gaps(before),
            dedup_compact.gaps(state),
        )
        if opened > opened_before:
            self.metrics.seq_gaps.labels(site=ev.site).inc(opened - opened_before)
        if filled > filled_before:
            self.metrics.seq_gap_fills.labels(site=ev.site).inc(filled - filled_before)
        return "accepted"

    def _stored_state(self, accepted: Accepted) -> dedup_compact.State | None:
        try:
            return self.seqs.state(accepted.device.index)
        except UnreadableState:
            # Unreadable state (e.g. written by an older format) must not stop the pipeline
            # forever: start the device afresh and say so; at worst one replay gets through.
            log.warning(
                "dedup state of %s unreadable; starting it afresh", accepted.device.device_id
            )
            self.metrics.dedup_state_resets.inc()
            return None

    def _mark_seen(self, topic: str, partition: int, newest: dict[int, float]) -> None:
        for index, seen_at in newest.items():
            self.metrics.devices.seen(index, topic, partition, seen_at)
