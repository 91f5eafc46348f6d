"""The demo's summary (from the worker's metrics, InfluxDB and the pager's log) and its picture
(crossings per site with the surge marked, the revised hour, DLQ by reason) rendered from
InfluxDB data."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hito.demo import influx
from hito.demo.influx import query as _query
from hito.demo.revised import added_by_run, mark_revised, revised_hour
from hito.demo.run import DemoPlan, DemoRun
from hito.ops.pager.paths import page_log_path
from hito.ops.pager.server import PageLog
from hito.pipeline.stages.windows import WindowRules
from hito.runtime import Runtime
from hito.settings import HitoSettings

# One field per measurement identifies a point (every point has it).
POINT_FIELD = {
    "crossings": "count",
    "crossings_by_nationality": "count",
    "wait_time": "max_s",
    "sensor": "readings",
    "drone": "fixes",
    "surge": "score",
    "pipeline": "count",
    "revisions": "events",
}


def _start(started: datetime) -> str:
    # Points are stamped with their window's start: include the minute the demo began in.
    return started.replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def points_by_measurement(settings: HitoSettings, started: datetime) -> dict[str, int]:
    """Points written since the demo's first minute, per measurement."""
    wanted = " or ".join(
        f'(r._measurement == "{m}" and r._field == "{f}")' for m, f in POINT_FIELD.items()
    )
    rows = _query(
        settings,
        f'from(bucket: "{settings.influxdb.bucket}") |> range(start: {_start(started)}) '
        f"|> filter(fn: (r) => {wanted}) "
        '|> group(columns: ["_measurement"]) |> count()',
    )
    return {str(r["_measurement"]): int(r["_value"]) for r in rows}


def crossings_per_minute(
    settings: HitoSettings, started: datetime
) -> dict[str, list[tuple[datetime, int]]]:
    rows = _query(
        settings,
        f'from(bucket: "{settings.influxdb.bucket}") |> range(start: {_start(started)}) '
        '|> filter(fn: (r) => r._measurement == "crossings" and r._field == "count") '
        '|> group(columns: ["site", "_time"]) |> sum() |> group()',
    )
    out: dict[str, list[tuple[datetime, int]]] = {}
    for r in sorted(rows, key=lambda r: r["_time"]):
        out.setdefault(str(r["site"]), []).append((r["_time"], int(r["_value"])))
    return out


def dlq_by_reason(settings: HitoSettings, started: datetime) -> dict[str, int]:
    """From the `pipeline` measurement: rejections by reason (any stage)."""
    rows = _query(
        settings,
        f'from(bucket: "{settings.influxdb.bucket}") |> range(start: {_start(started)}) '
        '|> filter(fn: (r) => r._measurement == "pipeline" and r._field == "count") '
        '|> filter(fn: (r) => r.stage == "validate" or r.outcome == "late_beyond_window") '
        '|> group(columns: ["outcome"]) |> sum()',
    )
    return {str(r["outcome"]): int(r["_value"]) for r in rows}


def pages_between(
    settings: HitoSettings, started: datetime, finished: datetime
) -> list[dict[str, Any]]:
    """The pages received during the run: a page logged after it (another run's alert
    resolving, say) is not the run's, and would change between two reads of the log."""
    return [
        {
            "received_at": p.received_at.isoformat(),
            "urgency": p.urgency,
            "status": p.status,
            "alertname": p.alertname,
            "site": p.site,
            "runbook_url": p.runbook_url,
        }
        for p in PageLog(page_log_path(settings)).read()
        if started <= p.received_at <= finished
    ]


def _metric_sum(metrics: dict[str, float], name: str, **labels: str) -> float:
    total = 0.0
    for key, value in metrics.items():
        metric, _, rest = key.partition("{")
        if metric == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def summarise(runtime: Runtime, plan: DemoPlan, run: DemoRun) -> dict[str, Any]:
    s = runtime.settings
    m = run.worker_metrics
    outcomes = ("accepted", "rejected", "duplicate", "stale")
    reasons = Counter(
        {
            key.split('reason="', 1)[1].split('"', 1)[0]: int(v)
            for key, v in m.items()
            if key.startswith("hito_dlq_total{")
        }
    )
    crossings = crossings_per_minute(s, run.started_at)
    pages = pages_between(s, run.started_at, run.finished_at)
    firing = Counter(
        f"{p['alertname']}@{p['site']}" if p["site"] else p["alertname"]
        for p in pages
        if p["status"] == "firing"
    )
    return {
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat(),
        "plan": {
            "rate_per_s": plan.rate,
            "duration_s": plan.duration_s,
            "surge": (
                {
                    "site": "chacalluta",
                    "factor": plan.surge_factor,
                    "from_s": plan.normal_s,
                    "for_s": plan.surge_s,
                }
                if plan.surge_s
                else None
            ),
        },
        "sent": dict(sorted(run.sent.items())),
        "sent_total": sum(run.sent.values()),
        "sent_valid_by_source": dict(sorted(run.sent_valid_by_source.items())),
        "events": {o: int(_metric_sum(m, "hito_events_total", outcome=o)) for o in outcomes},
        "rejected_by_reason": dict(sorted(reasons.items())),
        "points_by_measurement": points_by_measurement(s, run.started_at),
        "crossings_in_influxdb": sum(n for series in crossings.values() for _, n in series),
        "policy_version": runtime.policy.version,
        "alerts_fired": dict(sorted(firing.items())),
        "pages": pages,
        "revised": revised_summary(runtime, run),
        "where_to_look": where_to_look(s),
    }


def revised_summary(runtime: Runtime, run: DemoRun) -> dict[str, Any] | None:
    """The hour the offline terminal's late events revised (revised.py), from InfluxDB's
    ``revisions`` and ``crossings`` now and before the fleet sent anything."""
    outage, since = run.outage, run.revisable_from
    if outage is None or since is None:
        return None
    s = runtime.settings
    p = s.pipeline
    return revised_hour(
        outage,
        added_by_run(run.revisions_before, influx.revisions(s), run.started_at),
        rules=WindowRules(p.window_s, p.allowed_lateness_s, p.backfill_horizon_s),
        reconnected_at=run.reconnected_at,
        held=run.held_crossings,
        sent={m: n for (site, m), n in run.sent_crossings.items() if site == outage.site},
        crossings_before=run.crossings_before,
        crossings_after=influx.site_crossings(s, outage.site, since, _until(run)),
        backfilled=int(
            _metric_sum(
                run.worker_metrics,
                "hito_backfill_events_total",
                site=outage.site,
                source="checkpoint",
            )
        ),
    )


def _until(run: DemoRun) -> datetime:
    return run.finished_at + timedelta(minutes=1)


def where_to_look(s: HitoSettings) -> dict[str, str]:
    return {
        "influxdb": s.influxdb.url,
        "influx_query_crossings": (
            f'from(bucket: "{s.influxdb.bucket}") |> range(start: -1h) '
            '|> filter(fn: (r) => r._measurement == "crossings") '
            '|> group(columns: ["site", "direction"]) |> aggregateWindow(every: 1m, fn: sum)'
        ),
        "influx_query_surge": (
            f'from(bucket: "{s.influxdb.bucket}") |> range(start: -1h) '
            '|> filter(fn: (r) => r._measurement == "surge" and r._field == "score")'
        ),
        "prometheus": f"{s.prometheus.url}/api/v1/query?query=hito_surge_score",
        "alertmanager": s.alertmanager.url,
        "pager_log": str(page_log_path(s)),
        "grafana": "docker compose up grafana: infra/grafana/dashboards/*.json on 127.0.0.1:13000",
    }


def write_summary(summary: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return path


def render_png(
    runtime: Runtime, plan: DemoPlan, run: DemoRun, summary: dict[str, Any], path: Path
) -> Path:
    """Crossings per minute per site (surge interval shaded, surge pages marked) above the
    revised hour (when something was revised) and the DLQ by reason, from InfluxDB."""
    import matplotlib

    matplotlib.use("Agg")  # no display here
    import matplotlib.pyplot as plt

    crossings = crossings_per_minute(runtime.settings, run.started_at)
    dlq = dlq_by_reason(runtime.settings, run.started_at)
    revised = summary.get("revised")
    if revised and revised["minutes"] and run.outage and run.revisable_from:
        fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(11, 12), height_ratios=[3, 3, 2])
        hour = influx.site_crossings(
            runtime.settings, run.outage.site, run.revisable_from, _until(run)
        )
        mark_revised(middle, revised, hour)
    else:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), height_ratios=[3, 2])
    for site, series in sorted(crossings.items()):
        # A point is stamped with its minute's start: draw it across that minute.
        times = [t for t, _ in series]
        counts = [n for _, n in series]
        top.step(
            [*times, times[-1] + timedelta(minutes=1)],
            [*counts, counts[-1]],
            where="post",
            label=site,
        )
    if plan.surge_s:
        surge_from = run.started_at + timedelta(seconds=plan.normal_s)
        top.axvspan(
            surge_from,
            surge_from + timedelta(seconds=plan.surge_s),
            color="red",
            alpha=0.12,
            label="injected surge (Chacalluta)",
        )
    for page in summary["pages"]:
        if page["alertname"] == "CheckpointSurge":
            when = datetime.fromisoformat(page["received_at"])
            colour = "red" if page["status"] == "firing" else "green"
            top.axvline(when, color=colour, linestyle="--", linewidth=1)
            top.annotate(
                f"page {page['status']}",
                (when, top.get_ylim()[1] * 0.95),
                rotation=90,
                fontsize=8,
                color=colour,
                ha="right",
                va="top",
            )
    top.set_title("Crossings per minute by site (InfluxDB `crossings`, all directions)")
    top.set_ylabel("crossings / minute")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    reasons = sorted(dlq.items(), key=lambda kv: -kv[1])
    bottom.barh([r for r, _ in reasons], [n for _, n in reasons], color="tab:orange")
    bottom.invert_yaxis()
    bottom.set_title("Rejected into the DLQ, by reason (InfluxDB `pipeline`)")
    bottom.set_xlabel("events")
    for i, (_, n) in enumerate(reasons):
        bottom.annotate(str(n), (n, i), xytext=(3, 0), textcoords="offset points", va="center")
    fig.suptitle(f"Hito demo {run.started_at:%Y-%m-%d %H:%M} UTC — policy {runtime.policy.version}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
