"""`hito demo`: devices publishing, bad events rejected, privacy applied, dashboards' data
filling, a surge detected and paged, an hour revised by a late upload — on the local stack,
in a few minutes.

Steps: the stack is up (``make demo`` ran ``hito up``); synthetic crossing history gives the
surge detector a seasonal baseline; one worker starts on a scraped metrics port (the same app
as the last demo's, continuity.py); the simulated fleet of the reference crossing sends at
``rate`` with bad events, duplicates and one surge at Chacalluta, while a Santa Rosa
terminal's uplink is down for two minutes and its events, spread over the hour before it
reconnects, arrive late (revised.py); the demo waits until the worker has processed
everything, the revisions are in InfluxDB and the surge page has resolved, then writes
``summary.json`` and ``demo.png`` (report.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from rich.console import Console

from hito.access.topics import ensure_topics
from hito.credentials import client_config
from hito.demo import continuity, influx
from hito.demo.history import history_lines, repeat_history_lines
from hito.demo.revised import Outage, Revision, added_by_run
from hito.device.simulate.fleet import VALID, Fleet, FleetPlan, SimMessage
from hito.device.simulate.runner import send_messages
from hito.devices import DeviceRegistry
from hito.ops.pager.pages import Page, paged_and_resolved
from hito.runtime import Runtime
from hito.stack.base import prometheus_query
from hito.stack.worker_process import WorkerProcess, free_port

SURGE_SITE = "chacalluta"
# A terminal of the other site: the surge's story (Chacalluta) stays as it was.
OFFLINE_DEVICE = "pe-santarosa-ckpt-02"


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
    # False: checkpoints weigh as in a daytime hour whatever the clock says (a test's offline
    # terminal holds ~55 events at any hour; at 01:00 in Arica it held 10: CI, 2026-12-04).
    daily_rhythm: bool = True
    settle_timeout_s: float = 240.0  # waiting for the drain and the surge page to resolve
    # The terminal whose uplink is down from offline_after_s for offline_for_s (None: no
    # outage); its held events are spread over the offline_span_s before it reconnects.
    offline_device: str | None = OFFLINE_DEVICE
    offline_after_s: float = 30.0
    offline_for_s: float = 120.0
    offline_span_s: float = 3600.0

    @property
    def duration_s(self) -> float:
        return self.normal_s + self.surge_s + self.after_s

    def revisable_from(self, fleet_started: datetime) -> datetime:
        """A minute before which none of the offline terminal's held events can fall."""
        reconnect = min(self.offline_after_s + self.offline_for_s, self.duration_s)
        first = fleet_started + timedelta(seconds=reconnect - self.offline_span_s)
        return (first - timedelta(minutes=2)).replace(second=0, microsecond=0)

    def outage(self, registry: DeviceRegistry) -> Outage | None:
        if self.offline_device is None:
            return None
        device = registry.get(self.offline_device)
        if device is None or device.kind != "checkpoint" or device.revoked:
            raise ValueError(f"{self.offline_device} is not an active checkpoint terminal")
        # Offline past the run's end, it reconnects when the run ends (the fleet's last step).
        down_for = min(self.offline_for_s, max(0.0, self.duration_s - self.offline_after_s))
        return Outage(
            self.offline_device, device.site, self.offline_after_s, down_for, self.offline_span_s
        )


@dataclass
class DemoRun:
    started_at: datetime
    finished_at: datetime
    sent: Counter[str]  # expected outcome -> messages
    sent_valid_by_source: Counter[str]
    worker_metrics: dict[str, float]  # "metric{labels}" -> value, as scraped at the end
    worker: WorkerProcess | None  # still running when keep_running
    app_id: str = ""
    # Valid crossings sent, per site and window start (the minute InfluxDB stamps them with).
    sent_crossings: Counter[tuple[str, datetime]] = field(default_factory=Counter)
    outage: Outage | None = None
    # The offline terminal's valid crossings per window start, as it uploaded them late.
    held_crossings: Counter[datetime] = field(default_factory=Counter)
    reconnected_at: datetime | None = None  # the offline terminal's backlog went out
    revisable_from: datetime | None = None  # see DemoPlan
    # Read before the fleet sent anything: the outage site's crossings per minute in the
    # revision window, and every revisions point (cumulative: revised.added_by_run).
    crossings_before: dict[datetime, int] = field(default_factory=dict)
    revisions_before: list[Revision] = field(default_factory=list)


def _scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out = {}
    for row in text.splitlines():
        if row.startswith("hito_") and " " in row:
            name, value = row.rsplit(" ", 1)
            out[name] = float(value)
    return out


@dataclass
class _Tally:
    """What the fleet sent, as it goes."""

    sent: Counter[str] = field(default_factory=Counter)  # expected outcome -> messages
    valid: Counter[str] = field(default_factory=Counter)  # source -> valid messages
    crossings: Counter[tuple[str, datetime]] = field(default_factory=Counter)
    held: Counter[datetime] = field(default_factory=Counter)  # the offline terminal's
    reconnected_at: datetime | None = None


def _counting(
    messages: Iterator[SimMessage], tally: _Tally, runtime: Runtime
) -> Iterator[SimMessage]:
    source_of = {topic: src for src, topic in runtime.settings.pipeline.raw_topics.items()}
    window_s = runtime.settings.pipeline.window_s
    for m in messages:
        tally.sent[m.expected] += 1
        if m.buffered and tally.reconnected_at is None:
            tally.reconnected_at = datetime.now(UTC)
        if m.expected == VALID:
            source = source_of[m.topic]
            tally.valid[source] += 1
            if source == "checkpoint":
                when = datetime.fromisoformat(orjson.loads(m.value)["event_time"])
                ts = int(when.timestamp())
                minute = datetime.fromtimestamp(ts - ts % window_s, UTC)
                tally.crossings[(m.site, minute)] += 1
                if m.buffered:
                    tally.held[minute] += 1
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
    outage = plan.outage(runtime.registry)
    memory_file = log_dir / continuity.MEMORY_FILE
    memory = continuity.recall(memory_file, settings)
    if memory.new:
        # A new app would read the topics from their start: other runs' events, not ours.
        continuity.start_at_end(settings, memory.app_id)
    port = free_port()
    say(
        f"starting a worker (app {memory.app_id}, metrics on 127.0.0.1:{port}, "
        f"log {log_dir / 'worker.log'})"
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess.start(settings, memory.app_id, port, log_dir / "worker.log")
    tally = _Tally()
    try:
        worker.wait_ready(timeout_s=120)
        fleet_plan = FleetPlan(
            count=int(plan.rate * plan.duration_s),
            seed=plan.seed,
            bad_fraction=plan.bad_fraction,
            duplicate_fraction=plan.duplicate_fraction,
            out_of_order_fraction=plan.out_of_order_fraction,
            daily_rhythm=plan.daily_rhythm,
            surge_site=SURGE_SITE if plan.surge_s else None,
            surge_factor=plan.surge_factor,
            surge_start_s=plan.normal_s,
            surge_duration_s=plan.surge_s,
            raw_topics=dict(settings.pipeline.raw_topics),
            offline_devices=frozenset({outage.device}) if outage else frozenset(),
            offline_after_s=plan.offline_after_s,
            offline_for_s=plan.offline_for_s,
            offline_span_s=plan.offline_span_s,
            first_seq=memory.next_seq,
        )
        revisable_from = plan.revisable_from(datetime.now(UTC))
        crossings_before: dict[datetime, int] = {}
        revisions_before: list[Revision] = []
        if outage:
            crossings_before = influx.site_crossings(
                settings, outage.site, revisable_from, datetime.now(UTC) + timedelta(minutes=1)
            )
            revisions_before = influx.revisions(settings)
        fleet = Fleet(runtime.registry, fleet_plan, started, clock=lambda: datetime.now(UTC))
        say(_story(plan, outage))
        try:
            # In this thread: a failure to send (Kafka gone) ends the demo with its error.
            send_messages(
                _counting(fleet.messages(), tally, runtime),
                producer_config=client_config(settings.kafka, "device"),
                total=fleet_plan.count,
                rate=plan.rate,
                console=console,
            )
        finally:
            # Every seq allocated, sent or not, is used up: the next run goes on after them.
            continuity.remember(memory_file, settings, memory.app_id, fleet.next_seqs())
        say("waiting for the worker to drain (and the surge page to resolve)")

        def revisions_published() -> bool:
            counted = worker.metric("hito_backfill_events_total")
            added = added_by_run(revisions_before, influx.revisions(settings), started)
            return sum(r.events for r in added) >= counted

        _settle(
            worker,
            tally.sent,
            tally.valid["checkpoint"],
            plan,
            settings.pager_port,
            settings.prometheus.url,
            started,
            revisions_published if outage else None,
        )
        metrics = _scrape(port)
    except BaseException:
        worker.stop()
        raise
    if not keep_running:
        worker.stop()
    return DemoRun(
        started,
        datetime.now(UTC),
        tally.sent,
        tally.valid,
        metrics,
        worker if keep_running else None,
        app_id=memory.app_id,
        sent_crossings=tally.crossings,
        outage=outage,
        held_crossings=tally.held,
        reconnected_at=tally.reconnected_at,
        revisable_from=revisable_from,
        crossings_before=crossings_before,
        revisions_before=revisions_before,
    )


def _story(plan: DemoPlan, outage: Outage | None) -> str:
    text = f"the fleet of the reference crossing sends {plan.rate:.0f}/s for "
    text += f"{plan.duration_s:.0f} s"
    if plan.surge_s:
        text += (
            f"; Chacalluta surges x{plan.surge_factor:.0f} from {plan.normal_s:.0f} s "
            f"for {plan.surge_s:.0f} s"
        )
    if outage:
        text += (
            f"; {outage.device}'s uplink is down from {outage.after_s:.0f} s for "
            f"{outage.for_s:.0f} s (its events: the {outage.span_s / 60:.0f} minutes before "
            "it reconnects)"
        )
    return text


def _settle(
    worker: WorkerProcess,
    sent: Counter[str],
    crossings: int,
    plan: DemoPlan,
    pager_port: int,
    prometheus_url: str,
    since: datetime,
    revisions_published: Callable[[], bool] | None = None,
) -> None:
    """Until every sent event is accounted for and every crossing aggregated, InfluxDB has had
    a few flushes and holds every revision the worker counted, and (if there was a surge) its
    pages have resolved, entry's and exit's — or the timeout passes."""
    deadline = time.monotonic() + plan.settle_timeout_s
    total = sum(sent.values())
    while time.monotonic() < deadline and (
        worker.metric("hito_events_total") < total
        or worker.metric("hito_crossings_total") < crossings
    ):
        time.sleep(1)
    time.sleep(3)  # the flush timer writes every second
    while revisions_published and time.monotonic() < deadline and not revisions_published():
        time.sleep(1)
    while plan.surge_s and time.monotonic() < deadline:
        pages = httpx.get(f"http://127.0.0.1:{pager_port}/pages", timeout=5).json()
        surge_site_pages = [
            page
            for page in map(Page.model_validate, pages)
            if page.site == SURGE_SITE and page.received_at >= since
        ]
        # This demo's surge paged, each of its alerts (entry, exit) has resolved since, and
        # none is pending or firing without a page yet: the summary lists the pages up to the
        # end of the run.
        surge_alerts = f'ALERTS{{alertname="CheckpointSurge",site="{SURGE_SITE}"}}'
        if paged_and_resolved(surge_site_pages, "CheckpointSurge") and not prometheus_query(
            prometheus_url, surge_alerts
        ):
            return
        time.sleep(2)
