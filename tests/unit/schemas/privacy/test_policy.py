from __future__ import annotations

from pathlib import Path

import pytest

from hito.schemas.outputs import OUTPUTS
from hito.schemas.privacy.checks import free_text
from hito.schemas.privacy.policy import POLICY_FILE, PolicyError, load_policy
from hito.schemas.registry import REGISTRY

CHECKPOINT_COUNTS = "      checkpoint.crossing/1: [direction, mode, outcome, nationality]\n"


def test_shipped_policy_covers_every_field_exactly_once() -> None:
    policy = load_policy()
    for name, entry in REGISTRY.items():
        assert set(policy.rules[name]) == set(entry.payload_fields)
    assert policy.rule("checkpoint.crossing/1", "document_number").kind == "pseudonymise"
    assert policy.rule("drone.telemetry/1", "operator_id").kind == "drop"
    assert policy.small_count_k == 5
    assert set(policy.purposes) == {
        "crossing_counts",
        "wait_times",
        "repeat_crossings",
        "sensor_coverage",
    }
    assert [p.name for p in policy.linking_purposes] == ["repeat_crossings"]
    assert policy.purposes["repeat_crossings"].epoch_s == 86400
    assert policy.retention_hours["raw_events"] == policy.retention_hours["dlq_originals"] == 24


def test_every_field_that_leaves_the_raw_zone_serves_a_purpose_and_only_those() -> None:
    policy = load_policy()
    leaving = {
        (schema, f)
        for schema, rules in policy.rules.items()
        for f, rule in rules.items()
        if rule.kind != "drop"
    }
    served = {
        (schema, f)
        for p in policy.purposes.values()
        for schema, fields in p.fields.items()
        for f in fields
    }
    assert leaving == served
    assert {o for p in policy.purposes.values() for o in p.outputs} == set(OUTPUTS)


def _variant(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = POLICY_FILE.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        # Every field, one rule.
        (
            [("    vehicle_plate: drop ", "   ")],
            "checkpoint.crossing/1.vehicle_plate: no rule",
        ),
        (
            [("    outcome: keep\n", "    outcome: keep\n    shoe_size: keep\n")],
            "shoe_size: rule for a field the schema does not have",
        ),
        ([("    mode: keep\n", "    mode: keep\n    mode: drop\n")], "given twice"),
        ([("    mode: keep\n", "    mode: hide\n")], "not a valid rule"),
        (
            [
                (
                    "    lon: {generalise: {geohash: 6}}\n    detections",
                    "    lon: {generalise: {geohash: 5}}\n    detections",
                )
            ],
            "generalised together",
        ),
        (
            [
                (
                    "  drone.telemetry/1:\n    flight_id",
                    "  drone.telemetry/7:\n    x: keep\n  drone.telemetry/1:\n    flight_id",
                )
            ],
            "drone.telemetry/7: not a registered schema",
        ),
        # A purpose naming an unknown field or output.
        (
            [
                (
                    CHECKPOINT_COUNTS,
                    CHECKPOINT_COUNTS.replace("]", ", shoe_size]"),
                )
            ],
            "purpose crossing_counts: names checkpoint.crossing/1.shoe_size, a field the schema "
            "does not have",
        ),
        (
            [
                (
                    "    outputs: [crossings, crossings_by_nationality, surge]",
                    "    outputs: [crossings, crossings_by_nationality, surge, heatmap]",
                )
            ],
            "purpose crossing_counts: output 'heatmap' does not exist",
        ),
        # A pseudonymised field that no purpose with a horizon uses.
        (
            [("    vehicle_plate: drop ", "    vehicle_plate: pseudonymise ")],
            "checkpoint.crossing/1.vehicle_plate: pseudonymised, but no purpose with a "
            "linkability horizon uses it",
        ),
        (
            [("    linkability_horizon_hours: 24\n", "")],
            "purpose repeat_crossings: pseudonymises checkpoint.crossing/1.document_number but "
            "declares no linkability_horizon_hours",
        ),
        (
            [
                (
                    "    outputs: [wait_time]\n",
                    "    outputs: [wait_time]\n    linkability_horizon_hours: 1\n",
                )
            ],
            "purpose wait_times: has a linkability horizon but pseudonymises no field",
        ),
        # keep on free text.
        (
            [
                ("    flight_id: drop ", "    flight_id: keep "),
                ("      drone.telemetry/1: [lat", "      drone.telemetry/1: [flight_id, lat"),
            ],
            "drone.telemetry/1.flight_id: keep on a text field without a closed vocabulary or "
            "an anchored pattern with a maximum length",
        ),
        # Fields and purposes agree both ways.
        (
            [("    birth_year: drop ", "    birth_year: {generalise: {year_band: 10}} ")],
            "checkpoint.crossing/1.birth_year: generalise to 10-year band, but no purpose needs "
            "it; drop it",
        ),
        (
            [
                ("    lane: drop ", "    lane: keep "),
                (
                    CHECKPOINT_COUNTS,
                    "      checkpoint.crossing/1: [direction, mode, outcome, nationality, lane]\n",
                ),
            ],
            "purpose crossing_counts: checkpoint.crossing/1.lane serves none of its outputs",
        ),
        (
            [
                (
                    CHECKPOINT_COUNTS,
                    "      checkpoint.crossing/1: [direction, outcome, nationality]\n",
                )
            ],
            "purpose crossing_counts: its output crossings is computed from "
            "checkpoint.crossing/1.mode, which the purpose does not declare",
        ),
        (
            [
                (
                    CHECKPOINT_COUNTS,
                    CHECKPOINT_COUNTS.replace("]", ", birth_year]"),
                )
            ],
            "names checkpoint.crossing/1.birth_year, whose rule drops it in the raw zone",
        ),
        # Outputs: each exactly one purpose.
        (
            [
                (
                    "    outputs: [crossings, crossings_by_nationality, surge]",
                    "    outputs: [crossings, crossings_by_nationality]",
                )
            ],
            "output surge: no purpose declares it",
        ),
        (
            [("    outputs: [wait_time]", "    outputs: [wait_time, surge]")],
            "output surge: declared by crossing_counts, wait_times; one purpose each",
        ),
        # Retention of every zone.
        ([("  device_outbox: 168 ", "  ")], "retention_hours.device_outbox: not given"),
        ([("  aggregates: 9600 ", "  aggregates: 0 ")], "retention_hours.aggregates: a whole"),
    ],
)
def test_a_policy_that_does_not_hold_together_is_refused(
    tmp_path: Path, edits: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy(_variant(tmp_path, *edits))
    assert message in str(refused.value)


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    path = _variant(
        tmp_path,
        ("    vehicle_plate: drop ", "    vehicle_plate: pseudonymise "),
        ("    birth_year: drop ", "    birth_year: keep "),
    )
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    lines = str(refused.value).splitlines()[1:]
    assert [ln.strip() for ln in lines] == [
        "checkpoint.crossing/1.birth_year: keep, but no purpose needs it; drop it",
        "checkpoint.crossing/1.vehicle_plate: pseudonymised, but no purpose with a "
        "linkability horizon uses it; drop it",
    ]


@pytest.mark.parametrize(
    ("schema", "field", "bounded"),
    [
        ("checkpoint.crossing/1", "direction", True),  # closed vocabulary
        ("checkpoint.crossing/1", "lane", True),  # anchored pattern, maximum length
        ("checkpoint.crossing/1", "nationality", True),
        ("checkpoint.crossing/1", "processing_seconds", True),  # a number
        ("sensor.reading/1", "unit", True),  # optional closed vocabulary
        ("sensor.reading/1", "value", True),  # optional number
        ("checkpoint.crossing/1", "document_number", False),  # pattern without a maximum
        ("drone.telemetry/1", "flight_id", False),
        ("drone.telemetry/1", "operator_id", False),
    ],
)
def test_keep_needs_a_schema_that_bounds_the_text(schema: str, field: str, bounded: bool) -> None:
    assert (free_text(schema, field) is None) is bounded
