"""The bench's report math: ratios, percentiles, latencies from cumulative curves, verdicts."""

from __future__ import annotations

import pytest

from hito.bench.report import (
    TARGETS,
    Result,
    figures_of,
    latencies_from_curves,
    percentile,
    ratio,
    verdicts,
)


def test_ratio_is_none_without_a_positive_denominator() -> None:
    assert ratio(10.0, 4.0) == 2.5
    assert ratio(None, 4.0) is None
    assert ratio(10.0, None) is None
    assert ratio(10.0, 0.0) is None


def test_percentile_is_nearest_rank_and_never_interpolates() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.7], 99) == 0.7
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 0)


def test_latencies_from_cumulative_curves() -> None:
    sent = [0.0, 0.1, 0.2, 1.0]
    observed = [(0.5, 0), (1.1, 2), (1.5, 2), (2.0, 4)]
    # Events 1 and 2 first seen at 1.1, events 3 and 4 at 2.0.
    assert latencies_from_curves(sent, observed) == pytest.approx([1.1, 1.0, 1.8, 1.0])


def test_latencies_leave_out_events_never_seen_and_never_go_negative() -> None:
    assert latencies_from_curves([0.0, 1.0, 2.0], [(0.0, 1), (1.5, 2)]) == [0.0, 0.5]
    assert latencies_from_curves([1.0], []) == []


def _result(name: str, events: int, seconds: float) -> Result:
    return Result(name=name, events=events, seconds=seconds, complete=True)


def test_result_rates_and_cpu_per_thousand() -> None:
    r = Result("hito-1w", events=4000, seconds=2.0, complete=True, cpu_s=3.0, points=100)
    assert r.events_per_s == 2000.0
    assert r.cpu_s_per_1k == 0.75
    assert r.points_per_s == 50.0
    d = r.as_dict()
    assert d["events_per_s"] == 2000.0 and d["cpu_s_per_1k_events"] == 0.75
    assert _result("x", 10, 0.0).events_per_s == 0.0
    assert _result("x", 10, 1.0).cpu_s_per_1k is None


def test_figures_are_ratios_to_each_baseline() -> None:
    results = {
        "hito-1w": _result("hito-1w", 60_000, 1.0),
        "hito-2w": _result("hito-2w", 60_000, 0.5),
        "ceiling": _result("ceiling", 100_000, 1.0),
        "faust-floor": _result("faust-floor", 80_000, 1.0),
        "naive": _result("naive", 10_000, 1.0),
        "quix": _result("quix", 30_000, 1.0),
    }
    f = figures_of(results, {"p99_s": 1.5}, {"modelled_worker_rss_mb": 250.0})
    assert f["hito_1w_events_per_s"] == 60_000
    assert f["hito_vs_ceiling"] == pytest.approx(0.6)
    assert f["hito_vs_faust_floor"] == pytest.approx(0.75)
    assert f["hito_vs_naive"] == pytest.approx(6.0)
    assert f["hito_vs_quix"] == pytest.approx(2.0)
    assert f["hito_2w_vs_1w"] == pytest.approx(2.0)
    assert all(v["passed"] is True for v in verdicts(f))


def test_verdicts_fail_short_figures_and_skip_missing_ones() -> None:
    f = figures_of({"hito-1w": _result("hito-1w", 100, 1.0)}, {"p99_s": 2.5}, None)
    by_figure = {v["figure"]: v for v in verdicts(f)}
    assert len(by_figure) == len(TARGETS)
    assert by_figure["hito_1w_events_per_s"]["passed"] is False
    assert by_figure["latency_p99_s"]["passed"] is False
    assert by_figure["hito_vs_ceiling"]["passed"] is None  # no ceiling in this run
    assert by_figure["rss_1m_modelled_mb"]["passed"] is None


def test_ahead_of_the_peer_means_strictly_ahead() -> None:
    f = figures_of({"hito-1w": _result("a", 10, 1.0), "quix": _result("b", 10, 1.0)}, None, None)
    assert {v["figure"]: v["passed"] for v in verdicts(f)}["hito_vs_quix"] is False


def test_the_json_summary_is_the_headline_of_the_report() -> None:
    """`hito bench --json`: figures, verdicts, errors and where the full report is."""
    from hito.bench.report import summary

    report = {
        "run": "r1",
        "out": "/state/bench/r1/report.json",
        "seconds": 12.5,
        "figures": {"events_per_s": 2200.0},
        "targets": [{"target": "latency", "verdict": "pass"}],
        "errors": {},
        "results": {"hito-1w": {"events": 20000}},
        "machine": {"nproc": 2},
    }
    assert summary(report) == {
        "run": "r1",
        "report": "/state/bench/r1/report.json",
        "seconds": 12.5,
        "figures": {"events_per_s": 2200.0},
        "targets": [{"target": "latency", "verdict": "pass"}],
        "errors": {},
    }
