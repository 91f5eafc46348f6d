"""End-to-end latency at a fixed rate: event produced -> its contribution visible in InfluxDB.

One worker on topics and a bucket of their own. The simulator's mix, made and signed
beforehand (:func:`pregenerate`: event times as they would be live), is sent at ``rate``
events/s, recording the send time of every event that must be counted. A poller asks
InfluxDB for the bucket's total every ``poll_s``; latencies come from the two cumulative
curves (:func:`bench.report.latencies_from_curves`). Observation times are when InfluxDB's
answer arrived, so a latency is never understated; the resolution is the poll interval plus
the worker's flush interval (0.5 s by default).

The first ``warmup_s`` of traffic are sent and counted but not measured: a worker that has
just joined its group, and a producer that has just fetched its metadata, answer the first
seconds late (2026-12-04, quiet machine, one worker at 1,000 to 4,600 events/s: the first
fifth's median 3.3-5.5 s, every later fifth's 0.6-1.0 s, at any rate), which is start-up, not
the latency of a running pipeline. The figures with the warm-up are reported beside them.
"""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from hito.bench.cpu import us_per_event
from hito.bench.dataset import Mix, topic_set, with_bucket
from hito.bench.hito_run import free_port, start_profiler, stop_profiler
from hito.bench.probe import InfluxTotal, proc_sample
from hito.bench.report import latencies_from_curves, percentile
from hito.credentials import client_config
from hito.device.simulate.fleet import VALID, Fleet, FleetPlan, SimMessage
from hito.devices import DeviceRegistry
from hito.settings import HitoSettings
from hito.stack.worker_process import WorkerProcess


def measure_latency(
    settings: HitoSettings,
    registry: DeviceRegistry,
    run: str,
    workdir: Path,
    *,
    rate: float,
    seconds: float,
    partitions: int,
    mix: Mix,
    poll_s: float = 0.1,
    warmup_s: float = 10.0,
    drain_timeout_s: float = 60.0,
    py_spy: Path | None = None,
) -> dict[str, Any]:
    live = with_bucket(topic_set(settings, f"{run}-lat", partitions), f"hito-bench-{run}-lat")
    count = max(1, int(rate * (warmup_s + seconds)))
    plan = FleetPlan(
        count=count,
        seed=mix.seed + 1,
        bad_fraction=mix.bad_fraction,
        duplicate_fraction=mix.duplicate_fraction,
        out_of_order_fraction=mix.out_of_order_fraction,
        raw_topics=dict(live.pipeline.raw_topics),
    )
    worker = WorkerProcess.start(
        live, f"hito-bench-{run}-lat", free_port(), workdir / "hito-latency.log", register=False
    )
    generated_at = time.monotonic()
    messages = pregenerate(registry, plan, rate)
    generate_s = time.monotonic() - generated_at
    probe = InfluxTotal(live, "hito")
    observed: list[tuple[float, int]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            total = probe.total()
            observed.append((time.time(), total))
            stop.wait(poll_s)

    poller = threading.Thread(target=poll, daemon=True)
    sent_at: list[float] = []
    sent = 0
    warm = 0  # valid events sent during the warm-up (counted, not measured)
    profiler: subprocess.Popen[bytes] | None = None
    profile_path = workdir / "hito-latency.pyspy.txt"
    try:
        worker.wait_ready(timeout_s=120)
        cpu0 = proc_sample(worker.proc.pid).cpu_s
        if py_spy is not None:
            profiler = start_profiler(worker.proc.pid, py_spy, profile_path)
        producer = KafkaProducer(**client_config(live.kafka, "device"), acks="all", linger_ms=5)
        poller.start()
        started = time.monotonic()
        try:
            for i, msg in enumerate(messages):
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                at = time.time()
                producer.send(msg.topic, key=msg.key, value=msg.value)
                sent += 1
                if msg.expected == VALID:
                    sent_at.append(at)
                    if i < rate * warmup_s:
                        warm += 1
            producer.flush(timeout=60)
        finally:
            producer.close()
        send_s = time.monotonic() - started
        deadline = time.monotonic() + drain_timeout_s
        while not observed or observed[-1][1] < len(sent_at):
            if time.monotonic() > deadline or not worker.alive():
                break
            time.sleep(poll_s)
        sample = proc_sample(worker.proc.pid)
    finally:
        if profiler is not None:
            stop_profiler(profiler)
        stop.set()
        if poller.is_alive():
            poller.join(timeout=10)
        probe.close()
        worker.stop()
    every = latencies_from_curves(sent_at, list(observed))
    latencies = every[warm:]
    return {
        "rate_per_s": rate,
        "achieved_rate_per_s": round(sent / send_s, 1) if send_s > 0 else None,
        "seconds": seconds,
        "warmup_s": warmup_s,
        "sent": sent,
        "to_count": len(sent_at),
        "measured": len(sent_at) - warm,
        "counted": len(every),
        "p50_s": _r(percentile(latencies, 50)),
        "p95_s": _r(percentile(latencies, 95)),
        "p99_s": _r(percentile(latencies, 99)),
        "max_s": _r(max(latencies, default=None)),
        # Growing from fifth to fifth: a backlog (the worker does not keep up with the rate).
        "p50_by_fifth_s": [
            _r(percentile(latencies[i * len(latencies) // 5 : (i + 1) * len(latencies) // 5], 50))
            for i in range(5)
        ],
        "with_warmup": {
            "p50_s": _r(percentile(every, 50)),
            "p99_s": _r(percentile(every, 99)),
            "max_s": _r(max(every, default=None)),
        },
        "poll_s": poll_s,
        "generated_before_s": round(generate_s, 1),
        "worker_cpu_us_per_event": _r(us_per_event(sample.cpu_s - cpu0, sent)),
        "worker_peak_rss_mb": round(sample.peak_rss_mb, 1),
        "bucket": live.influxdb.bucket,
        "profile": str(profile_path) if py_spy is not None else None,
        "method": "cumulative curves: k-th counted event visible at the first InfluxDB answer "
        "(time of arrival) showing >= k events; percentiles over the events sent after the "
        "warm-up",
    }


def pregenerate(registry: DeviceRegistry, plan: FleetPlan, rate: float) -> list[SimMessage]:
    """The run's events, made and signed before it starts, each with the event time it would
    have had live (the i-th at ``i / rate`` seconds after the fleet's start).

    Made while sending (making and signing ~35 us an event, kafka-python's send the rest), at
    5,693 events/s (half of one worker's rate on 2026-12-04) the producer could send only
    5,000/s and took most of a core from the worker, which then fell behind (p50 7.4 s).
    Devices are other machines; the producer here only sends. Events are sent some seconds
    after their event time (the making and the worker's start), within the allowed lateness:
    every window is live."""
    started = datetime.now(UTC)
    offset_s = 0.0
    fleet = Fleet(registry, plan, started, clock=lambda: started + timedelta(seconds=offset_s))
    messages: list[SimMessage] = []
    for msg in fleet.messages():
        messages.append(msg)
        offset_s = len(messages) / rate
    return messages


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
