"""The operator's view beyond service health: workers, throughput, DLQ rate, lag and open
alerts, read from Prometheus and Alertmanager, and the minutes late uploads revised, read
from InfluxDB (``hito status``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from hito.settings import HitoSettings
from hito.stack.base import prometheus_query

QUERIES = {
    "workers": 'count(up{job="hito-worker"} == 1) or vector(0)',
    "events_per_s": "sum(rate(hito_events_total[1m])) or vector(0)",
    "accepted_per_s": 'sum(rate(hito_events_total{outcome="accepted"}[1m])) or vector(0)',
    "dlq_per_s": "sum(rate(hito_dlq_total[1m])) or vector(0)",
    "lag": "sum(hito_consumer_lag) or vector(0)",
    "points_per_s": "sum(rate(hito_sink_points_total[1m])) or vector(0)",
    "sink_errors_per_s": "sum(rate(hito_sink_errors_total[1m])) or vector(0)",
}


REVISIONS_DAYS = 7  # the backfill horizon: no older minute can have been revised
REVISIONS_SHOWN = 10


@dataclass
class Overview:
    pipeline: dict[str, float] = field(default_factory=dict)
    alerts: list[dict[str, str]] = field(default_factory=list)
    # Minutes a late upload revised (the newest revisions first): minute, site, source,
    # events added, when (docs/aggregation.md, "Backfill").
    revisions: list[dict[str, Any]] = field(default_factory=list)
    revised_minutes: int = 0  # how many minutes in the horizon were revised, in all
    problems: list[str] = field(default_factory=list)  # what could not be read, and why


def collect(settings: HitoSettings, timeout_s: float = 3.0) -> Overview:
    out = Overview()
    try:
        for name, query in QUERIES.items():
            result = prometheus_query(settings.prometheus.url, query, timeout_s)
            out.pipeline[name] = float(result[0]["value"][1]) if result else 0.0
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        out.problems.append(f"Prometheus: {exc}")
    try:
        r = httpx.get(
            f"{settings.alertmanager.url}/api/v2/alerts",
            params={"active": "true", "silenced": "false", "inhibited": "false"},
            timeout=timeout_s,
        )
        r.raise_for_status()
        out.alerts = [_alert_row(a) for a in r.json()]
    except (httpx.HTTPError, ValueError) as exc:
        out.problems.append(f"Alertmanager: {exc}")
    try:
        out.revisions = revisions(settings)
        out.revised_minutes = len({(r["site"], r["minute"]) for r in out.revisions})
        out.revisions = out.revisions[:REVISIONS_SHOWN]
    except Exception as exc:  # InfluxDB down, no token yet: the rest of the view stands
        out.problems.append(f"InfluxDB revisions: {type(exc).__name__}: {str(exc)[:200]}")
    return out


def revisions(settings: HitoSettings) -> list[dict[str, Any]]:
    """Every revised minute of the horizon, per site and source, newest revision first, read
    with the bucket's read-only token."""
    from influxdb_client import InfluxDBClient

    from hito.credentials import dashboards_token

    i = settings.influxdb
    flux = (
        f'from(bucket: "{i.bucket}") |> range(start: -{REVISIONS_DAYS}d) '
        '|> filter(fn: (r) => r._measurement == "revisions") '
        '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
    )
    token = dashboards_token(settings).get_secret_value()
    with InfluxDBClient(url=i.url, token=token, org=i.org, timeout=5_000) as client:
        tables = client.query_api().query(flux)
    rows = [
        {
            "minute": r["_time"].strftime("%Y-%m-%d %H:%M"),
            "site": str(r["site"]),
            "source": str(r["source"]),
            "events": int(r["events"]),
            "revised_at": datetime.fromtimestamp(int(r["revised_at"]), tz=UTC).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
        }
        for table in tables
        for r in table.records
    ]
    return sorted(rows, key=lambda r: (r["revised_at"], r["minute"]), reverse=True)


def _alert_row(alert: dict[str, Any]) -> dict[str, str]:
    labels, notes = alert.get("labels", {}), alert.get("annotations", {})
    return {
        "alertname": labels.get("alertname", ""),
        "severity": labels.get("severity", ""),
        "site": labels.get("site", ""),
        "since": str(alert.get("startsAt", ""))[:19].replace("T", " "),
        "summary": notes.get("summary", ""),
        "runbook": notes.get("runbook_url", ""),
    }
