"""The Hito worker: Faust agents as thin adapters around the pure stages.

``ingest`` consumes the raw topics as bytes:
validate -> (DLQ) | dedup -> (duplicate) | anonymise -> ``hito.clean.<source>`` (keyed by site).
Dedup state lives in a Faust table keyed by ``device_id`` (the raw topics' message key), so it
is partitioned with the stream and restored from its changelog after a restart. Nothing after
``anonymise`` ever sees a raw identifier.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import faust

from schemas.reasons import Reason
from schemas.registry import Source
from streams import pipeline_counts
from streams.acks import handled_with_manual_acks
from streams.aggregator import register_aggregator
from streams.app import create_app
from streams.devices import RegistryWatcher
from streams.dlq import encode_record, make_record
from streams.metrics import PipelineMetrics
from streams.runtime import Runtime
from streams.sinks.influx import InfluxSink
from streams.sinks.influx_tokens import pipeline_token
from streams.stages import anonymise, dedup, validate
from streams.stages.validate import Accepted, Rejected

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Send = Callable[[str, bytes | None, bytes], Awaitable[Any]]
"""Sends (topic, key, value); injectable so agent tests can run without a broker."""


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
    sink: InfluxSink
    metrics: PipelineMetrics


def clean_topic(runtime: Runtime, source: Source) -> str:
    return f"{runtime.settings.pipeline.clean_topic_prefix}{source}"


def build_worker(
    runtime: Runtime,
    *,
    app_id: str = "hito",
    metrics: PipelineMetrics | None = None,
    clock: Clock = utc_now,
    send: Send | None = None,
) -> Worker:
    p = runtime.settings.pipeline
    metrics = metrics or PipelineMetrics()
    app = create_app(
        runtime.settings,
        app_id=app_id,
        on_rewind=lambda topic: metrics.consumer_rewinds.labels(topic=topic).inc(),
    )
    source_of: dict[str, Source] = {topic: src for src, topic in p.raw_topics.items()}
    raw = app.topic(*p.raw_topics.values(), partitions=p.topic_partitions)
    out_topics = {
        name: app.topic(name, partitions=p.topic_partitions)
        for name in [p.dlq_topic, *(clean_topic(runtime, s) for s in p.raw_topics)]
    }
    seq_table = app.Table(
        "dedup-seq",
        default=None,
        partitions=p.topic_partitions,
        help="Per device: highest seq seen and the window of recent ones",
    )

    async def send_to_topic(topic: str, key: bytes | None, value: bytes) -> Any:
        return await out_topics[topic].send(key=key, value=value)

    counts_table = app.Table(
        "pipeline-counts",
        default=None,
        partitions=p.topic_partitions,
        help="Per partition and minute: events by stage and outcome (the pipeline measurement)",
    )
    emit: Send = send or send_to_topic
    last_seen: dict[tuple[str, str], float] = {}  # (site, device) -> newest event time
    # The sink writes with the bucket-scoped pipeline token, never the admin token; checked
    # here so a worker without one fails at start, and read again whenever InfluxDB refuses it.
    influx = runtime.settings.influxdb
    sink = InfluxSink(
        influx.model_copy(update={"token": pipeline_token(runtime.settings)}),
        metrics,
        token_source=lambda: pipeline_token(runtime.settings),
    )
    counts_written: dict[str, int] = {}  # pipeline-count key -> version in InfluxDB
    aggregate_agent, windows = register_aggregator(
        app, runtime, metrics, sink, emit, clock, counts_table, counts_written
    )

    last_evict = [time.monotonic()]

    def count(message: Any, stage: str, outcome: str) -> None:
        pipeline_counts.count(counts_table, message.partition, clock(), p.window_s, stage, outcome)
        # This agent is the only writer of some partitions' counts (raw topics are keyed by
        # device, clean ones by site): it must forget its own old minutes too.
        if time.monotonic() - last_evict[0] > 5.0:
            last_evict[0] = time.monotonic()
            horizon = clock() - timedelta(seconds=p.window_s + 2 * p.allowed_lateness_s)
            pipeline_counts.evict(counts_table, counts_written, message.partition, horizon)

    async def reject(rejected: Rejected, raw_bytes: bytes, message: Any) -> None:
        record = make_record(
            rejected,
            raw_bytes,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            now=clock(),
            key=message.key,
        )
        key = rejected.device_id.encode() if rejected.device_id else None
        await emit(p.dlq_topic, key, encode_record(record))
        metrics.dlq.labels(reason=rejected.reason.value, stage=rejected.stage).inc()
        source = source_of.get(message.topic, "unknown")
        metrics.events.labels(source=source, outcome="rejected").inc()

    # Revocations and new devices apply without a restart (streams/devices.py).
    registry = RegistryWatcher(
        runtime.registry, p.devices_file, p.device_keys_file, interval_s=p.registry_reload_s
    )

    async def handle(event: Any) -> str:
        message = event.message
        raw_bytes: bytes = event.value if isinstance(event.value, bytes) else b""
        with stage_timer(metrics, validate.STAGE):
            result = validate.validate(
                raw_bytes,
                registry=registry.current(),
                limits=p,
                now=clock(),
                expected_source=source_of.get(message.topic),
            )
        if isinstance(result, Accepted) and event.key != result.event.device_id.encode():
            # Dedup state is partitioned by the message key: it must be the device id.
            result = Rejected(
                Reason.SCHEMA_VIOLATION,
                "kafka message key is not the envelope's device_id",
                result.event.device_id,
            )
        if isinstance(result, Rejected):
            await reject(result, raw_bytes, message)
            count(message, result.stage, result.reason.value)
            return result.reason.value
        outcome, pending_state = observe_seq(seq_table, result, p.dedup_window, metrics)
        if outcome != "accepted":
            count(message, dedup.STAGE, outcome)
        else:
            with stage_timer(metrics, anonymise.STAGE):
                clean = anonymise.anonymise(result.event, runtime.policy, runtime.keyring)
            delivered = await emit(
                clean_topic(runtime, clean.source),
                clean.site.encode(),
                clean.model_dump_json(by_alias=True).encode(),
            )
            if delivered is not None:
                # The clean event must be in Kafka before the dedup state says "seen":
                # otherwise a crash in between could lose it for good.
                await delivered
            seq_table[result.event.device_id] = pending_state
            seen_at = result.event.event_time.timestamp()
            device = (result.event.site, result.event.device_id)
            if seen_at > last_seen.get(device, 0.0):  # a late event is not a sign of life now
                last_seen[device] = seen_at
                metrics.device_last_seen.labels(site=device[0], device_id=device[1]).set(seen_at)
            count(message, anonymise.STAGE, "published")
        metrics.events.labels(source=result.source, outcome=outcome).inc()
        return outcome

    # concurrency=1: this agent writes a table.
    @app.agent(raw, concurrency=1)
    async def ingest(stream: Any) -> Any:
        async for outcome in handled_with_manual_acks(stream, handle):
            yield outcome

    inputs = {*p.raw_topics.values(), *(clean_topic(runtime, s) for s in p.raw_topics)}
    lag_reported: set[tuple[str, int]] = set()

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def report_lag() -> None:
        report_consumer_lag(app, metrics, inputs, lag_reported)

    return Worker(
        app=app,
        ingest=ingest,
        seq_table=seq_table,
        aggregate=aggregate_agent,
        windows=windows,
        counts_table=counts_table,
        sink=sink,
        metrics=metrics,
    )


def report_consumer_lag(
    app: faust.App, metrics: PipelineMetrics, topics: set[str], reported: set[tuple[str, int]]
) -> None:
    """hito_consumer_lag per owned input partition: high-water mark minus committed offset
    (or, before this process committed anything there, minus the next offset to read)."""
    monitor = app.monitor
    now_owned: set[tuple[str, int]] = set()
    for tp in app.consumer.assignment():
        end = monitor.tp_end_offsets.get(tp)
        if tp.topic not in topics or end is None:
            continue
        position = monitor.tp_committed_offsets.get(tp)
        if position is None and tp in monitor.tp_read_offsets:
            position = monitor.tp_read_offsets[tp] + 1
        if position is None:
            continue
        now_owned.add((tp.topic, tp.partition))
        lag = max(0, end - position)
        metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)
    for topic, partition in reported - now_owned:  # moved to another worker: not ours
        metrics.consumer_lag.remove(topic, str(partition))
    reported.clear()
    reported.update(now_owned)


@contextmanager
def stage_timer(metrics: PipelineMetrics, stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.stage_seconds.labels(stage=stage).observe(time.perf_counter() - started)


def observe_seq(
    table: Any, accepted: Accepted, window: int, metrics: PipelineMetrics
) -> tuple[str, dict[str, int | str] | None]:
    """Run the dedup stage against the table: the outcome and, for a new event, the device's
    next state (the caller writes it once the event has been passed on)."""
    ev = accepted.event
    stored = table.get(ev.device_id)
    try:
        before = dedup.SeqState.from_json(stored) if stored is not None else None
    except (KeyError, TypeError, ValueError):
        # Unreadable state (e.g. written by an older format) must not stop the pipeline
        # forever: start the device afresh and say so; at worst one replay gets through.
        log.warning("dedup state of %s unreadable; starting it afresh", ev.device_id)
        metrics.dedup_state_resets.inc()
        before = None
    state, seen = dedup.observe(before, ev.seq, window)
    if seen is not dedup.SeqOutcome.NEW:
        return ("duplicate" if seen is dedup.SeqOutcome.DUPLICATE else "stale"), None
    opened = state.gaps_opened - (before.gaps_opened if before else 0)
    filled = state.gaps_filled - (before.gaps_filled if before else 0)
    if opened:
        metrics.seq_gaps.labels(site=ev.site).inc(opened)
    if filled:
        metrics.seq_gap_fills.labels(site=ev.site).inc(filled)
    if opened or filled:
        # Out-of-order arrivals before a device's first event can fill more than was opened.
        missing = max(0, state.gaps_opened - state.gaps_filled)
        metrics.device_seq_missing.labels(site=ev.site, device_id=ev.device_id).set(missing)
    return "accepted", state.to_json()
