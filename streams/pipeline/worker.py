"""The Hito worker, wiring only: the Faust app, its tables, and agents as thin adapters around
the pipeline's classes (``Ingest``, ``Aggregator``, ``Publisher``), which hold the logic.

``ingest`` consumes the raw topics as bytes, in batches: validate -> (DLQ) | dedup ->
(duplicate) | anonymise -> ``hito.clean.<source>`` (keyed by site). ``aggregate`` counts the
clean topics into event-time windows; a timer publishes them to InfluxDB. Dedup state lives in
a Faust table keyed by ``device_id`` (the raw topics' message key), so it is partitioned with
the stream and restored from its changelog after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import faust

from hito.credentials import pipeline_token
from hito.devices import RegistryWatcher
from hito.pipeline.agents.aggregate import Aggregator
from hito.pipeline.agents.ingest import Ingest
from hito.pipeline.agents.publish import Publisher, RecoveryHold
from hito.pipeline.agents.surge import SurgeDetector
from hito.pipeline.dead_letters import DeadLetters
from hito.pipeline.faust.app import create_app
from hito.pipeline.faust.batches import Record
from hito.pipeline.faust.lag import report_consumer_lag
from hito.pipeline.faust.lane import (
    CHANNEL_SIZE,
    HandleBatch,
    Lane,
    Lanes,
    install_lanes,
    lane_agent,
)
from hito.pipeline.faust.offsets import FaultHooks
from hito.pipeline.faust.produce import BatchSend
from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.output import Send
from hito.pipeline.sinks.influx import InfluxSink
from hito.pipeline.stages import dedup
from hito.pipeline.stages.repeat import MEASUREMENT as REPEAT_CROSSINGS
from hito.pipeline.stages.repeat import RepeatRules
from hito.pipeline.stages.windows import WindowRules
from hito.pipeline.state import stores
from hito.pipeline.state.archive import WindowArchive
from hito.pipeline.state.changelog import TableWriter
from hito.pipeline.state.pipeline_counts import PipelineCounts
from hito.pipeline.state.repeat_days import RepeatDays
from hito.pipeline.state.versioned import VersionedWindows
from hito.runtime import Runtime
from hito.schemas.privacy.retention import (
    PERSON_STATE_TABLE,
    person_state_changelog_configs,
)
from hito.settings import HitoSettings, SettingsError

log = logging.getLogger(__name__)

# How long a stop waits for the flush in progress: well inside docker-compose's 60 s grace and
# the 30 s WorkerProcess gives a stop before it kills.
SHUTDOWN_FLUSH_WAIT_S = 20

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Worker:
    app: faust.App
    ingest: Any  # the Faust agents and their tables
    seq_table: Any
    aggregate: Any
    windows: Any
    counts_table: Any
    repeat_table: Any
    sink: InfluxSink
    metrics: PipelineMetrics
    publisher: Publisher
    lanes: Lanes
    # The agents' handlers (agent tests drive them directly too).
    ingest_handler: Ingest
    aggregate_handler: Aggregator


def build_worker(
    runtime: Runtime,
    *,
    app_id: str = "hito",
    metrics: PipelineMetrics | None = None,
    clock: Clock = utc_now,
    send: Send | None = None,
) -> Worker:
    """``send``: where records go instead of Kafka (agent tests)."""
    refuse_fault_hooks(runtime.settings)
    p = runtime.settings.pipeline
    topics = p.topics
    metrics = metrics or PipelineMetrics()
    app = create_app(
        runtime.settings,
        app_id=app_id,
        on_rewind=lambda topic: metrics.consumer_rewinds.labels(topic=topic).inc(),
        on_skip=lambda topic: metrics.consumer_skips.labels(topic=topic).inc(),
        hooks=FaultHooks(
            lose_changelog_s=_test_seconds("HITO_TEST_LOSE_CHANGELOG_S") or 0.0,
            fetch_wait_s=_test_seconds("HITO_TEST_FETCH_WAIT_S") or 1.0,
            recovery_seek_pause_s=_test_seconds("HITO_TEST_RECOVERY_SEEK_PAUSE_S") or 0.0,
        ),
    )
    # The input topics are consumed through the batch lanes (hito.pipeline.faust.lane), not by
    # agents of their own: registered with Faust so that it subscribes and assigns them.
    app.topics.add(app.topic(*topics.raw.values(), partitions=p.topic_partitions))
    app.topics.add(app.topic(*topics.clean_by_source.values(), partitions=p.topic_partitions))
    raw_lane = Lane("ingest", app.channel(maxsize=CHANNEL_SIZE), frozenset(topics.raw.values()))
    clean_lane = Lane(
        "aggregate",
        app.channel(maxsize=CHANNEL_SIZE),
        frozenset(topics.clean_by_source.values()),
    )
    lanes = Lanes([raw_lane, clean_lane])
    install_lanes(app, lanes)
    lanes.on_failure = lambda lane: metrics.lane_batch_failures.labels(agent=lane.name).inc()
    for lane in lanes.lanes:
        failing = metrics.lane_partitions_failing.labels(agent=lane.name)
        failing.set_function(partial(lanes.failing, lane))
    producer: Any = app.producer  # Faust's aiokafka producer (started with the app)
    emit: Send = send or BatchSend(lambda: producer._producer)
    # Revocations and new devices apply without a restart (hito.devices).
    registry = RegistryWatcher(
        runtime.registry, *p.registry_files(), interval_s=p.registry_reload_s
    )
    tables = {
        name: app.Table(name, default=None, partitions=p.topic_partitions, help=text)
        for name, text in (
            ("pipeline-counts", "Per partition and minute: events by stage and outcome"),
            ("agg-windows", "Per partition, site and window: counts and the raw offsets in them"),
        )
    }

    def _restored(device_id: str, partition: int, at: float) -> None:
        """A device's dedup state recovered from the changelog was written when its last
        event before then was handled: it was alive then. A device silent before a restart
        or a handover stays known, and DeviceSilent keeps firing until it is back."""
        device = registry.current().get(device_id)
        if device is not None and not device.revoked:
            metrics.devices.follow(registry.current())
            metrics.devices.seen(device.index, topics.raw[device.kind], partition, at)

    # Its values live in arrays by registry entry (hito.pipeline.state.stores); the
    # changelog's records are device_id -> SeqState.to_json(), as with Faust's own store.
    tables[dedup.TABLE] = app.Table(
        dedup.TABLE,
        default=None,
        partitions=p.topic_partitions,
        help="Per device: highest seq seen and the window of recent ones",
        store=stores.DEDUP_URL,
        options={
            "window": p.dedup_window,
            "registry": registry,
            "on_restored": lambda device_id, partition, at: _restored(device_id, partition, at),
        },
    )
    tables[PERSON_STATE_TABLE] = app.Table(
        PERSON_STATE_TABLE,
        default=None,
        partitions=p.topic_partitions,
        help="Per partition, site, day and pseudonym: the person's crossings (repeat_crossings)",
        extra_topic_configs=person_state_changelog_configs(runtime.policy),
        # A person who crossed once is an array row, ~32 bytes (hito.pipeline.state.stores).
        store=stores.PERSON_DAYS_URL,
        options={"registry": registry},
    )
    # The sink writes with the bucket-scoped pipeline token, never the admin token; checked
    # here so a worker without one fails at start, and read again whenever InfluxDB refuses it.
    influx = runtime.settings.influxdb
    sink = InfluxSink(
        influx.model_copy(update={"token": pipeline_token(runtime.settings)}),
        metrics,
        token_source=lambda: pipeline_token(runtime.settings),
    )
    dead_letters = DeadLetters(topics, metrics, clock)
    rules = WindowRules(
        window_s=p.window_s,
        allowed_lateness_s=p.allowed_lateness_s,
        backfill_horizon_s=p.backfill_horizon_s,
    )
    counts = PipelineCounts(VersionedWindows(tables["pipeline-counts"]), p.window_s)
    windows = VersionedWindows(tables["agg-windows"])
    archive = WindowArchive(sink.archived_windows)
    repeat_days = RepeatDays(tables[PERSON_STATE_TABLE])
    repeat_rules = repeat_rules_of(runtime)
    work = Ingest(
        topics=topics,
        limits=runtime.limits,
        dedup_window=p.dedup_window,
        policy=runtime.policy,
        keys=runtime.key_store.lookup,
        registry=registry,
        seq_table=TableWriter(tables[dedup.TABLE]),
        counts=counts,
        send=emit,
        dead_letters=dead_letters,
        metrics=metrics,
        clock=clock,
        count_horizon=rules.horizon,
        kill_after_publish=_test_hook("HITO_TEST_KILL_AFTER_PUBLISH"),
    )
    aggregator = Aggregator(
        rules=rules,
        windows=windows,
        archive=archive,
        counts=counts,
        repeat_days=repeat_days,
        repeat_rules=repeat_rules,
        sink=sink,
        send=emit,
        dead_letters=dead_letters,
        metrics=metrics,
        clock=clock,
        kill_mid_backfill=_test_hook("HITO_TEST_KILL_MID_BACKFILL"),
    )
    detector = SurgeDetector(runtime.settings.surge, p.window_s, metrics, sink.crossings_per_minute)
    recovering = RecoveryHold(lambda: bool(app.rebalancing))
    publisher = Publisher(
        sink=sink,
        windows=windows,
        archive=archive,
        rules=rules,
        counts=counts,
        detector=detector,
        send=emit,
        dead_letters=dead_letters,
        small_count_k=runtime.policy.small_count_k,
        clock=clock,
        repeat_days=repeat_days,
        repeat_rules=repeat_rules,
        on_day_published=lambda site: metrics.repeat_days_published.labels(site=site).inc(),
        rebalancing=recovering,
        pause_after_clear_s=_test_seconds("HITO_TEST_PAUSE_AFTER_CLEAR_S"),
    )
    # concurrency=1: one batch at a time per lane (the tables are written in batch order).
    ingest = app.agent(raw_lane.channel, name="ingest", concurrency=1)(
        lane_agent(lanes, _failing(work.handle_batch, _test_hook("HITO_TEST_FAIL_INGEST_BATCH")))
    )
    aggregate = app.agent(clean_lane.channel, name="aggregate", concurrency=1)(
        lane_agent(lanes, aggregator.handle_batch, aggregator.settled)
    )

    # A stop must not cut a flush between a window's deletes and its writes: InfluxDB would
    # lack the window until a worker wrote it again (the three-broker test's last worker was
    # stopped 0.4 s into a takeover and every crossing was gone). The flush runs shielded from
    # the timer's cancellation, and the app waits for it before it shuts down.
    flushing: set[asyncio.Future[None]] = set()

    @app.timer(interval=p.flush_interval_s)  # type: ignore[untyped-decorator]
    async def publish() -> None:
        flush = asyncio.ensure_future(
            publisher.flush({tp.partition for tp in app.assignor.assigned_actives()})
        )
        flushing.add(flush)
        flush.add_done_callback(flushing.discard)
        await asyncio.shield(flush)

    async def finish_flush(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        if flushing:
            log.info("waiting for the flush in progress before stopping")
            _, late = await asyncio.wait(set(flushing), timeout=SHUTDOWN_FLUSH_WAIT_S)
            if late:
                log.error("the flush in progress outlived the stop (%d s)", SHUTDOWN_FLUSH_WAIT_S)

    # A strong reference (mode's default): the receiver is a closure nothing else holds.
    app.on_before_shutdown.connect(cast(Any, finish_flush))

    @app.timer(interval=runtime.settings.privacy.key_refresh_s)  # type: ignore[untyped-decorator]
    async def destroy_expired_keys() -> None:
        # Keys of closed epochs go (from the shared store file too); rotations made with
        # `hito policy keys rotate` are read in.
        runtime.key_store.destroy_expired(clock(), runtime.key_grace_s)
        for purpose, chain in runtime.key_store.chains.items():
            metrics.key_first_epoch.labels(purpose=purpose).set(chain.first_epoch)

    inputs = set(topics.inputs)

    async def forget_unwritten(sender: Any, assigned: Any, *args: Any, **kwargs: Any) -> None:
        # Unwritten changes (a batch whose writes failed, or that failed before writing) of
        # partitions that went elsewhere are not ours to write: the new owner restores the
        # changelog without them and reads their batches again.
        kept = {tp.partition for tp in assigned if tp.topic in inputs}
        for store in (windows, repeat_days, counts.windows):
            store.keep_unwritten(kept)
        recovering.assigned()  # the publisher waits for the recovery of this assignment
        owned[0] = frozenset(assigned)

    async def own_nothing(sender: Any, revoked: Any, *args: Any, **kwargs: Any) -> None:
        owned[0] = frozenset()  # until the next assignment (eager rebalancing: all go)

    # The partitions owned, as the event loop last saw them: a scrape runs in the metrics
    # server's thread and must not call Faust. `app.consumer` is made on first use, so a scrape
    # that came before the app made it built a second consumer there, on that thread's event
    # loop, and the worker exited at start-up ("Future attached to a different loop", or the
    # conductor's ConsumerNotStarted: 2 of 50 handover-soak runs, 2026-12-05).
    owned: list[frozenset[Any]] = [frozenset()]
    app.on_partitions_assigned.connect(cast(Any, forget_unwritten))
    app.on_partitions_revoked.connect(cast(Any, own_nothing))
    lag_reported: set[tuple[str, int]] = set()

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def report_lag() -> None:
        report_consumer_lag(app, metrics, inputs, lag_reported)

    lanes.assigned = lambda tp: tp in app.consumer.assignment()
    # Devices are reported by the worker that owns their partition now; losses from the dedup
    # state (hito.pipeline.device_metrics).
    metrics.devices.owned = lambda: owned[0]
    metrics.devices.losses = stores.seq_states(tables[dedup.TABLE]).missing
    return Worker(
        app=app,
        ingest=ingest,
        seq_table=tables[dedup.TABLE],
        aggregate=aggregate,
        windows=tables["agg-windows"],
        counts_table=tables["pipeline-counts"],
        repeat_table=tables[PERSON_STATE_TABLE],
        sink=sink,
        metrics=metrics,
        publisher=publisher,
        lanes=lanes,
        ingest_handler=work,
        aggregate_handler=aggregator,
    )


def repeat_rules_of(runtime: Runtime) -> RepeatRules:
    """The repeat_crossings output's rules: the purpose that feeds it (the policy loader
    guarantees exactly one, with a horizon), its epochs, the grace and k."""
    policy = runtime.policy
    (purpose,) = (p for p in policy.purposes.values() if REPEAT_CROSSINGS in p.outputs)
    assert purpose.epoch_s is not None
    return RepeatRules(
        purpose=purpose.name,
        epoch_s=purpose.epoch_s,
        grace_s=runtime.key_grace_s,
        k=policy.small_count_k,
    )


FAULT_HOOK_PREFIX = "HITO_TEST_"


def refuse_fault_hooks(settings: HitoSettings) -> None:
    """Fault hooks (``HITO_TEST_*``: kill, fail or pause a worker on purpose) are for tests on
    the development stack. Outside the development profile one left set by mistake would kill
    or stall a deployment's workers over and over: the worker refuses to start instead,
    naming the variables (not their values)."""
    hooks = sorted(name for name in os.environ if name.startswith(FAULT_HOOK_PREFIX))
    if hooks and not settings.development_secrets:
        raise SettingsError(
            f"test fault hooks are set outside the development profile ({', '.join(hooks)}): "
            "unset them"
        )


def _test_seconds(variable: str) -> float | None:
    """A fault hook's pause from the environment (tests stop workers during it)."""
    value = os.environ.get(variable)
    return float(value) if value else None


FAILURES_BY_HOOK = 2


def _failing(handle: HandleBatch, at_batch: int | None) -> HandleBatch:
    """A fault hook for tests (HITO_TEST_FAIL_INGEST_BATCH=<n>): from the n-th batch on, the
    next FAILURES_BY_HOOK batches of two records or more handle their first half, then raise
    (a batch failed part-way; its first half's events are published and its dedup state is
    written). Nothing wraps the handler without the variable."""
    if at_batch is None:
        return handle
    batches = failures = 0

    async def failing(records: Sequence[Record]) -> list[str]:
        nonlocal batches, failures
        batches += 1
        if batches >= at_batch and failures < FAILURES_BY_HOOK and len(records) >= 2:
            failures += 1
            await handle(records[: len(records) // 2])
            raise RuntimeError("test fault hook: a batch failed part-way")
        return await handle(records)

    return failing


def _test_hook(variable: str) -> int | None:
    """A fault hook's batch number from the environment (tests kill workers there)."""
    value = os.environ.get(variable)
    return int(value) if value else None
