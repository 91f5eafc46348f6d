"""Dashboards as code, checked offline (Grafana cannot run here):

- each validates against Grafana's dashboard JSON Schema, generated from @grafana/schema
  (the version of the Grafana image in docker-compose.yml) by infra/grafana/schema/build.sh;
- every InfluxDB query names only measurements, fields and tags the pipeline writes (found by
  running the real point builders), every PromQL query parses (promtool) and reads only
  metrics the worker exports;
- every panel uses a provisioned datasource.
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.sinks.lines import line, points_for, repeat_points
from hito.pipeline.stages import aggregate
from hito.pipeline.state import pipeline_counts
from hito.schemas.clean import CleanEvent
from hito.settings import REPO_ROOT
from tests.unit.infra.tools import tool as promtool

GRAFANA = REPO_ROOT / "infra" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
NOT_OURS = {"up", "ALERTS", "vector", "time"}  # Prometheus' own series and functions


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    built = subprocess.run(
        ["bash", str(GRAFANA / "schema" / "build.sh")], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    loaded: dict[str, Any] = json.loads(Path(built.stdout.strip()).read_text())
    return loaded


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _written() -> dict[str, tuple[set[str], set[str]]]:
    """measurement -> (fields, tags) of every point the pipeline writes, from the real point
    builders fed with one event of each source, a closed day of repeat crossings, a surge point
    and a pipeline count."""
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    state = aggregate.new_state("chacalluta", start)
    when = "2026-11-28T12:00:00Z"
    payloads: list[tuple[str, dict[str, Any]]] = [
        (
            "checkpoint",
            {
                "direction": "entry",
                "mode": "car",
                "outcome": "admitted",
                "nationality": "CL",
                "processing_seconds": 30.0,
            },
        ),
        (
            "sensor",
            {"sensor_type": "ground", "geohash": "6wr7m4", "detections": 1, "value": 2.0},
        ),
        ("drone", {"geohash": "6wr7m4", "detections": 2, "alt_m": 100.0, "battery_pct": 80.0}),
    ]
    for seq, (source, payload) in enumerate(payloads):
        event = CleanEvent.model_validate(
            {
                "source": source,
                "schema": "x/1",
                "site": "chacalluta",
                "device_id": "cl-chacalluta-ckpt-01",
                "seq": seq,
                "event_time": when,
                "policy": "p",
                "payload": payload,
            }
        )
        # The drone fix came late: a revision (the revisions measurement).
        revised_at = 1_796_310_000 if source == "drone" else None
        assert aggregate.add(state, event, ("hito.raw.sensor|0", seq), revised_at)
    lines = points_for(state, k=1)
    lines += repeat_points("chacalluta", start, {"entry": 6}, "p", 5)
    lines.append(
        line(
            "surge",
            {"site": "s", "direction": "entry", "policy": "p"},
            {"observed": 1, "baseline": 1.0, "score": 0.0, "basis": "seasonal"},
            start,
        )
    )
    counts = {"start": when, "version": 1, "counts": {"validate|accepted": 1}}
    lines += pipeline_counts.points(0, counts)
    out: dict[str, tuple[set[str], set[str]]] = {}
    for ln in lines:
        series, fields, _ = ln.split(" ")
        measurement, *tags = series.split(",")
        known = out.setdefault(measurement, (set(), set()))
        known[0].update(f.split("=", 1)[0] for f in fields.split(","))
        known[1].update(t.split("=", 1)[0] for t in tags)
    return out


def _flux_queries(dashboard: dict[str, Any]) -> list[str]:
    return [
        t["query"]
        for p in _panels(dashboard)
        for t in p["targets"]
        if t["datasource"]["type"] == "influxdb"
    ]


def _promql(dashboard: dict[str, Any]) -> list[str]:
    return [
        t["expr"]
        for p in _panels(dashboard)
        for t in p["targets"]
        if t["datasource"]["type"] == "prometheus"
    ]


def test_there_are_the_four_dashboards_the_operators_need() -> None:
    titles = {_load(p)["title"] for p in DASHBOARDS}
    assert titles == {
        "Hito — border overview",
        "Hito — surge status",
        "Hito — sensors and drones by geohash",
        "Hito — pipeline health",
    }
    uids = [_load(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_matches_grafanas_schema(path: Path, schema: dict[str, Any]) -> None:
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(_load(path)))
    assert not errors, [f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]]


def test_the_schema_check_can_fail(schema: dict[str, Any]) -> None:
    dashboard = _load(DASHBOARDS[0])
    validator = jsonschema.Draft7Validator(schema)
    assert not list(validator.iter_errors(dashboard))
    broken = json.loads(json.dumps(dashboard))
    broken["panels"][0]["gridPos"]["w"] = "wide"
    broken["refreshEvery"] = "10s"  # not a dashboard property
    errors = list(validator.iter_errors(broken))
    # A panel is Panel or RowPanel (anyOf): the precise reason is in the error's context.
    messages = [e.message for e in errors] + [c.message for e in errors for c in e.context or []]
    assert any("'wide' is not of type 'number'" in m for m in messages), messages
    assert any("refreshEvery" in m for m in messages), messages


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_use_provisioned_datasources(path: Path) -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "hito.yml").read_text()
    )
    uids = {(d["type"], d["uid"]) for d in provisioned["datasources"]}
    for panel in _panels(_load(path)):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert (target["datasource"]["type"], target["datasource"]["uid"]) in uids


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_influx_queries_read_what_the_pipeline_writes(path: Path) -> None:
    written = _written()
    for query in _flux_queries(_load(path)):
        measurements = re.findall(r'r\._measurement == "([^"]+)"', query)
        assert len(measurements) == 1, query
        [measurement] = measurements
        assert measurement in written, f"nothing writes {measurement!r}"
        fields, tags = written[measurement]
        used_fields = set(re.findall(r'r\._field == "([^"]+)"', query))
        assert used_fields and used_fields <= fields, (measurement, used_fields - fields)
        grouped = {
            c
            for cols in re.findall(r"group\(columns: \[([^\]]*)\]\)", query)
            for c in re.findall(r'"([^"]+)"', cols)
        }
        filtered = set(re.findall(r"r\.([a-z_]+) [!=]=", query)) - {"_measurement", "_field"}
        assert (grouped | filtered) - {"_field"} <= tags, (measurement, grouped | filtered)
        assert 'from(bucket: "hito")' in query and "v.timeRangeStart" in query


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_promql_parses_and_reads_exported_metrics(path: Path, tmp_path: Path) -> None:
    exprs = _promql(_load(path))
    if not exprs:
        return
    families = list(PipelineMetrics().registry.collect())
    exported = {f"{m.name}_total" if m.type == "counter" else m.name for m in families}
    exported |= {f"{m.name}_bucket" for m in families if m.type == "histogram"}
    for expr in exprs:
        names = set(re.findall(r"\b(hito_[a-z_]+)", expr))
        assert names <= exported, (expr, names - exported)
    # promtool parses PromQL offline when it is a recording rule.
    rules = {
        "groups": [
            {
                "name": "dash",
                "rules": [{"record": f"dash:q{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    rule_file = tmp_path / "dash.yml"
    rule_file.write_text(yaml.safe_dump(rules))
    tool = promtool("promtool")
    result = subprocess.run(
        [tool, "check", "rules", str(rule_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
