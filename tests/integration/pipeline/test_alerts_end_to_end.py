"""End to end on the real stack: simulated fleet -> worker -> Prometheus -> Alertmanager ->
`hito pager`. A surge at one site pages CheckpointSurge for that site only, in time, and
resolves when it ends; a silent device, a garbage flood and a stopped InfluxDB page too.

One scenario (about 8 minutes) shared by the tests below; the worker is a real process that
Prometheus discovers from its target file, as every `hito worker`.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from kafka import KafkaProducer

from hito.credentials import client_config
from hito.demo.history import history_lines
from hito.device.simulate.fleet import Fleet, FleetPlan
from hito.device.simulate.runner import send_messages
from hito.ops.pager.pages import Page, paged_and_resolved
from hito.runtime import Runtime
from hito.settings import HitoSettings
from hito.stack import manager, process
from hito.stack.monitoring import runbook_base_url
from hito.stack.services import SERVICES
from hito.stack.worker_process import WorkerProcess, free_port
from tests.integration.pipeline.conftest import make_isolated
from tests.integration.pipeline.test_faults import make_runner_quiet

# The scenario runs in the module fixture's setup, which pytest-timeout charges to the first
# test: give it the whole scenario's time.
pytestmark = pytest.mark.timeout(900)

RATE = 40.0  # base messages per second, all devices
SURGE_SITE, OTHER_SITE = "chacalluta", "santa-rosa"
SURGE_START_S, SURGE_S = 90.0, 180.0
# A different sensor each run: Alertmanager remembers what it last notified per alert (its
# notification log outlives restarts), so on a stack reused across runs, a run interrupted
# before a resolution was sent would otherwise hide the next run's identical page.
SILENT_DEVICE = random.SystemRandom().choice(
    [f"sensor-concordia-0{i}" for i in range(1, 5)] + [f"sensor-escritos-0{i}" for i in range(1, 4)]
)
SILENT_AFTER_S = 30.0
FLOOD_START_S, FLOOD_S, FLOOD_RATE = 60.0, 150.0, 30.0
METRICS_PORT = free_port()  # any port: the worker registers itself for Prometheus
SCRAPE_S = 5.0
FOR_S = 60.0


@dataclass
class Run:
    settings: HitoSettings
    started: datetime
    surge_visible_at: datetime | None = None  # Prometheus first saw a score >= 4 there
    pages: list[dict[str, Any]] = field(default_factory=list)
    outage_started: datetime | None = None
    worker_alive: bool = False
    worker_crashes: int = -1
    surge_points: list[dict[str, Any]] = field(default_factory=list)


def _prom(settings: HitoSettings, query: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{settings.prometheus.url}/api/v1/query", params={"query": query}, timeout=5)
    r.raise_for_status()
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


def _pages_since(settings: HitoSettings, since: datetime) -> list[dict[str, Any]]:
    pages = httpx.get(f"http://127.0.0.1:{settings.pager_port}/pages", timeout=5).json()
    return [p for p in pages if datetime.fromisoformat(p["received_at"]) >= since]


def _write_history(runtime: Runtime, now: datetime, *, daily_rhythm: bool = True) -> None:
    """Four previous weeks around this time of the week at the fleet's normal volume: the
    seasonal baseline the worker learns when it starts scoring (the demo does the same);
    ``daily_rhythm`` as the fleet's (FleetPlan.daily_rhythm)."""
    i = runtime.settings.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=i.bucket,
            record=history_lines(runtime.registry, RATE, now, daily_rhythm=daily_rhythm),
            write_precision=WritePrecision.S,
        )


def _flood(settings: HitoSettings, stop: threading.Event) -> None:
    producer = KafkaProducer(**client_config(settings.kafka, "device"), acks=1)
    topic = settings.pipeline.raw_topics["sensor"]
    i = 0
    try:
        while not stop.is_set():
            producer.send(topic, key=b"flood", value=b"{not json " + str(i).encode())
            i += 1
            time.sleep(1 / FLOOD_RATE)
    finally:
        producer.close()


def _wait_for(what: str, timeout_s: float, check: Any) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def run(
    stack: HitoSettings, runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    settings = make_isolated(stack)
    runtime = dataclasses.replace(runtime, settings=settings)
    now = datetime.now(UTC)
    _write_history(runtime, now)
    log_dir: Path = tmp_path_factory.mktemp("alerts")
    worker = WorkerProcess.start(
        settings, f"hito-alerts-{uuid.uuid4().hex[:6]}", METRICS_PORT, log_dir / "worker.log"
    )
    influx = next(s for s in SERVICES if s.name == "influxdb")
    stop_flood = threading.Event()
    result = Run(settings, datetime.now(UTC))
    try:
        worker.wait_ready()
        result.started = datetime.now(UTC)
        plan = FleetPlan(
            count=int(RATE * 600),
            seed=41,
            surge_site=SURGE_SITE,
            surge_factor=4.0,
            surge_start_s=SURGE_START_S,
            surge_duration_s=SURGE_S,
            silent_devices=frozenset({SILENT_DEVICE}),
            silent_after_s=SILENT_AFTER_S,
            raw_topics=dict(settings.pipeline.raw_topics),
        )
        fleet = Fleet(runtime.registry, plan, now, clock=lambda: datetime.now(UTC))
        sender = threading.Thread(
            target=send_messages,
            args=(fleet.messages(),),
            kwargs={
                "producer_config": client_config(settings.kafka, "device"),
                "total": plan.count,
                "rate": RATE,
            },
            daemon=True,
        )
        sender.start()
        flood = threading.Timer(FLOOD_START_S, _flood, args=(settings, stop_flood))
        flood.daemon = True
        flood.start()
        stopper = threading.Timer(FLOOD_START_S + FLOOD_S, stop_flood.set)
        stopper.daemon = True
        stopper.start()

        # The surge: when Prometheus first holds a score >= 4 at the surge site, then the page.
        def surge_visible() -> bool:
            hits = _prom(settings, "max by (site) (hito_surge_score) >= 4")
            return any(h["metric"]["site"] == SURGE_SITE for h in hits)

        _wait_for("a surge score >= 4 in Prometheus", SURGE_START_S + 240, surge_visible)
        result.surge_visible_at = datetime.now(UTC)

        # Every direction that paged must have resolved, its last page "resolved", and none be
        # pending or firing in Prometheus without a page yet, before the scenario goes on: one
        # still firing when this module ends resolves minutes later, inside the next module's
        # run. In the CI run of 2026-12-05 this scenario went on after one direction's
        # resolution; the other's reached test_backfill, whose "no surge" check failed on it.
        def resolved() -> bool:
            pages = [Page.model_validate(p) for p in _pages_since(settings, result.started)]
            return paged_and_resolved(pages, "CheckpointSurge") and not _prom(
                settings, 'ALERTS{alertname="CheckpointSurge"}'
            )

        _wait_for("every surge page to resolve", SURGE_S + 240, resolved)

        # InfluxDB down while the fleet keeps sending: SinkFailing.
        assert process.stop(influx.files(settings)), "InfluxDB was not running"
        result.outage_started = datetime.now(UTC)
        try:
            _wait_for(
                "SinkFailing",
                240,
                lambda: any(
                    p["alertname"] == "SinkFailing" and p["status"] == "firing"
                    for p in _pages_since(settings, result.outage_started)
                ),
            )
        finally:
            manager.up(settings, make_runner_quiet())
        result.pages = _pages_since(settings, result.started)
        result.worker_alive, result.worker_crashes = worker.alive(), worker.crashes()
        with InfluxDBClient(
            url=settings.influxdb.url,
            token=settings.influxdb.admin_token().get_secret_value(),
            org=settings.influxdb.org,
        ) as client:
            tables = client.query_api().query(
                f'from(bucket: "{settings.influxdb.bucket}") |> range(start: -1h) '
                '|> filter(fn: (r) => r._measurement == "surge") '
                '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
            )
            result.surge_points = [r.values for t in tables for r in t.records]
        yield result
    finally:
        stop_flood.set()
        worker.stop()
        manager.up(settings, make_runner_quiet())


def _firing(run: Run, alertname: str) -> list[dict[str, Any]]:
    return [p for p in run.pages if p["alertname"] == alertname and p["status"] == "firing"]


def test_surge_pages_for_its_site_only_within_for_plus_two_scrapes(run: Run) -> None:
    pages = _firing(run, "CheckpointSurge")
    assert pages, "no CheckpointSurge page"
    assert {p["site"] for p in pages} == {SURGE_SITE}
    assert all(p["urgency"] == "critical" and p["severity"] == "critical" for p in pages)
    # A link under the configured base (the external label runbook_base), to that runbook.
    runbook = f"{runbook_base_url(run.settings)}/CheckpointSurge.md"
    assert all(p["runbook_url"] == runbook for p in pages)
    assert run.surge_visible_at is not None
    first = min(datetime.fromisoformat(p["received_at"]) for p in pages)
    delay = (first - run.surge_visible_at).total_seconds()
    assert delay <= FOR_S + 2 * SCRAPE_S, f"paged {delay:.0f} s after the score crossed 4"


def test_surge_resolves_when_it_stops(run: Run) -> None:
    # The scenario waited for this before its InfluxDB outage; a surge paged again later
    # (during the outage) would fail it here.
    surge = [Page.model_validate(p) for p in run.pages if p["alertname"] == "CheckpointSurge"]
    assert {p.site for p in surge} == {SURGE_SITE}
    assert paged_and_resolved(surge, "CheckpointSurge")


def test_surge_scores_are_in_influxdb_from_the_seasonal_baseline(run: Run) -> None:
    mine = [p for p in run.surge_points if p["site"] == SURGE_SITE]
    other = [p for p in run.surge_points if p["site"] == OTHER_SITE]
    assert mine and other
    assert {p["basis"] for p in mine + other} == {"seasonal"}
    assert max(p["score"] for p in mine) >= 4
    assert max(p["score"] for p in other) < 4


def test_silent_device_pages_device_silent(run: Run) -> None:
    pages = _firing(run, "DeviceSilent")
    assert {p["labels"]["device_id"] for p in pages} == {SILENT_DEVICE}
    site = "sector-concordia" if "concordia" in SILENT_DEVICE else "sector-escritos"
    assert all(p["urgency"] == "low" and p["site"] == site for p in pages)


def test_garbage_flood_raises_dlq_rate_high(run: Run) -> None:
    pages = _firing(run, "DlqRateHigh")
    assert pages and all(p["urgency"] == "low" for p in pages)


def test_stopped_influxdb_raises_sink_failing_and_the_worker_lives(run: Run) -> None:
    assert run.outage_started is not None
    pages = [
        p
        for p in _firing(run, "SinkFailing")
        if datetime.fromisoformat(p["received_at"]) >= run.outage_started
    ]
    assert pages and all(p["urgency"] == "critical" for p in pages)
    assert run.worker_alive and run.worker_crashes == 0
