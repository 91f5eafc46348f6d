"""Load the privacy policy (``policy.yaml``) and check it against the schemas and the outputs.

A :class:`Policy` is what the pipeline applies: one rule per payload field, the purposes each
kept field serves (with their outputs and linkability horizons) and the retention of each data
zone. :func:`load_policy` refuses, with every problem named at once, a policy that is not
complete and consistent (the checks are in :mod:`hito.schemas.privacy.checks`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml

from hito.schemas.registry import REGISTRY

# Package data: the policy travels in the wheel next to this module.
POLICY_FILE = Path(str(files("hito.schemas.privacy").joinpath("policy.yaml")))
OTHER = "other"  # what a value outside a generalisation's vocabulary becomes

RuleKind = Literal["keep", "pseudonymise", "drop", "year_band", "geohash", "vocabulary"]
_NAME = r"^[a-z][a-z0-9_]{0,47}$"
_VOCABULARY_WORD = r"^[A-Za-z0-9_-]{1,32}$"
_VERSION = r"^[A-Za-z0-9._:-]{1,64}$"
_NUMBERS = re.compile(r"(\d+)")


def newest_version(a: str, b: str) -> str:
    """The later of two policy versions, numbers compared as numbers ("2026-12-03.10" is
    after "2026-12-03.9", which plain string order put first). An aggregate counted under two
    versions (an upgrade in the middle of a minute) is tagged with the newer."""
    if a == b or not b:
        return a
    if not a:  # a new window or person-day: no version yet (the least of all, see the test)
        return b
    return max(a, b, key=_version_key)


def _version_key(version: str) -> tuple[tuple[str | int, ...], str]:
    # Text at even positions, numbers at odd ones: tuples compare without mixing types; the
    # text itself breaks ties ("v01" and "v1"), so the order is total.
    parts = tuple(int(p) if i % 2 else p for i, p in enumerate(_NUMBERS.split(version)))
    return parts, version


# Data zones and what each retention covers (policy.yaml ``retention_hours``).
RETENTION_ZONES: Mapping[str, str] = {
    "raw_events": "Kafka raw topics (personal data)",
    "dlq_records": "Kafka DLQ records: why events were rejected (no event bytes)",
    "dlq_originals": "Kafka DLQ originals: the rejected events' bytes (raw zone)",
    "clean_events": "Kafka clean topics (pseudonymised events)",
    "person_state": "a deleted per-person record in the workers' changelog, until compacted",
    "aggregates": "InfluxDB bucket (k-suppressed aggregates)",
    "window_archive": "InfluxDB <bucket>-archive: full (unsuppressed) window counts, pipeline only",
    "device_outbox": "events a device could not send yet (on the device)",
}


class PolicyError(ValueError):
    """The policy is incomplete or inconsistent; raised at start-up (and in CI)."""


@dataclass(frozen=True)
class Rule:
    kind: RuleKind
    param: int | None = None  # band width in years, or geohash precision
    vocabulary: frozenset[str] = frozenset()

    @property
    def leaves_raw_zone(self) -> bool:
        return self.kind != "drop"

    def describe(self) -> str:
        if self.kind == "year_band":
            return f"generalise to {self.param}-year band"
        if self.kind == "geohash":
            return f"generalise to geohash precision {self.param}"
        if self.kind == "vocabulary":
            return f"generalise to {', '.join(sorted(self.vocabulary))} or {OTHER}"
        return self.kind


@dataclass(frozen=True)
class Purpose:
    name: str
    description: str
    fields: Mapping[str, tuple[str, ...]]  # schema -> payload fields
    outputs: tuple[str, ...]
    horizon_hours: int | None  # records of one person link only within an epoch this long

    @property
    def epoch_s(self) -> int | None:
        return None if self.horizon_hours is None else self.horizon_hours * 3600

    def uses(self, schema: str, field_name: str) -> bool:
        return field_name in self.fields.get(schema, ())


@dataclass(frozen=True)
class Policy:
    version: str
    small_count_k: int
    event_time_resolution_s: int
    rules: dict[str, dict[str, Rule]]  # schema name -> field -> rule
    purposes: dict[str, Purpose] = field(default_factory=dict)
    retention_hours: Mapping[str, int] = field(default_factory=dict)

    def rule(self, schema: str, field_name: str) -> Rule:
        return self.rules[schema][field_name]

    def purposes_of(self, schema: str, field_name: str) -> tuple[str, ...]:
        """The purposes a field serves, by name."""
        return tuple(sorted(p.name for p in self.purposes.values() if p.uses(schema, field_name)))

    def pseudonym_purposes(self, schema: str) -> dict[str, tuple[Purpose, ...]]:
        """Pseudonymised field -> the purposes that get their own pseudonym of it."""
        return self._linking[schema]

    @cached_property
    def _linking(self) -> dict[str, dict[str, tuple[Purpose, ...]]]:
        return {
            schema: {
                name: tuple(p for _, p in sorted(self.purposes.items()) if p.uses(schema, name))
                for name, rule in rules.items()
                if rule.kind == "pseudonymise"
            }
            for schema, rules in self.rules.items()
        }

    @property
    def linking_purposes(self) -> tuple[Purpose, ...]:
        """Purposes with a linkability horizon: each has its own chain of epoch keys."""
        return tuple(p for _, p in sorted(self.purposes.items()) if p.horizon_hours is not None)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML silently keeps the last of two equal keys; a policy must not."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise PolicyError(f"{key!r} given twice (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_rule(where: str, raw: Any) -> Rule:
    if raw in ("keep", "pseudonymise", "drop"):
        return Rule(raw)
    if isinstance(raw, dict) and set(raw) == {"generalise"} and isinstance(raw["generalise"], dict):
        spec = raw["generalise"]
        if len(spec) == 1:
            ((kind, param),) = spec.items()
            if kind == "year_band" and isinstance(param, int) and 1 < param <= 100:
                return Rule("year_band", param)
            if kind == "geohash" and isinstance(param, int) and 1 <= param <= 9:
                return Rule("geohash", param)
            if (
                kind == "vocabulary"
                and isinstance(param, list)
                and param
                and all(isinstance(w, str) and re.match(_VOCABULARY_WORD, w) for w in param)
                and len(set(param)) == len(param)
                and OTHER not in param
            ):
                return Rule("vocabulary", vocabulary=frozenset(param))
    raise PolicyError(f"{where}: not a valid rule: {raw!r}")


def _parse_purpose(name: str, raw: Any, problems: list[str]) -> Purpose | None:
    where = f"purpose {name}"
    if not isinstance(name, str) or not re.match(_NAME, name):
        problems.append(f"{where}: a purpose name is lower_snake_case")
        return None
    allowed = {"description", "fields", "outputs", "linkability_horizon_hours"}
    if not isinstance(raw, dict) or not {"description", "fields", "outputs"} <= set(raw):
        problems.append(f"{where}: needs description, fields and outputs")
        return None
    if set(raw) - allowed:
        problems.append(f"{where}: unknown keys {sorted(set(raw) - allowed)}")
        return None
    fields, outputs, horizon = raw["fields"], raw["outputs"], raw.get("linkability_horizon_hours")
    if not isinstance(fields, dict) or not all(
        isinstance(f, list) and all(isinstance(x, str) for x in f) for f in fields.values()
    ):
        problems.append(f"{where}: fields maps schema names to lists of field names")
        return None
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        problems.append(f"{where}: outputs is a non-empty list of output names")
        return None
    if horizon is not None and (
        not isinstance(horizon, int) or isinstance(horizon, bool) or not 1 <= horizon <= 168
    ):
        problems.append(f"{where}: linkability_horizon_hours is a whole number from 1 to 168")
        return None
    return Purpose(
        name=name,
        description=" ".join(str(raw["description"]).split()),
        fields={schema: tuple(f) for schema, f in fields.items()},
        outputs=tuple(outputs),
        horizon_hours=horizon,
    )


def _parse_retention(raw: Any, problems: list[str]) -> dict[str, int]:
    if not isinstance(raw, dict):
        problems.append("retention_hours maps each data zone to hours")
        return {}
    for missing in sorted(set(RETENTION_ZONES) - set(raw)):
        problems.append(f"retention_hours.{missing}: not given")
    for unknown in sorted(set(raw) - set(RETENTION_ZONES)):
        problems.append(f"retention_hours.{unknown}: not a data zone")
    out = {}
    for zone, hours in raw.items():
        if zone in RETENTION_ZONES:
            if not isinstance(hours, int) or isinstance(hours, bool) or hours < 1:
                problems.append(f"retention_hours.{zone}: a whole number of hours >= 1")
            else:
                out[zone] = hours
    return out


def load_policy(path: Path = POLICY_FILE) -> Policy:
    from hito.schemas.privacy.checks import check

    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    top = {
        "version",
        "small_count_k",
        "event_time_resolution_s",
        "purposes",
        "schemas",
        "retention_hours",
    }
    if not isinstance(doc, dict) or set(doc) != top:
        raise PolicyError(f"policy needs exactly: {', '.join(sorted(top))}")
    version, k, schemas = doc["version"], doc["small_count_k"], doc["schemas"]
    resolution = doc["event_time_resolution_s"]
    if not isinstance(resolution, int) or not 1 <= resolution <= 3600:
        raise PolicyError("event_time_resolution_s must be an integer from 1 to 3600")
    if not isinstance(version, str) or not re.match(_VERSION, version):
        raise PolicyError("version must be 1 to 64 of A-Z a-z 0-9 . _ : - (a tag on every point)")
    if not isinstance(k, int) or k < 2:
        raise PolicyError("small_count_k must be an integer >= 2")
    if not isinstance(schemas, dict):
        raise PolicyError("schemas must map schema names to field rules")
    if not isinstance(doc["purposes"], dict) or not doc["purposes"]:
        raise PolicyError("purposes must map purpose names to their declaration")
    problems: list[str] = []
    rules: dict[str, dict[str, Rule]] = {}
    for name in sorted(set(REGISTRY) | set(schemas)):
        if name not in REGISTRY:
            problems.append(f"{name}: not a registered schema")
            continue
        fields = set(REGISTRY[name].payload_fields)
        given = schemas.get(name) or {}
        for missing in sorted(fields - set(given)):
            problems.append(f"{name}.{missing}: no rule")
        for unknown in sorted(set(given) - fields):
            problems.append(f"{name}.{unknown}: rule for a field the schema does not have")
        rules[name] = {f: _parse_rule(f"{name}.{f}", r) for f, r in given.items() if f in fields}
        geo = {f for f, r in rules[name].items() if r.kind == "geohash"}
        if geo and (geo != {"lat", "lon"} or rules[name]["lat"] != rules[name]["lon"]):
            problems.append(f"{name}: lat and lon must be generalised together, same precision")
    purposes = {}
    for name, raw in doc["purposes"].items():
        purpose = _parse_purpose(name, raw, problems)
        if purpose is not None:
            purposes[name] = purpose
    retention = _parse_retention(doc["retention_hours"], problems)
    policy = Policy(
        version=version,
        small_count_k=k,
        event_time_resolution_s=resolution,
        rules=rules,
        purposes=purposes,
        retention_hours=retention,
    )
    if not problems:
        problems = check(policy)
    if problems:
        raise PolicyError("privacy policy refused:\n  " + "\n  ".join(problems))
    return policy
