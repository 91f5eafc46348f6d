"""The bench's report math: CPU per event, ratios from one run, percentiles, latencies from
cumulative curves, and the targets' verdicts."""

from __future__ import annotations

import pytest

from hito.bench.report import (
    REPORTED,
    TARGETS,
    Result,
    figures_of,
    latencies_from_curves,
    percentile,
    ratio,
    reported,
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


def _result(name: str, events: int, seconds: float, cpu_s: float | None = None) -> Result:
    return Result(name=name, events=events, seconds=seconds, complete=True, cpu_s=cpu_s)


def test_result_rates_and_cpu_per_event() -> None:
    r = Result("hito-1w", events=4000, seconds=2.0, complete=True, cpu_s=3.0, points=100)
    assert r.events_per_s == 2000.0
    assert r.cpu_us_per_event == 750.0
    assert r.points_per_s == 50.0
    d = r.as_dict()
    assert d["events_per_s"] == 2000.0 and d["cpu_us_per_event"] == 750.0
    assert _result("x", 10, 0.0).events_per_s == 0.0
    assert _result("x", 10, 1.0).cpu_us_per_event is None
    assert _result("x", 0, 1.0, cpu_s=1.0).cpu_us_per_event is None


def _run(hito_cpu_s: float = 1.2) -> dict[str, Result]:
    """One run: 60,000 events for every contender but the time-boxed naive loop."""
    return {
        "ceiling": _result("ceiling", 60_000, 0.5, cpu_s=0.3),
        "faust-floor": _result("faust-floor", 60_000, 15.0, cpu_s=3.0),
        "lane-floor": _result("lane-floor", 60_000, 2.0, cpu_s=0.6),
        "hito-1w": _result("hito-1w", 60_000, 1.0, cpu_s=hito_cpu_s),
        "hito-2w": _result("hito-2w", 60_000, 0.8, cpu_s=1.5),
        "quix": _result("quix", 60_000, 6.0, cpu_s=12.0),
        "naive": _result("naive", 5_000, 1.0, cpu_s=3.0),
    }


FULL_STATE = {
    "devices": 1_000_000,
    "identities": 1_000_000,
    "modelled_worker_rss_mb": 250.0,
    "registry_load_s": 0.15,
}


def test_figures_give_every_contender_its_rate_and_cpu_per_event() -> None:
    f = figures_of(_run(), {"p99_s": 0.8}, FULL_STATE)
    assert f["hito_1w_events_per_s"] == 60_000
    assert f["lane_floor_events_per_s"] == 30_000
    assert {k: f[f"{k}_cpu_us_per_event"] for k in ("ceiling", "faust_floor", "lane_floor")} == {
        "ceiling": pytest.approx(5.0),
        "faust_floor": pytest.approx(50.0),
        "lane_floor": pytest.approx(10.0),
    }
    assert f["hito_1w_cpu_us_per_event"] == pytest.approx(20.0)
    assert f["hito_2w_cpu_us_per_event"] == pytest.approx(25.0)
    assert f["quix_cpu_us_per_event"] == pytest.approx(200.0)
    assert f["naive_cpu_us_per_event"] == pytest.approx(600.0)  # over the 5,000 it handled


def test_figures_are_ratios_from_the_same_run() -> None:
    f = figures_of(_run(), {"p99_s": 0.8}, FULL_STATE)
    assert f["hito_vs_ceiling"] == pytest.approx(0.5)
    assert f["hito_vs_lane_floor"] == pytest.approx(2.0)
    assert f["hito_vs_faust_floor"] == pytest.approx(15.0)
    assert f["hito_vs_naive"] == pytest.approx(12.0)
    assert f["hito_vs_quix"] == pytest.approx(6.0)
    assert f["hito_2w_vs_1w"] == pytest.approx(1.25)
    assert f["lane_floor_vs_faust_floor"] == pytest.approx(7.5)
    assert f["hito_cpu_vs_quix"] == pytest.approx(0.1)
    assert f["lane_floor_cpu_vs_faust_floor"] == pytest.approx(0.2)
    assert f["hito_cpu_above_lane_floor_us"] == pytest.approx(10.0)
    assert f["latency_p99_s"] == 0.8
    assert f["rss_1m_modelled_mb"] == 250.0 and f["registry_load_1m_s"] == 0.15


def test_issue_16_targets_pass_when_every_ratio_is_met() -> None:
    by_figure = {v["figure"]: v for v in verdicts(figures_of(_run(), {"p99_s": 0.8}, FULL_STATE))}
    assert {f: v["passed"] for f, v in by_figure.items() if v["issue"] == "#16"} == {
        "hito_1w_cpu_us_per_event": True,
        "hito_cpu_vs_quix": True,
        "hito_vs_quix": True,
        "hito_vs_naive": True,
        "latency_p99_s": True,
        "rss_1m_modelled_mb": True,
    }
    # The project's goal from #8 is judged too: 60,000 events/s meets it.
    assert by_figure["hito_1w_events_per_s"] == {
        "name": "one worker >= 50,000 events/s end to end",
        "figure": "hito_1w_events_per_s",
        "op": ">=",
        "threshold": 50_000,
        "issue": "#8",
        "value": 60_000.0,
        "passed": True,
    }


def test_cpu_targets_fail_just_past_their_thresholds() -> None:
    # 2.46 s over 60,000 events = 41 us per event (> 40), and 41 / 200 = 0.205 of Quix's (> 1/5).
    by_figure = {v["figure"]: v for v in verdicts(figures_of(_run(2.46), None, None))}
    assert by_figure["hito_1w_cpu_us_per_event"]["value"] == pytest.approx(41.0)
    assert by_figure["hito_1w_cpu_us_per_event"]["passed"] is False
    assert by_figure["hito_cpu_vs_quix"]["value"] == pytest.approx(0.205)
    assert by_figure["hito_cpu_vs_quix"]["passed"] is False
    # Exactly at a threshold passes: 2.4 s = 40 us, and 40 / 200 = 1/5.
    at = {v["figure"]: v["passed"] for v in verdicts(figures_of(_run(2.4), None, None))}
    assert at["hito_1w_cpu_us_per_event"] is True and at["hito_cpu_vs_quix"] is True


def test_verdicts_fail_short_figures_and_skip_missing_ones() -> None:
    f = figures_of({"hito-1w": _result("hito-1w", 100, 1.0)}, {"p99_s": 1.2}, None)
    by_figure = {v["figure"]: v for v in verdicts(f)}
    assert len(by_figure) == len(TARGETS)
    assert by_figure["hito_1w_events_per_s"]["passed"] is False
    assert by_figure["latency_p99_s"]["passed"] is False
    assert by_figure["hito_vs_quix"]["passed"] is None  # no peer in this run
    assert by_figure["hito_1w_cpu_us_per_event"]["passed"] is None  # no CPU figure
    assert by_figure["rss_1m_modelled_mb"]["passed"] is None


def test_a_smaller_memory_model_is_reported_but_not_judged() -> None:
    small = {**FULL_STATE, "devices": 20_000, "modelled_worker_rss_mb": 130.0}
    f = figures_of({}, None, small)
    assert f["rss_modelled_mb"] == 130.0
    assert f["rss_1m_modelled_mb"] is None and f["registry_load_1m_s"] is None
    assert {v["figure"]: v["passed"] for v in verdicts(f)}["rss_1m_modelled_mb"] is None


def test_reported_figures_are_labelled_and_have_no_verdict() -> None:
    rows = reported(figures_of(_run(), None, FULL_STATE))
    assert [r["figure"] for r in rows] == [figure for _, figure in REPORTED]
    by_figure = {r["figure"]: r for r in rows}
    assert by_figure["hito_vs_lane_floor"] == {
        "name": "one worker / lane floor, events/s",
        "figure": "hito_vs_lane_floor",
        "value": 2.0,
    }
    assert by_figure["registry_load_1m_s"]["value"] == 0.15
    assert all("passed" not in r for r in rows)


def test_the_json_summary_is_the_headline_of_the_report() -> None:
    """`hito bench --json`: figures, verdicts, errors and where the full report is."""
    from hito.bench.report import summary

    report = {
        "run": "r1",
        "out": "/state/bench/r1/report.json",
        "seconds": 12.5,
        "figures": {"events_per_s": 2200.0},
        "targets": [{"target": "latency", "verdict": "pass"}],
        "reported": [{"name": "one worker / ceiling", "value": 0.1}],
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
        "reported": [{"name": "one worker / ceiling", "value": 0.1}],
        "errors": {},
    }
