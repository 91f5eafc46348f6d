"""Load and check the privacy policy (``policy.yaml``) against the registered schemas."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml

from hito.schemas.registry import REGISTRY

# Package data: the policy travels in the wheel next to this module.
POLICY_FILE = Path(str(files("hito.schemas.privacy").joinpath("policy.yaml")))

RuleKind = Literal["keep", "pseudonymise", "drop", "year_band", "geohash"]


class PolicyError(ValueError):
    """The policy does not cover the schemas exactly; raised at start-up."""


@dataclass(frozen=True)
class Rule:
    kind: RuleKind
    param: int | None = None  # band width in years, or geohash precision

    def describe(self) -> str:
        if self.kind == "year_band":
            return f"generalise to {self.param}-year band"
        if self.kind == "geohash":
            return f"generalise to geohash precision {self.param}"
        return self.kind


@dataclass(frozen=True)
class Policy:
    version: str
    small_count_k: int
    event_time_resolution_s: int
    rules: dict[str, dict[str, Rule]]  # schema name -> field -> rule

    def rule(self, schema: str, field: str) -> Rule:
        return self.rules[schema][field]


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML silently keeps the last of two equal keys; a policy must not."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise PolicyError(f"rule for {key!r} given twice (line {key_node.start_mark.line + 1})")
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
    raise PolicyError(f"{where}: not a valid rule: {raw!r}")


def load_policy(path: Path = POLICY_FILE) -> Policy:
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    top = {"version", "small_count_k", "event_time_resolution_s", "schemas"}
    if not isinstance(doc, dict) or set(doc) != top:
        raise PolicyError(f"policy needs exactly: {', '.join(sorted(top))}")
    version, k, schemas = doc["version"], doc["small_count_k"], doc["schemas"]
    resolution = doc["event_time_resolution_s"]
    if not isinstance(resolution, int) or not 1 <= resolution <= 3600:
        raise PolicyError("event_time_resolution_s must be an integer from 1 to 3600")
    if not isinstance(version, str) or not version:
        raise PolicyError("version must be a non-empty string")
    if not isinstance(k, int) or k < 2:
        raise PolicyError("small_count_k must be an integer >= 2")
    if not isinstance(schemas, dict):
        raise PolicyError("schemas must map schema names to field rules")
    problems = []
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
    if problems:
        raise PolicyError("privacy policy does not match the schemas:\n  " + "\n  ".join(problems))
    return Policy(version=version, small_count_k=k, event_time_resolution_s=resolution, rules=rules)
