"""Export the published JSON Schemas (one file per event schema, plus the DLQ record).

The exported files are committed under ``schemas/jsonschema/``; a unit test fails when they
drift from the models, so device makers always get what the validator enforces.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from hito.schemas.dlq import DlqOriginal, DlqRecord
from hito.schemas.registry import REGISTRY

# The committed copies, package data of hito.schemas (a unit test keeps them equal to the
# models); `hito schema export` writes fresh ones wherever it is asked to.
EXPORT_DIR = Path(str(files("hito.schemas").joinpath("jsonschema")))
ID_BASE = "urn:hito:schema:"


def rendered_schemas() -> dict[str, str]:
    """File name -> JSON text, deterministic (sorted keys, trailing newline)."""
    out: dict[str, str] = {}
    for entry in REGISTRY.values():
        doc: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{ID_BASE}{entry.name}",
            **entry.model.model_json_schema(by_alias=True, mode="validation"),
        }
        doc["title"] = entry.name
        out[f"{entry.file_stem}.schema.json"] = _dump(doc)
    # record/2: since the DLQ was split, operators' records carry no original bytes; record/3
    # and original/2: a random rejection_id pairs them, not the bytes' SHA-256 (hito.schemas.dlq).
    for name, model in (("dlq.record/3", DlqRecord), ("dlq.original/2", DlqOriginal)):
        doc = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{ID_BASE}{name}",
            **model.model_json_schema(by_alias=True, mode="serialization"),
        }
        out[f"{name.replace('/', '.v')}.schema.json"] = _dump(doc)
    return out


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path = EXPORT_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
