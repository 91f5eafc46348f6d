"""``hito bench``: one run, one data set, every contender, one report.

Order: produce the mix once into a fresh topic set; the consume-only ceiling; the Faust floor
(Hito's Faust app taking and acking each record on Faust's path, nothing else); the lane floor
(Hito's batch lane taking and acknowledging each batch, nothing else); Hito with one worker,
then two; the Quix Streams peer; the naive pipeline (time-boxed); the latency run at half of
Hito's measured one-worker rate (its own topics); the 1M devices state model. See
bench/README.md for what each figure means.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError
from rich.console import Console

from hito.access.kafka import admin_client
from hito.bench import dataset
from hito.bench.contenders import bench_python, run_ceiling, run_floor, run_naive, run_quix
from hito.bench.hito_run import run_hito
from hito.bench.latency import measure_latency
from hito.bench.profile import summarise_file
from hito.bench.report import Result, figures_of, render, reported, verdicts
from hito.runtime import load_runtime
from hito.settings import HitoSettings

CONTENDERS = ("ceiling", "faust-floor", "lane-floor", "hito", "quix", "naive", "latency", "state")


@dataclass(frozen=True)
class BenchOptions:
    events: int = 20_000
    only: tuple[str, ...] = CONTENDERS
    workers: tuple[int, ...] = (1, 2)
    out: Path | None = None
    partitions: int = 4
    mix: dataset.Mix = field(default_factory=dataset.Mix)
    naive_max_s: float = 60.0
    latency_s: float = 30.0
    latency_warmup_s: float = 10.0  # sent and counted before the measured seconds (latency.py)
    latency_rate: float = 0.0  # 0: half of Hito's one-worker rate measured in this run
    state_devices: int = 1_000_000
    state_identities: int = 1_000_000
    profile: bool = False
    timeout_s: float = 900.0
    keep: bool = False  # keep the run's topics and buckets


def machine() -> dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions(settings: HitoSettings) -> dict[str, str]:
    from importlib.metadata import version

    out = {p: version(p) for p in ("faust-streaming", "aiokafka", "kafka-python")}
    out |= {"influxdb-client": version("influxdb-client"), "kafka": settings.kafka.version}
    out["influxdb"] = settings.influxdb.version
    python = bench_python()
    if python.exists():
        code = "import importlib.metadata as m; print(m.version('quixstreams'))"
        run = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
        out["quixstreams"] = run.stdout.strip() or "not installed"
    return out


def cleanup(settings: HitoSettings, run: str, workdir: Path, console: Console) -> None:
    """Delete the run's topics (raw, clean, DLQ, Faust's and Quix's internal ones), buckets,
    and the local state of its Faust apps and of the Quix peer."""
    for path in [
        workdir / "quix-state",
        *(settings.state_dir / "faust").glob(f"hito-bench-{run}-*"),
    ]:
        shutil.rmtree(path, ignore_errors=True)
    admin = admin_client(settings.kafka)
    try:
        mine = [t for t in admin.list_topics() if f"bench-{run}" in t]
        if mine:
            admin.delete_topics(mine)
    except KafkaError as exc:
        console.log(f"bench: could not delete the topics of run {run}: {exc}")
    finally:
        admin.close()
    from influxdb_client import InfluxDBClient

    i = settings.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        api = client.buckets_api()
        for bucket in api.find_buckets(limit=100).buckets or []:
            if bucket.name.startswith(f"hito-bench-{run}-"):
                api.delete_bucket(bucket)


def run_paths(
    state_dir: Path, started_at: datetime, run: str, out: Path | None
) -> tuple[Path, Path]:
    """The run's own directory (made empty) and the report's path. Logs, profiles and state
    go to the run's directory whatever ``--out`` says: worker logs are appended to, and a
    "Worker ready" left by an earlier run in a shared directory (``--out /tmp/x.json``) made
    the RSS at readiness a sample of a process that had just started (3.5-5.7 MB instead of
    ~128), so the modelled RSS read 173 MB instead of ~300 (2026-12-04)."""
    workdir = state_dir / "bench" / f"{started_at:%Y%m%dT%H%M%SZ}-{run}"
    workdir.mkdir(parents=True)
    report = out or workdir / "report.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    return workdir, report


def run_bench(settings: HitoSettings, options: BenchOptions, console: Console) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    started_at = datetime.now(UTC)
    workdir, out = run_paths(settings.state_dir, started_at, run, options.out)
    runtime = load_runtime(settings)
    results: dict[str, Result] = {}
    errors: dict[str, str] = {}
    only = set(options.only)
    latency: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None

    def attempt(name: str, fn: Any) -> Any:
        console.log(f"bench: {name} ...")
        try:
            value = fn()
        except (RuntimeError, TimeoutError, OSError, KafkaError) as exc:
            errors[name] = str(exc)[-2000:]
            console.log(f"[red]bench: {name} failed:[/] {str(exc)[-500:]}")
            return None
        if isinstance(value, Result):
            results[value.name] = value
            console.log(
                f"bench: {value.name}: {value.events:,} events in {value.seconds:.2f} s = "
                f"{value.events_per_s:,.0f}/s, {value.cpu_us_per_event or 0:,.1f} µs CPU/event"
            )
        return value

    data = dataset.topic_set(settings, run, options.partitions)
    console.log(f"bench: run {run}: producing {options.events:,} events")
    produced = dataset.produce(data, runtime.registry, options.events, options.mix, console)
    try:
        if "ceiling" in only:
            attempt("ceiling", lambda: run_ceiling(data, produced, run, workdir, options.timeout_s))
        for floor in ("faust-floor", "lane-floor"):
            if floor in only:
                attempt(
                    floor,
                    lambda floor=floor: run_floor(
                        floor, data, produced, run, workdir, options.timeout_s
                    ),
                )
        if "hito" in only:
            py_spy = bench_python().parent / "py-spy" if options.profile else None
            for n in options.workers:
                spy = py_spy if n == options.workers[0] else None
                attempt(
                    f"hito-{n}w",
                    lambda n=n, spy=spy: run_hito(
                        data, produced, run, workdir, n, options.timeout_s, spy
                    ),
                )
        if "quix" in only:
            attempt("quix", lambda: run_quix(data, produced, run, workdir, options.timeout_s))
        if "naive" in only:
            attempt("naive", lambda: run_naive(data, produced, run, workdir, options.naive_max_s))
        if "latency" in only and options.latency_s > 0:
            one = results.get("hito-1w")
            rate = options.latency_rate or (0.5 * one.events_per_s if one else 0.0)
            if rate > 0:
                latency = attempt(
                    "latency",
                    lambda: measure_latency(
                        settings,
                        runtime.registry,
                        run,
                        workdir,
                        rate=rate,
                        seconds=options.latency_s,
                        warmup_s=options.latency_warmup_s,
                        partitions=options.partitions,
                        mix=options.mix,
                        py_spy=bench_python().parent / "py-spy" if options.profile else None,
                    ),
                )
            else:
                errors["latency"] = "no rate: Hito's one-worker run did not complete"
        if "state" in only and options.state_devices > 0:
            state = attempt("state", lambda: state_model(options, workdir, results))
    finally:
        if not options.keep:
            cleanup(settings, run, workdir, console)
    for r in results.values():
        if "profile" in r.details:
            profile = summarise_file(Path(r.details["profile"]))
    profile_live = None
    if latency and latency.get("profile"):
        profile_live = summarise_file(Path(latency["profile"]))
    figures = figures_of(results, latency, state)
    report: dict[str, Any] = {
        "run": run,
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(UTC) - started_at).total_seconds(), 1),
        "command": shlex.join(sys.argv),
        "out": str(out),
        "machine": machine(),
        "versions": versions(settings),
        "options": {
            **{k: v for k, v in options.__dict__.items() if k not in ("mix", "out")},
            "mix": options.mix.__dict__,
        },
        "data": {
            "topics": dict(data.pipeline.raw_topics),
            "partitions": options.partitions,
            "allowed_lateness_s": data.pipeline.allowed_lateness_s,
            "produced": produced.__dict__,
        },
        "results": {name: r.as_dict() for name, r in results.items()},
        "latency": latency,
        "state": state,
        "profile": profile,
        "profile_live": profile_live,
        "figures": {k: None if v is None else round(v, 4) for k, v in figures.items()},
        "targets": verdicts(figures),
        "reported": reported(figures),
        "errors": errors,
    }
    out.write_text(json.dumps(report, indent=2, default=str))
    render(report, console)
    return report


def state_model(options: BenchOptions, workdir: Path, results: dict[str, Result]) -> dict[str, Any]:
    """The state model in a fresh process; the worker's RSS is its idle RSS plus the growth."""
    path = workdir / "state.json"
    subprocess.run(
        [sys.executable, "-m", "hito.bench.state_rss", str(options.state_devices),
         str(options.state_identities), str(path)],
        check=True,
        timeout=900,
    )  # fmt: skip
    state: dict[str, Any] = json.loads(path.read_text())
    one = results.get("hito-1w")
    idle = one.details.get("rss_mb_ready") if one else None
    if idle is None:
        idle = state["steps"][0]["rss_mb"]
        state["baseline"] = "the model process after importing the worker's modules"
    else:
        state["baseline"] = "RSS of the one-worker Hito process when it became ready"
    state["baseline_rss_mb"] = idle
    state["modelled_worker_rss_mb"] = round(idle + state["state_growth_mb"], 1)
    state["label"] = (
        f"modelled: worker idle RSS + RSS growth of a process holding the worker's per-device "
        f"state for {state['devices']:,} devices (one event each) and having pseudonymised "
        f"{state['identities']:,} identities; not a running worker"
    )
    return state
