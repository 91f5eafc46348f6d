"""Hito on the shared topics: ``hito worker`` child processes (one app id, so they share the
partitions), measured from outside through /proc, their /metrics and InfluxDB."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from hito.bench.cpu import tree_cpu_s
from hito.bench.dataset import Produced, with_bucket
from hito.bench.probe import InfluxTotal, ProcSample, proc_sample
from hito.bench.report import Result
from hito.settings import HitoSettings
from hito.stack.worker_process import WorkerProcess

_READY = b"Worker]: Ready"


def free_port() -> int:
    """An unused loopback port for a bench worker's /metrics, outside the ports Prometheus
    scrapes (19100-19103): bench workers must not collide with the demo's or the tests', nor
    be evaluated by the stack's alert rules."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _samples(worker: WorkerProcess) -> dict[str, float]:
    """Every sample of the worker's metrics, summed over labels, by sample name."""
    import httpx

    try:
        text = httpx.get(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name
            if s.name.endswith("_bucket"):
                key = f"{s.name}{{le={s.labels.get('le')}}}"
            out[key] = out.get(key, 0.0) + s.value
    return out


def _merged(workers: list[WorkerProcess]) -> dict[str, float]:
    out: dict[str, float] = {}
    for w in workers:
        for k, v in _samples(w).items():
            out[k] = out.get(k, 0.0) + v
    return out


def start_profiler(pid: int, py_spy: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "100",
         "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    if profiler.poll() is None:
        profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=30)
    except subprocess.TimeoutExpired:
        profiler.kill()


def run_hito(
    data: HitoSettings,
    produced: Produced,
    run: str,
    workdir: Path,
    workers: int,
    timeout_s: float,
    py_spy: Path | None = None,
) -> Result:
    ports = [free_port() for _ in range(workers)]
    name = f"hito-{workers}w"
    settings = with_bucket(data, f"hito-bench-{run}-{workers}w")
    app_id = f"hito-bench-{run}-{workers}w"
    procs = [
        # Measured workers stay out of the stack's Prometheus (no target file).
        WorkerProcess.start(settings, app_id, port, workdir / f"{name}-{i}.log", register=False)
        for i, port in enumerate(ports)
    ]
    probe = InfluxTotal(settings, "hito")
    profiler: subprocess.Popen[bytes] | None = None
    profile_path = workdir / f"{name}.pyspy.txt"
    try:
        # Workers read the pre-produced data as soon as they are ready, so readiness is
        # watched in the same loop as progress (a second worker may join while the first runs).
        ready: dict[int, ProcSample] = {}
        # Each worker's CPU when its measured span began: its last reading known to precede
        # the first event (taken before a scrape that showed none), or its readiness when it
        # joined later. Startup and the group join stay out, as for every contender.
        cpu_start: dict[int, float] = {}
        first_at = last_influx = last_mark = last_scrape = 0.0
        handled = visible = 0
        timeline: list[tuple[float, int]] = []  # (seconds since the first event, handled)
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            now = time.time()
            for i, w in enumerate(procs):
                if i not in ready and _READY in w.log_path.read_bytes():
                    ready[i] = proc_sample(w.proc.pid)
                    cpu_start[i] = ready[i].cpu_s
                    if i == 0 and py_spy is not None:
                        profiler = start_profiler(w.proc.pid, py_spy, profile_path)
            # Each scrape costs the worker a /metrics rendering: 10 Hz until the first event
            # (the start time), then 1 Hz, and 10 Hz again near the end (the end time).
            near_end = handled >= 0.95 * produced.total
            if ready and (not first_at or near_end or now - last_scrape >= 1.0):
                last_scrape = now
                before = {i: tree_cpu_s(procs[i].proc.pid) for i in ready} if not first_at else {}
                handled = int(sum(w.metric("hito_events_total") for w in procs))
                if not handled:
                    cpu_start |= before
            if handled and not first_at:
                first_at = now
            if first_at and now - last_mark >= 1.0:
                last_mark = now
                timeline.append((round(now - first_at, 2), handled))
            if handled >= produced.total and now - last_influx >= 0.2:
                last_influx = now
                visible = probe.total()
                if visible >= produced.valid:
                    done_at = time.time()
                    break
            if not all(w.alive() for w in procs):
                raise RuntimeError(f"{name}: a worker died:\n" + procs[0].log_tail())
            if len(ready) < workers and time.monotonic() > started + 120:
                raise RuntimeError(f"{name}: workers not ready in 120 s:\n" + procs[0].log_tail())
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name}: {handled} of {produced.total} handled, {visible} of "
                    f"{produced.valid} visible after {timeout_s} s"
                )
            time.sleep(0.1)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        samples = [proc_sample(w.proc.pid) for w in procs]
        time.sleep(1.5)  # one more flush: the final sink counters
        metrics = _merged(procs)
        outcomes: dict[str, float] = {}
        for w in procs:
            for k, v in w.metric_by("hito_events_total", "outcome").items():
                outcomes[k] = outcomes.get(k, 0.0) + v
    finally:
        probe.close()
        for w in procs:
            w.stop()
        if profiler is not None:
            stop_profiler(profiler)
    seconds = done_at - first_at
    # A worker that never got ready did no work.
    cpu_s = sum(samples[i].cpu_s - start for i, start in cpu_start.items())
    batches = metrics.get("hito_sink_batch_points_count", 0.0)
    details: dict[str, Any] = {
        "bucket": settings.influxdb.bucket,
        "app_id": app_id,
        "workers": workers,
        "outcomes": {k: int(v) for k, v in sorted(outcomes.items())},
        "dlq": int(metrics.get("hito_dlq_total", 0)),
        "visible_in_influxdb": visible,
        "handled": handled,
        "redelivered": handled - produced.total,
        "rss_mb_ready": round(max(s.rss_mb for s in ready.values()), 1),
        "rss_mb_end": round(max(s.rss_mb for s in samples), 1),
        "peak_rss_mb_per_worker": [round(s.peak_rss_mb, 1) for s in samples],
        "write_batches": int(batches),
        "write_batch_points_mean": round(
            metrics.get("hito_sink_batch_points_sum", 0.0) / batches, 1
        )
        if batches
        else 0,
        "write_batch_points_buckets": {
            k.split("le=")[1].rstrip("}"): int(v)
            for k, v in metrics.items()
            if k.startswith("hito_sink_batch_points_bucket")
        },
        "write_seconds_mean": round(metrics.get("hito_sink_write_seconds_sum", 0.0) / batches, 4)
        if batches
        else 0,
    }
    details["timeline"] = timeline
    if profiler is not None:
        details["profile"] = str(profile_path)
    return Result(
        name=name,
        # Every produced event, whatever a rebalance made a worker read twice (redelivered).
        events=produced.total,
        seconds=seconds,
        complete=handled >= produced.total and visible == produced.valid,
        cpu_s=cpu_s,
        peak_rss_mb=max(s.peak_rss_mb for s in samples),
        points=int(metrics.get("hito_sink_points_total", 0)),
        details=details,
    )
