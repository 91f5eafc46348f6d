"""The operator's view beyond service health: workers, throughput, DLQ rate, lag and open
alerts, read from Prometheus and Alertmanager (``hito status``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from hito.settings import HitoSettings

QUERIES = {
    "workers": 'count(up{job="hito-worker"} == 1) or vector(0)',
    "events_per_s": "sum(rate(hito_events_total[1m])) or vector(0)",
    "accepted_per_s": 'sum(rate(hito_events_total{outcome="accepted"}[1m])) or vector(0)',
    "dlq_per_s": "sum(rate(hito_dlq_total[1m])) or vector(0)",
    "lag": "sum(hito_consumer_lag) or vector(0)",
    "points_per_s": "sum(rate(hito_sink_points_total[1m])) or vector(0)",
    "sink_errors_per_s": "sum(rate(hito_sink_errors_total[1m])) or vector(0)",
}


@dataclass
class Overview:
    pipeline: dict[str, float] = field(default_factory=dict)
    alerts: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be read, and why


def collect(settings: HitoSettings, timeout_s: float = 3.0) -> Overview:
    out = Overview()
    try:
        for name, query in QUERIES.items():
            r = httpx.get(
                f"{settings.prometheus.url}/api/v1/query",
                params={"query": query},
                timeout=timeout_s,
            )
            r.raise_for_status()
            result = r.json()["data"]["result"]
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
    return out


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
