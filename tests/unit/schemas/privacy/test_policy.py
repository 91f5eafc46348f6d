from __future__ import annotations

from pathlib import Path

import pytest

from hito.schemas.privacy.policy import POLICY_FILE, PolicyError, load_policy
from hito.schemas.registry import REGISTRY


def test_shipped_policy_covers_every_field_exactly_once() -> None:
    policy = load_policy()
    for name, entry in REGISTRY.items():
        assert set(policy.rules[name]) == set(entry.payload_fields)
    assert policy.rule("checkpoint.crossing/1", "document_number").kind == "pseudonymise"
    assert policy.rule("drone.telemetry/1", "operator_id").kind == "drop"
    assert policy.small_count_k == 5


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = POLICY_FILE.read_text()
    assert old in text
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    vehicle_plate: pseudonymise\n", "", "checkpoint.crossing/1.vehicle_plate: no rule"),
        (
            "    outcome: keep\n",
            "    outcome: keep\n    shoe_size: keep\n",
            "shoe_size: rule for a field the schema does not have",
        ),
        ("    lane: keep\n", "    lane: keep\n    lane: drop\n", "given twice"),
        ("    mode: keep\n", "    mode: hide\n", "not a valid rule"),
        (
            "    lat: {generalise: {geohash: 6}}\n    lon: {generalise: {geohash: 6}}\n"
            "    detections: keep\n    value",
            "    lat: {generalise: {geohash: 6}}\n    lon: {generalise: {geohash: 5}}\n"
            "    detections: keep\n    value",
            "generalised together",
        ),
        (
            "  drone.telemetry/1:",
            "  drone.telemetry/7:\n    x: keep\n  drone.telemetry/1:",
            "not a registered schema",
        ),
    ],
)
def test_policy_that_does_not_match_the_schemas_fails(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policy(_variant(tmp_path, old, new))
