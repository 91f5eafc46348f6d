"""Pure report math (ratios, percentiles, latencies from cumulative curves, target verdicts)
and the readable summary. Nothing here touches the stack."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Result:
    """One contender's run on the shared data set."""

    name: str
    events: int  # raw records handled (valid, bad and duplicate alike)
    seconds: float  # first record consumed -> last contribution acknowledged / visible
    complete: bool  # handled every produced record (False: time-boxed or failed)
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    points: int | None = None  # points written to InfluxDB
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_s_per_1k(self) -> float | None:
        if self.cpu_s is None or not self.events:
            return None
        return 1000.0 * self.cpu_s / self.events

    @property
    def points_per_s(self) -> float | None:
        if self.points is None or self.seconds <= 0:
            return None
        return self.points / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "events_per_s": round(self.events_per_s, 1),
            "cpu_s_per_1k_events": _round(self.cpu_s_per_1k, 4),
            "points_per_s": _round(self.points_per_s, 1),
        }


@dataclass(frozen=True)
class Target:
    name: str
    figure: str  # key of the figure in the report's "figures"
    op: str  # ">=", ">", "<="
    threshold: float


TARGETS: tuple[Target, ...] = (
    Target("one worker >= 50,000 events/s end to end", "hito_1w_events_per_s", ">=", 50_000),
    Target("one worker >= 50% of the consume-only ceiling", "hito_vs_ceiling", ">=", 0.5),
    Target("one worker >= 5x the naive pipeline", "hito_vs_naive", ">=", 5.0),
    Target("one worker ahead of the Quix Streams peer", "hito_vs_quix", ">", 1.0),
    Target("p99 latency <= 2 s at 50% of max rate", "latency_p99_s", "<=", 2.0),
    Target("peak RSS <= 300 MB at 1M devices+identities", "rss_1m_modelled_mb", "<=", 300.0),
)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is not positive."""
    if a is None or b is None or b <= 0:
        return None
    return a / b


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in (0, 100]): the smallest value with at least q% of the
    values at or below it. Never interpolates, so it is a value that was observed."""
    if not values:
        return None
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} outside (0, 100]")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latencies_from_curves(
    sent_at: Sequence[float], observed: Sequence[tuple[float, int]]
) -> list[float]:
    """Latency of each counted event from two cumulative curves.

    ``sent_at``: send times of the events that must be counted, ascending; ``observed``:
    (time the answer arrived, total visible) in time order. The k-th event sent is taken as
    visible at the first observation showing at least k events (first in, first counted: the
    horizontal distance between the curves). Events never seen are left out; an observation
    is an upper bound on when the data became visible, so latencies are never understated.
    """
    out: list[float] = []
    j = 0
    for k, sent in enumerate(sent_at, start=1):
        while j < len(observed) and observed[j][1] < k:
            j += 1
        if j == len(observed):
            break
        out.append(max(0.0, observed[j][0] - sent))
    return out


def verdicts(figures: dict[str, float | None]) -> list[dict[str, Any]]:
    """Each target with its figure and pass/fail (None: not measured in this run)."""
    out = []
    for t in TARGETS:
        value = figures.get(t.figure)
        passed: bool | None = None
        if value is not None:
            passed = {
                ">=": value >= t.threshold,
                ">": value > t.threshold,
                "<=": value <= t.threshold,
            }[t.op]
        out.append({**asdict(t), "value": _round(value, 4), "passed": passed})
    return out


def figures_of(
    results: dict[str, Result], latency: dict[str, Any] | None, state: dict[str, Any] | None
) -> dict[str, float | None]:
    """The headline figures the targets are judged on."""

    def rate(name: str) -> float | None:
        r = results.get(name)
        return r.events_per_s if r is not None and r.events else None

    hito = rate("hito-1w")
    return {
        "hito_1w_events_per_s": hito,
        "hito_2w_events_per_s": rate("hito-2w"),
        "ceiling_events_per_s": rate("ceiling"),
        "faust_floor_events_per_s": rate("faust-floor"),
        "naive_events_per_s": rate("naive"),
        "quix_events_per_s": rate("quix"),
        "hito_vs_ceiling": ratio(hito, rate("ceiling")),
        "hito_vs_faust_floor": ratio(hito, rate("faust-floor")),
        "hito_vs_naive": ratio(hito, rate("naive")),
        "hito_vs_quix": ratio(hito, rate("quix")),
        "hito_2w_vs_1w": ratio(rate("hito-2w"), hito),
        "latency_p99_s": latency.get("p99_s") if latency else None,
        "rss_1m_modelled_mb": state.get("modelled_worker_rss_mb") if state else None,
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _sig(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """What `hito bench --json` prints: the headline figures, each target's verdict, what
    failed, and where the full report is."""
    return {
        "run": report["run"],
        "report": report["out"],
        "seconds": report["seconds"],
        "figures": report["figures"],
        "targets": report["targets"],
        "errors": report["errors"],
    }


def render(report: dict[str, Any], console: Console) -> None:
    """The readable summary of a report (the JSON has every figure)."""
    data = report["data"]
    console.print(
        f"[bold]hito bench[/] {report['started_at']}  {data['produced']['total']:,} events "
        f"({data['produced']['valid']:,} valid) on {data['partitions']} partitions; "
        f"{report['machine']['nproc']} cores, Python {report['machine']['python']}"
    )
    table = Table(title="Throughput on the same data (first record read -> last point in InfluxDB)")
    for col in ("contender", "events", "s", "events/s", "CPU s/1k", "peak RSS MB", "points/s"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    for r in report["results"].values():
        name = r["name"] + ("" if r["complete"] else " (time-boxed)")
        table.add_row(
            name,
            _fmt(r["events"]),
            _fmt(r["seconds"], 2),
            _fmt(r["events_per_s"], 0),
            _fmt(r["cpu_s_per_1k_events"], 3),
            _fmt(r["peak_rss_mb"], 0),
            _fmt(r["points_per_s"], 0),
        )
    console.print(table)
    lat = report.get("latency")
    if lat:
        console.print(
            f"Latency at {_fmt(lat['rate_per_s'], 0)} events/s for {_fmt(lat['seconds'], 0)} s "
            f"({lat['counted']:,} events): p50 {_fmt(lat['p50_s'], 2)} s, "
            f"p95 {_fmt(lat['p95_s'], 2)} s, p99 {_fmt(lat['p99_s'], 2)} s, "
            f"max {_fmt(lat['max_s'], 2)} s"
        )
    state = report.get("state")
    if state:
        console.print(
            f"State for {state['devices']:,} devices and {state['identities']:,} identities: "
            f"+{_fmt(state['state_growth_mb'], 0)} MB; modelled worker RSS "
            f"{_fmt(state['modelled_worker_rss_mb'], 0)} MB; registry file "
            f"{_fmt(state.get('registry_file_mb'), 1)} MB loaded in "
            f"{_fmt(state.get('registry_load_s'), 2)} s"
        )
    for key, what in (("profile", "reading the data set"), ("profile_live", "at the latency rate")):
        prof = report.get(key)
        if prof and prof.get("samples"):
            where = ", ".join(f"{p['package']} {p['percent']}%" for p in prof["by_package"][:7])
            console.print(f"py-spy, worker {what}, by package: {where}")
            own = ", ".join(
                f"{p['function']} {p['percent']}%" for p in prof["inclusive_project"][:6]
            )
            console.print(f"  Hito's own code (inclusive): {own}")
    verdict = Table(title="Targets")
    for col in ("target", "value", "verdict"):
        verdict.add_column(col)
    for v in report["targets"]:
        mark = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "not measured"}
        value = _sig(v["value"])
        verdict.add_row(v["name"], value, mark[v["passed"]])
    console.print(verdict)
    console.print(f"Report: {report['out']}   command: {report['command']}")
