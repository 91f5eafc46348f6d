"""The Hito worker: Faust agents as thin adapters around the pure stages.

``ingest`` consumes the raw topics as bytes, in batches (streams/ingest.py):
validate -> (DLQ) | dedup -> (duplicate) | anonymise -> ``hito.clean.<source>`` (keyed by site).
Dedup state lives in a Faust table keyed by ``device_id`` (the raw topics' message key), so it
is partitioned with the stream and restored from its changelog after a restart. Nothing after
``anonymise`` ever sees a raw identifier.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust

from hito.access.influx_tokens import pipeline_token
from hito.devices import RegistryWatcher
from hito.pipeline.agents.aggregate import register_aggregator
from hito.pipeline.agents.ingest import Ingest, Send
from hito.pipeline.faust.app import create_app
from hito.pipeline.faust.batches import handled_batches
from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.sinks.influx import InfluxSink
from hito.runtime import Runtime
from hito.schemas.registry import Source

log = logging.getLogger(__name__)

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
        on_skip=lambda topic: metrics.consumer_skips.labels(topic=topic).inc(),
    )
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
    # Revocations and new devices apply without a restart (streams/devices.py).
    registry = RegistryWatcher(
        runtime.registry, p.devices_file, p.device_keys_file, interval_s=p.registry_reload_s
    )
    work = Ingest(runtime, metrics, registry, seq_table, counts_table, counts_written, emit, clock)

    # concurrency=1: this agent writes a table.
    @app.agent(raw, concurrency=1)
    async def ingest(stream: Any) -> Any:
        async for outcomes in handled_batches(
            stream, work.handle_batch, max_events=p.batch_max_events, within_s=p.batch_within_s
        ):
            yield outcomes

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
