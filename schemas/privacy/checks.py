"""The policy's consistency checks: every field serves a declared purpose, every purpose names
real fields and outputs, linkable data has a horizon, and no free text is kept.

Each check returns the problems it finds as sentences naming the schema, field, purpose or
output, so that ``load_policy`` can refuse a policy with all its problems at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hito.schemas.outputs import OUTPUTS
from hito.schemas.registry import REGISTRY

if TYPE_CHECKING:
    from hito.schemas.privacy.policy import Policy, Purpose

Field = tuple[str, str]  # (schema, payload field)


def check(policy: Policy) -> list[str]:
    problems: list[str] = []
    for purpose in policy.purposes.values():
        problems += _purpose_problems(policy, purpose)
    problems += _output_problems(policy)
    problems += _unused_field_problems(policy)
    problems += _free_text_problems(policy)
    return problems


def _declared(purpose: Purpose) -> set[Field]:
    return {(schema, f) for schema, fields in purpose.fields.items() for f in fields}


def _read_by_outputs(purpose: Purpose) -> dict[Field, list[str]]:
    """Field -> the purpose's outputs computed from it."""
    out: dict[Field, list[str]] = {}
    for name in purpose.outputs:
        if name in OUTPUTS:
            for schema, fields in OUTPUTS[name].reads.items():
                for f in fields:
                    out.setdefault((schema, f), []).append(name)
    return out


def _purpose_problems(policy: Policy, purpose: Purpose) -> list[str]:
    where = f"purpose {purpose.name}"
    problems = []
    for schema, f in sorted(_declared(purpose)):
        if schema not in REGISTRY:
            problems.append(f"{where}: names {schema}.{f}, but {schema} is not a registered schema")
        elif f not in REGISTRY[schema].payload_fields:
            problems.append(f"{where}: names {schema}.{f}, a field the schema does not have")
        elif not policy.rule(schema, f).leaves_raw_zone:
            problems.append(f"{where}: names {schema}.{f}, whose rule drops it in the raw zone")
    for name in purpose.outputs:
        if name not in OUTPUTS:
            known = ", ".join(sorted(OUTPUTS))
            problems.append(f"{where}: output {name!r} does not exist (outputs: {known})")
    if len(set(purpose.outputs)) != len(purpose.outputs):
        problems.append(f"{where}: names an output twice")
    read = _read_by_outputs(purpose)
    declared = _declared(purpose)
    for (schema, f), outputs in sorted(read.items()):
        if (schema, f) not in declared:
            problems.append(
                f"{where}: its output {outputs[0]} is computed from {schema}.{f}, which the "
                "purpose does not declare"
            )
    for schema, f in sorted(declared - set(read)):
        if schema in REGISTRY and f in REGISTRY[schema].payload_fields:
            problems.append(f"{where}: {schema}.{f} serves none of its outputs")
    pseudonymised = sorted(
        f"{schema}.{f}"
        for schema, f in declared
        if schema in policy.rules
        and f in policy.rules[schema]
        and policy.rule(schema, f).kind == "pseudonymise"
    )
    if pseudonymised and purpose.horizon_hours is None:
        problems.append(
            f"{where}: pseudonymises {', '.join(pseudonymised)} but declares no "
            "linkability_horizon_hours (its pseudonyms would link a person for ever)"
        )
    if purpose.horizon_hours is not None and not pseudonymised:
        problems.append(f"{where}: has a linkability horizon but pseudonymises no field")
    return problems


def _output_problems(policy: Policy) -> list[str]:
    problems = []
    for name in OUTPUTS:
        fed_by = sorted(p.name for p in policy.purposes.values() if name in p.outputs)
        if not fed_by:
            # The pipeline computes every output; one without a purpose would read fields the
            # policy no longer lets out of the raw zone.
            problems.append(f"output {name}: no purpose declares it")
        elif len(fed_by) > 1:
            problems.append(f"output {name}: declared by {', '.join(fed_by)}; one purpose each")
    return problems


def _unused_field_problems(policy: Policy) -> list[str]:
    problems = []
    for schema, rules in sorted(policy.rules.items()):
        for f, rule in rules.items():
            if not rule.leaves_raw_zone or policy.purposes_of(schema, f):
                continue
            if rule.kind == "pseudonymise":
                problems.append(
                    f"{schema}.{f}: pseudonymised, but no purpose with a linkability horizon "
                    "uses it; drop it"
                )
            else:
                problems.append(
                    f"{schema}.{f}: {rule.describe()}, but no purpose needs it; drop it"
                )
    return problems


def _free_text_problems(policy: Policy) -> list[str]:
    problems = []
    for schema, rules in sorted(policy.rules.items()):
        for f, rule in rules.items():
            if rule.kind == "keep":
                why = free_text(schema, f)
                if why:
                    problems.append(f"{schema}.{f}: keep on {why}")
    return problems


def free_text(schema: str, field: str) -> str | None:
    """Why ``keep`` would let free text out, or None when the schema bounds the field: a
    number, a closed vocabulary (enum/const), or an anchored pattern with a maximum length.
    Read from the published JSON Schema, which is what device makers see too."""
    payload_model = REGISTRY[schema].model.model_fields["payload"].annotation
    assert isinstance(payload_model, type) and hasattr(payload_model, "model_json_schema")
    prop: dict[str, Any] = payload_model.model_json_schema()["properties"][field]
    for branch in prop.get("anyOf", [prop]):
        kind = branch.get("type")
        if kind == "null" or kind in ("integer", "number", "boolean"):
            continue
        if "enum" in branch or "const" in branch:
            continue
        if kind != "string":
            return f"a field of type {kind}: only numbers and bounded text can be kept"
        pattern = branch.get("pattern", "")
        if not (pattern.startswith("^") and pattern.endswith("$") and "maxLength" in branch):
            return (
                "a text field without a closed vocabulary or an anchored pattern with a "
                "maximum length (free text could carry an identifier)"
            )
    return None
