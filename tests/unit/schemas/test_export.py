"""The committed JSON Schemas are exactly what the models export (device makers build on them)."""

from __future__ import annotations

import json
from pathlib import Path

from hito.schemas.export import EXPORT_DIR, export, rendered_schemas


def test_committed_schemas_have_not_drifted() -> None:
    rendered = rendered_schemas()
    committed = {p.name: p.read_text(encoding="utf-8") for p in EXPORT_DIR.glob("*.json")}
    assert committed == rendered, (
        "run `hito schema export --dir schemas` and commit schemas/jsonschema/"
    )


def test_export_marks_pii_and_forbids_extra_fields(tmp_path: Path) -> None:
    paths = export(tmp_path)
    assert sorted(p.name for p in paths) == [
        "checkpoint.crossing.v1.schema.json",
        "dlq.original.v2.schema.json",
        "dlq.record.v3.schema.json",
        "drone.telemetry.v1.schema.json",
        "sensor.reading.v1.schema.json",
    ]
    doc = json.loads((tmp_path / "checkpoint.crossing.v1.schema.json").read_text())
    payload = doc["$defs"]["CheckpointCrossingV1"]
    pii = sorted(k for k, v in payload["properties"].items() if v.get("pii"))
    assert pii == ["birth_year", "document_number", "vehicle_plate"]
    assert payload["additionalProperties"] is False
    assert doc["additionalProperties"] is False
    assert doc["properties"]["schema"]["const"] == "checkpoint.crossing/1"
    drone = json.loads((tmp_path / "drone.telemetry.v1.schema.json").read_text())
    assert drone["$defs"]["DroneTelemetryV1"]["properties"]["operator_id"]["pii"] is True
