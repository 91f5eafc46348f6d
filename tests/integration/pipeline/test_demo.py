"""The demo's summary agrees with InfluxDB, the pager's log and what the fleet sent, the
offline terminal's revised minutes included."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from influxdb_client import InfluxDBClient
from rich.console import Console

from hito.demo import report
from hito.demo.run import DemoPlan, run_demo
from hito.ops.pager.paths import page_log_path
from hito.ops.pager.server import PageLog
from hito.runtime import Runtime
from hito.settings import HitoSettings
from tests.integration.pipeline.conftest import make_isolated


def _points_per_measurement(settings: HitoSettings, since: datetime) -> dict[str, int]:
    """Counted differently from the demo: every point's row after a pivot, since the first
    minute of the run."""
    i = settings.influxdb
    start = since.replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    flux = (
        f'from(bucket: "{i.bucket}") |> range(start: {start}) '
        '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
    )
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        rows = [r.values for t in client.query_api().query(flux) for r in t.records]
    return dict(Counter(str(r["_measurement"]) for r in rows))


def test_demo_summary_agrees_with_influxdb_the_pager_and_the_fleet(
    stack: HitoSettings, runtime: Runtime, tmp_path: Path
) -> None:
    isolated = dataclasses.replace(runtime, settings=make_isolated(stack))
    # The terminal is offline from 5 s to the end: its held events revise the hour before.
    # Without the daily rhythm it holds about 55 crossings at any hour (10 at 01:00 in Arica).
    plan = DemoPlan(
        rate=30.0,
        normal_s=40.0,
        surge_s=0.0,
        after_s=0.0,
        settle_timeout_s=120,
        offline_after_s=5.0,
        daily_rhythm=False,
    )
    run = run_demo(isolated, plan, tmp_path, Console(quiet=True))
    summary = report.summarise(isolated, plan, run)
    png = report.render_png(isolated, plan, run, summary, tmp_path / "demo.png")

    sent = run.sent
    bad = {k: v for k, v in sent.items() if k not in ("valid", "duplicate")}
    assert summary["sent_total"] == sum(sent.values()) >= 1200
    assert summary["events"]["accepted"] == sent["valid"] == sum(run.sent_valid_by_source.values())
    assert summary["events"]["duplicate"] == sent["duplicate"]
    assert summary["events"]["rejected"] == sum(bad.values()) > 0
    assert summary["rejected_by_reason"] == dict(sorted(bad.items()))
    # InfluxDB: exact crossings, and the per-measurement point counts match a second count.
    first_minute = run.started_at.replace(second=0, microsecond=0)
    sent_since_start = sum(n for (_, m), n in run.sent_crossings.items() if m >= first_minute)
    assert sum(run.sent_crossings.values()) == run.sent_valid_by_source["checkpoint"]
    assert summary["crossings_in_influxdb"] == sent_since_start > 0
    assert summary["points_by_measurement"] == _points_per_measurement(
        isolated.settings, run.started_at
    )
    assert {"crossings", "sensor", "drone", "pipeline"} <= set(summary["points_by_measurement"])
    assert summary["policy_version"] == isolated.policy.version
    # The revised hour: every minute of the terminal's upload that had closed beyond the
    # allowed lateness is revised by exactly the crossings uploaded into it, InfluxDB holds
    # exactly what the fleet sent there, and the worker counted as much backfilled.
    revised = summary["revised"]
    assert revised["device"] == plan.offline_device and revised["site"] == "santa-rosa"
    assert revised["exact"] is True, revised["mismatched_minutes"]
    held = {m.isoformat(): n for m, n in run.held_crossings.items()}
    last = revised["last_minute"]
    assert {r["minute"]: r["added"] for r in revised["per_minute"]} == {
        m: n for m, n in held.items() if m <= last
    }
    assert revised["minutes"] == len([m for m in held if m <= last]) >= 10
    assert (
        revised["events"]
        == revised["backfilled_by_worker"]
        == sum(n for m, n in held.items() if m <= last)
    )
    assert (
        revised["uploaded"]["crossings"]
        == sum(held.values())
        == (revised["events"] + revised["counted_live"])
    )
    # The rest was still within the allowed lateness when the terminal reconnected.
    lateness = timedelta(seconds=stack.pipeline.window_s + stack.pipeline.allowed_lateness_s)
    assert run.reconnected_at is not None
    live = [m for m in run.held_crossings if m.isoformat() > last]
    assert all(m + lateness >= run.reconnected_at for m in live)
    assert revised["elsewhere"] == []
    assert last < first_minute.isoformat()
    # The pager: the pages listed are exactly the log's pages of the run's span, in order.
    assert [_page_key(p) for p in summary["pages"]] == [
        (p.received_at, p.alertname, p.status, p.site)
        for p in PageLog(page_log_path(isolated.settings)).read()
        if run.started_at <= p.received_at <= run.finished_at
    ]
    # The picture is a real PNG of some substance.
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    # A second run goes on with the same worker app (continuity.py).
    assert json.loads((tmp_path / "fleet.json").read_text())["app_id"] == run.app_id


def _page_key(page: dict[str, Any]) -> tuple[datetime, str, str, str | None]:
    return (
        datetime.fromisoformat(page["received_at"]),
        page["alertname"],
        page["status"],
        page["site"],
    )
