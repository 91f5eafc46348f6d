"""`hito demo`: devices publishing, bad events rejected, privacy applied, dashboards' data
filling, a surge detected and paged — on the local stack, in a few minutes.

Steps: the stack is up (``make demo`` ran ``hito up``); synthetic crossing history gives the
surge detector a seasonal baseline; one worker starts on a scraped metrics port; the simulated
fleet of the reference crossing sends at ``rate`` with bad events, duplicates and one surge
at Chacalluta; the demo waits until the worker has processed everything and the surge page
has resolved, then writes ``summary.json`` and ``demo.png`` (report.py).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from rich.console import Console

from hito.access.topics import ensure_topics
from hito.credentials import client_config
from hito.demo.history import history_lines, repeat_history_lines
from hito.device.simulate.fleet import Fleet, FleetPlan, SimMessage
from hito.device.simulate.runner import send_messages
from hito.runtime import Runtime
from hito.stack.worker_process import WorkerProcess, free_port

SURGE_SITE = "chacalluta"


@dataclass(frozen=True)
class DemoPlan:
    rate: float = 40.0  # messages per second (the surge adds to it)
    normal_s: float = 90.0
    surge_s: float = 150.0  # 0: no surge
    after_s: float = 60.0
    surge_factor: float = 5.0
    bad_fraction: float = 0.04
    duplicate_fraction: float = 0.03
    out_of_order_fraction: float = 0.01
    seed: int = 2026
    settle_timeout_s: float = 240.0  # waiting for the drain and the surge page to resolve

    @property
    def duration_s(self) -> float:
        return self.normal_s + self.surge_s + self.after_s


@dataclass
class DemoRun:
    started_at: datetime
    finished_at: datetime
    sent: Counter[str]  # expected outcome -> messages
    sent_valid_by_source: Counter[str]
    worker_metrics: dict[str, float]  # "metric{labels}" -> value, as scraped at the end
    worker: WorkerProcess | None  # still running when keep_running


def _scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out = {}
    for row in text.splitlines():
        if row.startswith("hito_") and " " in row:
            name, value = row.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _counting(
    messages: Iterator[SimMessage], sent: Counter[str], valid: Counter[str], runtime: Runtime
) -> Iterator[SimMessage]:
    source_of = {topic: src for src, topic in runtime.settings.pipeline.raw_topics.items()}
    for m in messages:
        sent[m.expected] += 1
        if m.expected == "valid":
            valid[source_of[m.topic]] += 1
        yield m


def run_demo(
    runtime: Runtime,
    plan: DemoPlan,
    log_dir: Path,
    console: Console,
    *,
    keep_running: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> DemoRun:
    say = on_stage or (lambda text: console.print(f"[bold cyan]demo:[/] {text}"))
    settings = runtime.settings
    ensure_topics(settings)
    started = datetime.now(UTC)
    valid_fraction = 1.0 - plan.bad_fraction - plan.duplicate_fraction
    say("writing 4 weeks of synthetic crossing history (the surge detector's baseline)")
    i = settings.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=i.bucket,
            record=history_lines(
                runtime.registry, plan.rate, started, valid_fraction=valid_fraction
            )
            + repeat_history_lines(runtime.registry, started, k=runtime.policy.small_count_k),
            write_precision=WritePrecision.S,
        )
    port = free_port()
    say(f"starting a worker (metrics on 127.0.0.1:{port}, log {log_dir / 'worker.log'})")
    log_dir.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess.start(
        settings, f"hito-demo-{uuid.uuid4().hex[:6]}", port, log_dir / "worker.log"
    )
    try:
        worker.wait_ready(timeout_s=120)
        fleet_plan = FleetPlan(
            count=int(plan.rate * plan.duration_s),
            seed=plan.seed,
            bad_fraction=plan.bad_fraction,
            duplicate_fraction=plan.duplicate_fraction,
            out_of_order_fraction=plan.out_of_order_fraction,
            surge_site=SURGE_SITE if plan.surge_s else None,
            surge_factor=plan.surge_factor,
            surge_start_s=plan.normal_s,
            surge_duration_s=plan.surge_s,
            raw_topics=dict(settings.pipeline.raw_topics),
        )
        fleet = Fleet(runtime.registry, fleet_plan, started, clock=lambda: datetime.now(UTC))
        sent: Counter[str] = Counter()
        valid: Counter[str] = Counter()
        say(
            f"the fleet of the reference crossing sends {plan.rate:.0f}/s for "
            f"{plan.duration_s:.0f} s"
            + (
                f"; Chacalluta surges x{plan.surge_factor:.0f} from {plan.normal_s:.0f} s "
                f"for {plan.surge_s:.0f} s"
                if plan.surge_s
                else ""
            )
        )
        # In this thread: a failure to send (Kafka gone) ends the demo with its error.
        send_messages(
            _counting(fleet.messages(), sent, valid, runtime),
            producer_config=client_config(settings.kafka, "device"),
            total=fleet_plan.count,
            rate=plan.rate,
            console=console,
        )
        say("waiting for the worker to drain (and the surge page to resolve)")
        _settle(worker, sent, valid["checkpoint"], plan, settings.pager_port, started)
        metrics = _scrape(port)
    except BaseException:
        worker.stop()
        raise
    if not keep_running:
        worker.stop()
    return DemoRun(
        started, datetime.now(UTC), sent, valid, metrics, worker if keep_running else None
    )


def _settle(
    worker: WorkerProcess,
    sent: Counter[str],
    crossings: int,
    plan: DemoPlan,
    pager_port: int,
    since: datetime,
) -> None:
    """Until every sent event is accounted for and every crossing aggregated, InfluxDB has had
    a few flushes, and (if there was a surge) its page has resolved — or the timeout passes."""
    deadline = time.monotonic() + plan.settle_timeout_s
    total = sum(sent.values())
    while time.monotonic() < deadline and (
        worker.metric("hito_events_total") < total
        or worker.metric("hito_crossings_total") < crossings
    ):
        time.sleep(1)
    time.sleep(3)  # the flush timer writes every second
    while plan.surge_s and time.monotonic() < deadline:
        pages = httpx.get(f"http://127.0.0.1:{pager_port}/pages", timeout=5).json()
        states = [
            p["status"]
            for p in pages
            if p["alertname"] == "CheckpointSurge"
            and p["site"] == SURGE_SITE
            and datetime.fromisoformat(p["received_at"]) >= since
        ]
        # This demo's surge paged, and that page has resolved since.
        if "firing" in states and "resolved" in states[states.index("firing") :]:
            return
        time.sleep(2)
