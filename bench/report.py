"""Pure report math (ratios, percentiles, latencies from cumulative curves, target verdicts)
and the readable summary. Nothing here touches the stack."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from hito.bench.cpu import us_per_event


@dataclass
class Result:
    """One contender's run on the shared data set."""

    name: str
    events: int  # raw records handled (valid, bad and duplicate alike)
    seconds: float  # first record consumed -> last contribution acknowledged / visible
    complete: bool  # handled every produced record (False: time-boxed or failed)
    cpu_s: float | None = None  # its process tree over those seconds (hito.bench.cpu)
    peak_rss_mb: float | None = None
    points: int | None = None  # points written to InfluxDB
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_event(self) -> float | None:
        return us_per_event(self.cpu_s, self.events)

    @property
    def points_per_s(self) -> float | None:
        if self.points is None or self.seconds <= 0:
            return None
        return self.points / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "events_per_s": round(self.events_per_s, 1),
            "cpu_us_per_event": _round(self.cpu_us_per_event, 2),
            "points_per_s": _round(self.points_per_s, 1),
        }


# Contenders in the order the report lists them (the harness runs them in this order).
CONTENDER_ORDER = ("ceiling", "faust-floor", "lane-floor", "hito-1w", "hito-2w", "quix", "naive")


@dataclass(frozen=True)
class Target:
    name: str
    figure: str  # key of the figure in the report's "figures"
    op: str  # ">=", "<="
    threshold: float
    issue: str  # the issue that set it


TARGETS: tuple[Target, ...] = (
    Target("worker CPU <= 40 us per event", "hito_1w_cpu_us_per_event", "<=", 40.0, "#16"),
    Target("worker CPU per event <= 1/5 of the Quix peer's", "hito_cpu_vs_quix", "<=", 0.2, "#16"),
    Target("one worker >= 5x the Quix peer's events/s", "hito_vs_quix", ">=", 5.0, "#16"),
    Target("one worker >= 10x the naive loop's events/s", "hito_vs_naive", ">=", 10.0, "#16"),
    Target("p99 latency <= 1 s at 50% of the max rate", "latency_p99_s", "<=", 1.0, "#16"),
    Target(
        "modelled RSS <= 300 MB at 1M devices+identities", "rss_1m_modelled_mb", "<=", 300.0, "#16"
    ),
    # Kept from #8: the project's goal (#16 says it remains one). #8's others are superseded by
    # #16's (5x naive -> 10x, ahead of Quix -> 5x, p99 2 s -> 1 s) or turned into reported
    # ratios (50% of the ceiling: the ceiling measures the broker, not a pipeline).
    Target("one worker >= 50,000 events/s end to end", "hito_1w_events_per_s", ">=", 50_000, "#8"),
)

# Figures reported next to the targets, without a threshold (#16: "report the ratio to the
# ceiling and to the lane floor"; the registry's load time with the memory model).
REPORTED: tuple[tuple[str, str], ...] = (
    ("one worker / consume-only ceiling, events/s", "hito_vs_ceiling"),
    ("one worker / lane floor, events/s", "hito_vs_lane_floor"),
    ("one worker / Faust floor, events/s", "hito_vs_faust_floor"),
    ("lane floor / Faust floor, events/s", "lane_floor_vs_faust_floor"),
    ("two workers / one, events/s", "hito_2w_vs_1w"),
    ("worker CPU per event above the lane floor's, us", "hito_cpu_above_lane_floor_us"),
    ("lane floor CPU per event / Faust floor's", "lane_floor_cpu_vs_faust_floor"),
    ("registry load at 1M devices, s", "registry_load_1m_s"),
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
            passed = {">=": value >= t.threshold, "<=": value <= t.threshold}[t.op]
        out.append({**asdict(t), "value": _round(value, 4), "passed": passed})
    return out


def reported(figures: dict[str, float | None]) -> list[dict[str, Any]]:
    """The figures reported without a threshold, labelled."""
    return [
        {"name": name, "figure": figure, "value": _round(figures.get(figure), 4)}
        for name, figure in REPORTED
    ]


def _key(name: str) -> str:
    return name.replace("-", "_")


def figures_of(
    results: dict[str, Result], latency: dict[str, Any] | None, state: dict[str, Any] | None
) -> dict[str, float | None]:
    """The headline figures the targets are judged on, all from this run: each contender's
    events/s and CPU µs per event, and Hito's one worker against each of them."""
    out: dict[str, float | None] = {}
    for name in CONTENDER_ORDER:
        r = results.get(name)
        done = r is not None and r.events > 0
        out[f"{_key(name)}_events_per_s"] = r.events_per_s if r is not None and done else None
        out[f"{_key(name)}_cpu_us_per_event"] = r.cpu_us_per_event if r is not None else None
    rate = {name: out[f"{_key(name)}_events_per_s"] for name in CONTENDER_ORDER}
    cpu = {name: out[f"{_key(name)}_cpu_us_per_event"] for name in CONTENDER_ORDER}
    hito, hito_cpu, lane_cpu = rate["hito-1w"], cpu["hito-1w"], cpu["lane-floor"]
    for base in ("ceiling", "faust-floor", "lane-floor", "naive", "quix"):
        out[f"hito_vs_{_key(base)}"] = ratio(hito, rate[base])
    out["hito_2w_vs_1w"] = ratio(rate["hito-2w"], hito)
    out["lane_floor_vs_faust_floor"] = ratio(rate["lane-floor"], rate["faust-floor"])
    out["hito_cpu_vs_quix"] = ratio(hito_cpu, cpu["quix"])
    out["lane_floor_cpu_vs_faust_floor"] = ratio(lane_cpu, cpu["faust-floor"])
    out["hito_cpu_above_lane_floor_us"] = (
        hito_cpu - lane_cpu if hito_cpu is not None and lane_cpu is not None else None
    )
    out["latency_p99_s"] = latency.get("p99_s") if latency else None
    # The memory target is at a million devices and identities: a smaller model is reported
    # (rss_modelled_mb) but not judged.
    modelled = state.get("modelled_worker_rss_mb") if state else None
    at_scale = state is not None and min(state["devices"], state["identities"]) >= 1_000_000
    out["rss_modelled_mb"] = modelled
    out["rss_1m_modelled_mb"] = modelled if at_scale else None
    out["registry_load_1m_s"] = state.get("registry_load_s") if state and at_scale else None
    return out


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
        "reported": report["reported"],
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
    for col in ("contender", "events", "s", "events/s", "CPU µs/event", "peak RSS MB", "points/s"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    for r in report["results"].values():
        name = r["name"] + ("" if r["complete"] else " (time-boxed)")
        table.add_row(
            name,
            _fmt(r["events"]),
            _fmt(r["seconds"], 2),
            _fmt(r["events_per_s"], 0),
            _fmt(r["cpu_us_per_event"], 1),
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
            f"max {_fmt(lat['max_s'], 2)} s, after {_fmt(lat.get('warmup_s', 0), 0)} s of "
            f"warm-up (with it: p99 {_fmt((lat.get('with_warmup') or {}).get('p99_s'), 2)} s)"
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
        backfill = state.get("backfill")
        if backfill:
            console.print(
                f"Backfill: {backfill['windows_held']:,} windows held (live and revising, at "
                f"most {backfill['revising_max']:,} revising) {_fmt(backfill['held_mb'], 1)} MB "
                f"of it; the archive of {backfill['archive_sites']} sites x "
                f"{backfill['archive_days']} days ({backfill['archive_windows']:,} windows of "
                f"{backfill['archive_line_bytes']:,} bytes) is "
                f"{_fmt(backfill['archive_mb_uncompressed'], 0)} MB of line protocol, in InfluxDB"
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
    ratios = Table(title="Reported (same run, no threshold)")
    for col in ("figure", "value"):
        ratios.add_column(col)
    for f in report["reported"]:
        ratios.add_row(f["name"], _sig(f["value"]))
    console.print(ratios)
    verdict = Table(title="Targets (ratios from this run)")
    for col in ("target", "issue", "value", "verdict"):
        verdict.add_column(col)
    for v in report["targets"]:
        mark = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "not measured"}
        verdict.add_row(v["name"], v["issue"], _sig(v["value"]), mark[v["passed"]])
    console.print(verdict)
    console.print(f"Report: {report['out']}   command: {report['command']}")
