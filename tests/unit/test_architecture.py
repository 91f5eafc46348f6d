"""The import rules that keep the tree's architecture (docs/architecture.md), checked on the
source: a module that imports across a boundary fails here, naming the line.

Imports inside functions count too (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Folder -> import name (pyproject.toml, [tool.setuptools.package-dir]).
PACKAGES = {
    "streams": "hito",
    "schemas": "hito.schemas",
    "bench": "hito.bench",
    "infra": "hito.infra",  # package data only: configs and scripts
}
CLIENT_LIBRARIES = (
    "faust",
    "mode",
    "aiokafka",
    "kafka",
    "influxdb_client",
    "aiohttp",
    "httpx",
    "prometheus_client",
    "typer",
    "rich",
)
OPERATOR_SIDE = ("hito.stack", "hito.commands", "hito.demo", "hito.cli")


@dataclass(frozen=True)
class Rule:
    """Modules under ``scope`` may not import anything under ``forbidden``, except ``allowed``."""

    scope: str
    forbidden: tuple[str, ...]
    why: str
    allowed: tuple[str, ...] = ()


RULES = (
    Rule(
        "hito.pipeline.stages",
        (
            *CLIENT_LIBRARIES,
            "hito.settings",
            "hito.credentials",
            "hito.runtime",
            "hito.pipeline",
            "hito.access",
            "hito.ops",
            "hito.device",
            *OPERATOR_SIDE,
        ),
        "stages are pure: clock, registry and limits are passed in; no Faust, settings or "
        "client library",
        allowed=("hito.pipeline.stages", "hito.pipeline.pseudonyms"),
    ),
    Rule(
        "hito.device",
        (
            "hito.pipeline",
            "hito.settings",
            "hito.runtime",
            "hito.credentials",
            "hito.access",
            "hito.ops",
            "faust",
            *OPERATOR_SIDE,
        ),
        "device code ships to device makers: it knows the published contract (hito.schemas) "
        "and nothing of the server",
    ),
    Rule("hito.schemas", ("hito",), "the contract depends on nothing else", ("hito.schemas",)),
    Rule(
        "hito.pipeline",
        ("hito.access", "hito.ops", "hito.device", "hito.bench", *OPERATOR_SIDE),
        "the worker needs the contract, the settings and its own parts only",
    ),
    Rule(
        "hito.access",
        ("hito.pipeline", "hito.ops", "hito.device", *OPERATOR_SIDE),
        "provisioning is the admin's: contract, settings, credentials",
    ),
    Rule(
        "hito.ops",
        ("hito.pipeline", "hito.access", "hito.device", *OPERATOR_SIDE),
        "operator tools read what the pipeline wrote through the contract",
    ),
    Rule("hito.demo", ("hito.commands", "hito.cli"), "commands use the demo, not the reverse"),
    Rule(
        "hito.settings",
        ("hito.pipeline", "hito.access", "hito.ops", "hito.device", *OPERATOR_SIDE),
        "shared vocabulary sits below every role",
    ),
    Rule(
        "hito.devices",
        (
            "hito.pipeline",
            "hito.access",
            "hito.ops",
            "hito.device",
            "hito.settings",
            *OPERATOR_SIDE,
        ),
        "shared vocabulary sits below every role",
    ),
    Rule(
        "hito.credentials",
        ("hito.pipeline", "hito.access", "hito.ops", "hito.device", *OPERATOR_SIDE),
        "shared vocabulary sits below every role",
    ),
    Rule("hito", ("streams", "schemas", "bench"), "the only import name is hito"),
    Rule("hito.bench", ("streams", "schemas", "bench"), "the only import name is hito"),
)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    base = PACKAGES[rel.parts[0]]
    parts = list(rel.with_suffix("").parts[1:])
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join([base, *parts])


def imports_of(module: str, source: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import, relative ones resolved."""
    out: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            # `from hito.pipeline import stages` imports hito.pipeline.stages
            out += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return out


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    found = []
    for rule in RULES:
        if not _under(module, rule.scope):
            continue
        for line, imported in imports_of(module, source, is_package):
            if any(_under(imported, a) for a in rule.allowed):
                continue
            if any(_under(imported, f) for f in rule.forbidden) and not _under(imported, module):
                found.append(f"{module}:{line} imports {imported} ({rule.why})")
    return sorted(set(found))


def all_modules() -> list[Path]:
    return sorted(p for folder in PACKAGES for p in (ROOT / folder).rglob("*.py"))


def test_every_module_keeps_the_import_rules() -> None:
    found = [
        v
        for path in all_modules()
        for v in violations(module_name(path), path.read_text(), path.name == "__init__.py")
    ]
    assert found == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("hito.pipeline.stages.validate", "import faust\n"),
        ("hito.pipeline.stages.validate", "from hito.settings import PipelineSettings\n"),
        ("hito.pipeline.stages.validate", "from hito.settings.sections import SurgeSettings\n"),
        ("hito.pipeline.stages.dedup", "def f():\n    from influxdb_client import Point\n"),
        ("hito.pipeline.stages.aggregate", "from ..agents import ingest\n"),
        ("hito.device.sdk", "from hito.pipeline.stages import validate\n"),
        ("hito.device.simulate.fleet", "from hito.settings import PipelineSettings\n"),
        ("hito.schemas.envelope", "from hito.devices import Device\n"),
        ("hito.demo.report", "from hito.commands.pager import page_log_path\n"),
        ("hito.pipeline.sinks.influx", "from hito.stack.process import exclusive_lock\n"),
        ("hito.ops.dlq", "from hito.pipeline.dead_letters import make_record\n"),
        ("hito.pipeline.worker", "import streams.settings\n"),
    ],
)
def test_a_planted_violation_is_found(module: str, source: str) -> None:
    assert violations(module, source) != []


def test_allowed_imports_are_not_violations() -> None:
    assert (
        violations("hito.pipeline.stages.anonymise", "from hito.pipeline.pseudonyms import x\n")
        == []
    )
    assert violations("hito.pipeline.stages.validate", "from hito.schemas import envelope\n") == []
    assert violations("hito.device.sdk", "from hito.schemas.signing import sign\n") == []
    assert violations("hito.commands.demo", "from hito.demo import report\n") == []


def test_the_package_list_matches_the_folders() -> None:
    import tomllib

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = sorted(module_name(p) for p in all_modules() if p.name == "__init__.py")
    assert sorted(listed) == found
