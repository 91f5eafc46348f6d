"""The peer: Hito's job written idiomatically in Quix Streams (runs in the bench venv).

raw topics (bytes) -> validate (Hito's stage) -> dedup (stateful filter, state per device key)
-> anonymise (Hito's stage) -> ``group_by`` site (a repartition topic, like Hito's clean
topics keyed by site) -> tumbling event-time window with ``reduce`` (the same cells as Hito's
aggregate stage) -> ``.current()`` -> a ``BatchingSink`` that writes each updated window's
points (Hito's ``points_for``, same small-count suppression) to InfluxDB at every checkpoint.

Rejected events are counted and dropped (no DLQ records). Besides the measurement points, each
window write carries one ``bench_window`` point (``events`` = events counted in that window),
which is what the harness sums to see when everything is visible.

Its CPU (``hito.bench.cpu``) runs from its first record to its last InfluxDB write, as its
time runs from its first record to the write that made every event visible (Quix's start and
stop are left out, as every contender's are). Runs as ``python -m
hito.bench.baselines.quix_peer CONFIG_JSON`` in the bench venv with only ``hito`` added to its
path (``hito.bench.contenders.peer_pythonpath``) and Hito's settings in the environment
(HITO_PIPELINE, ...); stops on SIGTERM and writes its own counters to
``CONFIG_JSON["stats_path"]``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from quixstreams import Application, State, message_context
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.sinks import BatchingSink, SinkBatch

from hito.bench.cpu import own_cpu_s
from hito.credentials import MECHANISM, user_for
from hito.pipeline.sinks.lines import line, points_for
from hito.pipeline.stages import aggregate, anonymise, dedup, validate
from hito.pipeline.stages.windows import parse_start, window_start
from hito.runtime import Runtime, limits_of, load_runtime
from hito.schemas.clean import CleanEvent
from hito.settings import load_settings


@dataclass
class Stats:
    first_at: float = 0.0  # wall clock, first record handled
    cpu_at_first: float = 0.0  # own_cpu_s() then
    cpu_at_last_write: float = 0.0  # own_cpu_s() after the last InfluxDB write
    consumed: int = 0
    rejected: int = 0
    duplicates: int = 0
    published: int = 0
    points: int = 0
    batches: list[int] = field(default_factory=list)
    last_write_at: float = 0.0


@dataclass(frozen=True)
class _Counted:
    """What ``aggregate.add`` reads of a clean event (the dict that crossed the repartition)."""

    device_id: str
    seq: int
    policy: str
    source: str
    payload: dict[str, Any]


def _count(state: aggregate.State, value: dict[str, Any]) -> aggregate.State:
    # Quix's checkpoints keep window state and offsets consistent, so the peer needs no
    # raw-offset marks (Hito keeps them for exactness across redeliveries): cleared, every
    # event counts.
    state["hw"] = {}
    v = value
    ev = _Counted(v["device_id"], v["seq"], v["policy"], v["source"], v["payload"])
    aggregate.add(state, cast(CleanEvent, ev), ("peer", 0))
    return state


class InfluxWindowSink(BatchingSink):  # type: ignore[misc]  # quixstreams is untyped here
    """Writes the latest state of every window updated since the last checkpoint."""

    def __init__(self, url: str, token: str, org: str, bucket: str, k: int, stats: Stats) -> None:
        super().__init__()
        self._conf = (url, token, org, bucket)
        self._k = k
        self._stats = stats
        self._client: InfluxDBClient | None = None
        self._api: Any = None

    def setup(self) -> None:
        url, token, org, _ = self._conf
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=10_000)
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, batch: SinkBatch) -> None:
        latest: dict[str, aggregate.State] = {}
        for item in batch:
            state = item.value["value"]
            latest[aggregate.window_name(state["site"], _start(state))] = state
        lines: list[str] = []
        for state in latest.values():
            lines += points_for(state, self._k)
            tags = {"site": state["site"], "policy": state["policy"] or "unknown"}
            lines.append(line("bench_window", tags, {"events": state["version"]}, _start(state)))
        _, _, org, bucket = self._conf
        self._api.write(bucket=bucket, org=org, record=lines, write_precision=WritePrecision.S)
        self._stats.points += len(lines)
        self._stats.batches.append(len(lines))
        self._stats.last_write_at = time.time()
        self._stats.cpu_at_last_write = own_cpu_s()


def _start(state: aggregate.State) -> datetime:
    return parse_start(state["start"])


def build(app: Application, runtime: Runtime, sink: InfluxWindowSink, stats: Stats) -> None:
    p = runtime.settings.pipeline
    source_of = dict((topic, src) for src, topic in p.raw_topics.items())
    frames = [
        app.dataframe(app.topic(t, value_deserializer="bytes", key_deserializer="str"))
        for t in p.raw_topics.values()
    ]
    sdf = frames[0]
    for other in frames[1:]:
        sdf = sdf.concat(other)

    def check(raw: bytes, key: str | None, timestamp: int, headers: Any) -> Any:
        if not stats.first_at:
            stats.first_at = time.time()
            stats.cpu_at_first = own_cpu_s()
        stats.consumed += 1
        ctx = message_context()
        result = validate.validate(
            raw,
            registry=runtime.registry,
            limits=limits_of(p),
            now=datetime.now(UTC),
            expected_source=source_of.get(ctx.topic),
        )
        if isinstance(result, validate.Rejected) or result.event.device_id != key:
            stats.rejected += 1
            return None
        return result.event

    def fresh(event: Any, state: State) -> bool:
        stored = state.get("seq")
        before = dedup.SeqState.from_json(stored) if stored is not None else None
        after, seen = dedup.observe(before, event.seq, p.dedup_window)
        if seen is not dedup.SeqOutcome.NEW:
            stats.duplicates += 1
            return False
        state.set("seq", after.to_json())
        return True

    def clean(event: Any) -> dict[str, Any]:
        stats.published += 1
        out = anonymise.anonymise(event, runtime.policy, runtime.key_store.lookup).clean
        return out.model_dump(mode="json", by_alias=True)

    def first(value: dict[str, Any]) -> aggregate.State:
        at = datetime.fromisoformat(value["event_time"])
        start = window_start(at, p.window_s)
        return _count(aggregate.new_state(value["site"], start), value)

    sdf = sdf.apply(check, metadata=True).filter(lambda ev: ev is not None)
    sdf = sdf.filter(fresh, stateful=True).apply(clean)
    sdf = sdf.set_timestamp(
        lambda value, key, ts, headers: int(
            datetime.fromisoformat(value["event_time"]).timestamp() * 1000
        )
    )
    sdf = sdf.group_by(lambda value: value["site"], name="site")
    sdf = (
        sdf.tumbling_window(
            timedelta(seconds=p.window_s), grace_ms=timedelta(seconds=p.allowed_lateness_s)
        )
        .reduce(reducer=_count, initializer=first)
        .current()
    )
    sdf.sink(sink)


def main() -> None:
    config = json.loads(sys.argv[1])
    settings = load_settings()
    runtime = load_runtime(settings)
    user = user_for(settings.kafka, config.get("kafka_role", "admin"))
    connection = ConnectionConfig(
        bootstrap_servers=settings.kafka.bootstrap,
        security_protocol=settings.kafka.security_protocol.lower(),
        sasl_mechanism=MECHANISM,
        sasl_username=user.name,
        sasl_password=user.password.get_secret_value(),
    )
    app = Application(
        broker_address=connection,
        consumer_group=config["group"],
        auto_offset_reset="earliest",
        state_dir=config["state_dir"],
        # Hito re-writes open windows every flush_interval_s (0.25 s): checkpoint as often.
        commit_interval=settings.pipeline.flush_interval_s,
        processing_guarantee="at-least-once",
        loglevel="WARNING",
    )
    stats = Stats()
    i = settings.influxdb
    token = config["influx_token"]
    sink = InfluxWindowSink(i.url, token, i.org, i.bucket, runtime.policy.small_count_k, stats)
    build(app, runtime, sink, stats)
    started_cpu = own_cpu_s()
    app.run()
    out = {
        **stats.__dict__,
        "cpu_s": stats.cpu_at_last_write - stats.cpu_at_first,
        "cpu_s_whole_run": own_cpu_s() - started_cpu,  # start and stop included
        "peak_rss_mb": _peak_rss_mb(),
    }
    Path(config["stats_path"]).write_text(json.dumps(out))


def _peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM). Not ru_maxrss: Linux keeps it across execve,
    so a child started from the (large) harness would report the harness's peak."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    main()
