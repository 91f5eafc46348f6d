"""The ``aggregate`` agent and the flush timer: clean events -> window state -> InfluxDB.

Exactness (see docs/aggregation.md): a window's counts and the ``(device_id, seq)`` pairs they
include live in one table value, changed by one write. Faust flushes the producer (changelogs
included) before it commits offsets, so after a crash every event is either in the restored
state (and recognised if re-delivered) or re-delivered (and counted). The sink writes whole
windows keyed by their start: re-writing is harmless, so after a restart every window is
written again, and while InfluxDB is down state keeps accumulating durably and is written
when it returns.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from pydantic import ValidationError

from hito.ops.dlq import encode_record, make_record
from hito.pipeline.agents.surge import SurgeDetector
from hito.pipeline.faust.batches import handled_batches, last_event_per_partition, on_behalf_of
from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.sinks.influx import InfluxSink, PermanentSinkError, RetryableSinkError
from hito.pipeline.sinks.lines import points_for
from hito.pipeline.stages import aggregate
from hito.pipeline.stages.validate import Rejected
from hito.pipeline.state import pipeline_counts
from hito.runtime import Runtime
from hito.schemas.clean import CleanEvent
from hito.schemas.reasons import Reason

log = logging.getLogger(__name__)

Emit = Callable[[str, bytes | None, bytes], Awaitable[Any]]
_EVICT_EVERY_S = 5.0
_SURGE_BACKLOG_MAX = 10_000


def register_aggregator(
    app: faust.App,
    runtime: Runtime,
    metrics: PipelineMetrics,
    sink: InfluxSink,
    emit: Emit,
    clock: Callable[[], datetime],
    counts_table: Any,
    counts_written: dict[str, int],
) -> tuple[Any, Any]:
    """Adds the agent, its table and the flush timer to ``app``; returns (agent, table)."""
    p = runtime.settings.pipeline
    window = timedelta(seconds=p.window_s)
    lateness = timedelta(seconds=p.allowed_lateness_s)
    clean_topics = [f"{p.clean_topic_prefix}{s}" for s in p.raw_topics]
    source = app.topic(*clean_topics, partitions=p.topic_partitions)
    windows = app.Table(
        "agg-windows",
        default=None,
        partitions=p.topic_partitions,
        help="Per site and window: counts and the events they include",
    )
    written: dict[str, int] = {}  # window key -> version in InfluxDB (this process only)
    published: dict[str, set[str]] = {}  # window key -> series written for it
    last_evict = [time.monotonic()]
    detector = SurgeDetector(runtime.settings.surge, p.window_s, metrics, sink.crossings_per_minute)
    surge_backlog: list[str] = []  # surge points not written yet (InfluxDB down)

    async def to_dlq(reason: Reason, detail: str, data: bytes, message: Any) -> None:
        record = make_record(
            Rejected(reason, detail, None, stage=aggregate.STAGE),
            data,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            now=clock(),
            key=message.key,
        )
        await emit(p.dlq_topic, message.key, encode_record(record))
        metrics.dlq.labels(reason=reason.value, stage=aggregate.STAGE).inc()

    crossings: dict[tuple[str, str], Any] = {}  # (site, direction) -> metric child

    async def handle_batch(events: Sequence[Any]) -> list[str]:
        """Count a batch into its windows; each window changed is written once, on behalf of
        an event of its partition (a site's events all come from one clean partition)."""
        if not sink.healthy:
            # Back-pressure: while InfluxDB fails, consumption pauses between retries.
            await sink.wait_ready()
        now = clock()
        changed: dict[str, tuple[Any, aggregate.State]] = {}  # key -> (an event of it, state)
        cells: defaultdict[int, Counter[tuple[str, str]]] = defaultdict(Counter)
        outcomes = []
        for event in events:
            outcome = await aggregate_one(event, now, changed)
            cells[event.message.partition][(aggregate.STAGE, outcome)] += 1
            outcomes.append(outcome)
        for key, (event, state) in changed.items():
            with on_behalf_of(event):
                windows[key] = state  # counts and dedup ranges in one changelog record
        evict_now = time.monotonic() - last_evict[0] > _EVICT_EVERY_S
        if evict_now:
            last_evict[0] = time.monotonic()
        horizon = now - window - lateness * 2
        for partition, event in last_event_per_partition(events).items():
            with on_behalf_of(event):
                pipeline_counts.count_many(
                    counts_table, partition, now, p.window_s, cells[partition]
                )
                if evict_now:
                    evict(windows, written, published, partition, horizon)
                    pipeline_counts.evict(counts_table, counts_written, partition, horizon)
        return outcomes

    async def aggregate_one(
        event: Any, now: datetime, changed: dict[str, tuple[Any, aggregate.State]]
    ) -> str:
        data: bytes = event.value if isinstance(event.value, bytes) else b""
        message = event.message
        try:
            clean = CleanEvent.model_validate_json(data)
        except ValidationError:
            await to_dlq(Reason.SCHEMA_VIOLATION, "not a clean event", data, message)
            return Reason.SCHEMA_VIOLATION.value
        start = aggregate.window_start(clean.event_time, p.window_s)
        if start + window + lateness < now:
            metrics.late_events.labels(site=clean.site).inc()
            await to_dlq(
                Reason.LATE_BEYOND_WINDOW,
                f"window {start.isoformat()} closed more than {p.allowed_lateness_s} s ago",
                data,
                message,
            )
            return Reason.LATE_BEYOND_WINDOW.value
        key = aggregate.window_key(clean.site, start)
        state = windows.get(key)
        if state is None:
            state = aggregate.new_state(clean.site, start, message.partition)
            # Into the table's store now (its changelog record follows at the end of the
            # batch), so the rest of the batch and the flush timer see one state object.
            with on_behalf_of(event):
                windows[key] = state
        if not aggregate.add(state, clean):
            return "duplicate"
        # The state object counted into is the one written, whatever the store holds by then.
        changed[key] = (event, state)
        if clean.source == "checkpoint":
            direction = str(clean.payload["direction"])
            child = crossings.get((clean.site, direction))
            if child is None:
                child = metrics.crossings.labels(site=clean.site, direction=direction)
                crossings[(clean.site, direction)] = child
            child.inc()
        return "counted"

    @app.agent(source, concurrency=1)  # writes a table
    async def aggregate_agent(stream: Any) -> Any:
        async for outcomes in handled_batches(
            stream, handle_batch, max_events=p.batch_max_events, within_s=p.batch_within_s
        ):
            yield outcomes

    @app.timer(interval=p.flush_interval_s)  # type: ignore[untyped-decorator]
    async def flush() -> None:
        owned = {tp.partition for tp in app.assignor.assigned_actives()}
        await flush_windows(owned, windows, written, published, sink, runtime, metrics, emit)
        await flush_counts(owned, counts_table, counts_written, sink)
        await flush_surge(owned, windows, detector, surge_backlog, sink, clock())

    return aggregate_agent, windows


def evict(
    windows: Any,
    written: dict[str, int],
    published: dict[str, set[str]],
    partition: int,
    before: datetime,
) -> None:
    """Forget windows long closed and already in InfluxDB (only this event's partition: a
    table write goes to the changelog partition of the event being processed)."""
    cutoff = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    for key, state in list(windows.items()):
        if (
            state["partition"] == partition
            and state["start"] < cutoff
            and written.get(key) == state["version"]
        ):
            del windows[key]
            written.pop(key, None)
            published.pop(key, None)


async def flush_surge(
    owned: set[int],
    windows: Any,
    detector: SurgeDetector,
    backlog: list[str],
    sink: InfluxSink,
    now: datetime,
) -> None:
    """Score the minutes that just completed at owned sites; write their ``surge`` points."""
    if not sink.ready():
        return
    mine = [state for state in list(windows.values()) if state["partition"] in owned]
    detector.forget(detector.loaded - {str(state["site"]) for state in mine})
    try:
        backlog.extend(await detector.score_completed(mine, now))
        await sink.write(backlog)
    except (RetryableSinkError, ValueError, KeyError) as exc:
        # Not only InfluxDB being down: an unreadable history row must not stop the
        # pipeline either (a timer that raises crashes the Faust app).
        log.warning("surge scoring or its %d points deferred: %s", len(backlog), exc)
        del backlog[:-_SURGE_BACKLOG_MAX]  # bounded: old scores matter less than memory
        return
    except PermanentSinkError as exc:  # our own points: a bug, not data to keep retrying
        log.error("InfluxDB refused %d surge points: %s", len(backlog), exc)
    backlog.clear()


async def flush_counts(
    owned: set[int], counts_table: Any, written: dict[str, int], sink: InfluxSink
) -> int:
    """Write the pipeline counts InfluxDB does not have yet (retried on the next tick)."""
    if not sink.ready():
        return 0
    pending = pipeline_counts.pending(counts_table, owned, written)
    lines = [ln for key in pending for ln in pipeline_counts.points(counts_table[key])]
    try:
        await sink.write(lines)
    except RetryableSinkError as exc:
        log.warning("InfluxDB write of pipeline counts deferred: %s", exc)
        return 0
    except PermanentSinkError as exc:  # our own points: a bug, not data to keep retrying
        log.error("InfluxDB refused pipeline counts: %s", exc)
    written.update(pending)
    return len(lines)


async def flush_windows(
    owned: set[int],
    windows: Any,
    written: dict[str, int],
    published: dict[str, set[str]],
    sink: InfluxSink,
    runtime: Runtime,
    metrics: PipelineMetrics,
    emit: Emit,
) -> int:
    """Write every owned window whose version InfluxDB does not have yet; one batch."""
    if not sink.ready():
        return 0
    pending = {
        key: state["version"]
        for key, state in list(windows.items())
        if state["partition"] in owned and written.get(key) != state["version"]
    }
    if not pending:
        return 0
    k = runtime.policy.small_count_k
    by_window = {key: points_for(windows[key], k) for key in pending}
    lines = [ln for window_lines in by_window.values() for ln in window_lines]
    series = {key: {ln.split(" ", 1)[0] for ln in ls} for key, ls in by_window.items()}
    try:
        # Suppression can stop publishing a cell: its old point must go, or sums double it.
        # A window this process has not written yet may have stale points from an earlier
        # process: clear the site's points at that time first.
        for key, new in series.items():
            start = datetime.strptime(windows[key]["start"], "%Y-%m-%dT%H:%M:%S%z")
            if key not in published:
                await sink.delete(start, [f'site="{windows[key]["site"]}"'])
            elif stale := published[key] - new:
                await sink.delete(start, [series_predicate(sk) for sk in sorted(stale)])
        await sink.write(lines)
    except RetryableSinkError as exc:
        log.warning("InfluxDB write of %d windows deferred: %s", len(pending), exc)
        return 0
    except PermanentSinkError as exc:
        log.error("InfluxDB refused %d windows: %s", len(pending), exc)
        p = runtime.settings.pipeline
        for key in pending:
            record = make_record(
                Rejected(
                    Reason.SINK_REJECTED, f"HTTP {exc.status} for window {key}", None, stage="sink"
                ),
                "\n".join(points_for(windows[key], runtime.policy.small_count_k)).encode(),
                topic="influxdb",
                partition=None,
                offset=None,
                now=datetime.now(UTC),
            )
            await emit(p.dlq_topic, key.encode(), encode_record(record))
            metrics.dlq.labels(reason=Reason.SINK_REJECTED.value, stage="sink").inc()
    written.update(pending)
    published.update(series)
    return len(lines)


def series_predicate(series_key: str) -> str:
    """`crossings,direction=entry,mode=car` -> an InfluxDB delete predicate for that series."""
    measurement, *tags = series_key.split(",")
    parts = [f'_measurement="{measurement}"']
    # `policy` is a keyword of InfluxDB's delete predicates (HTTP 400); a window has one
    # policy, so the other tags name the series at that second already.
    parts += [f'{k}="{v}"' for k, v in (t.split("=", 1) for t in tags) if k != "policy"]
    return " AND ".join(parts)
