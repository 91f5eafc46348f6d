"""What the distribution declares: every library its code imports is a dependency, and every
file a command reads at run time is package data (the wheel itself is installed and run by
tests/integration/packaging/test_wheel.py)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from hito.settings import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
# Imported only in the bench's own venv (bench/setup.sh): its pins conflict with ours.
BENCH_VENV_ONLY = {"quixstreams"}
# Built from source by bench/native_prototype/measure.sh for one measurement: not a dependency.
BENCH_BUILT = {"hito_native_proto"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_normal(re.split(r"[=<>!~\[; ]", r, maxsplit=1)[0]) for r in requirements}


def _imported_top_level(folders: tuple[str, ...]) -> dict[str, str]:
    """Top-level module -> one file importing it, for every absolute import in ``folders``."""
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(REPO_ROOT)))
    return found


def test_every_imported_library_is_a_declared_dependency() -> None:
    declared = _declared(PYPROJECT["project"]["dependencies"])
    owners = packages_distributions()
    undeclared = []
    for module, where in _imported_top_level(("streams", "schemas", "bench")).items():
        if module in sys.stdlib_module_names or module in {"hito", "__future__"}:
            continue
        if module in BENCH_VENV_ONLY or module in BENCH_BUILT:
            continue
        dists = {_normal(d) for d in owners.get(module, [module])}
        if not dists & declared:
            undeclared.append(f"{module} ({where})")
    assert undeclared == []


def test_every_test_import_is_a_declared_dev_dependency() -> None:
    declared = _declared(PYPROJECT["project"]["dependencies"])
    declared |= _declared(PYPROJECT["project"]["optional-dependencies"]["dev"])
    owners = packages_distributions()
    undeclared = [
        f"{module} ({where})"
        for module, where in _imported_top_level(("tests",)).items()
        if module not in sys.stdlib_module_names
        and module not in {"hito", "tests", "__future__"}
        and not {_normal(d) for d in owners.get(module, [module])} & declared
    ]
    assert undeclared == []


def test_runtime_files_are_package_data() -> None:
    """The files `hito up` and the commands read are matched by package-data globs (infra/dev,
    the public development secrets, is not)."""
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    shipped = {
        path.relative_to(REPO_ROOT / "infra").as_posix()
        for pattern in data["hito.infra"]
        for path in (REPO_ROOT / "infra").glob(pattern)
    }
    needed = {
        "install-debian.sh",
        "kafka/install.sh",
        "kafka/pom.xml",
        "kafka/server.properties",
        "kafka/log4j2.properties",
        "influxdb/build.sh",
        "prometheus/build.sh",
        "prometheus/prometheus.yml",
        "alertmanager/build.sh",
        "alertmanager/alertmanager.yml",
    }
    assert needed <= shipped
    assert {p.name for p in (REPO_ROOT / "infra" / "prometheus" / "rules").glob("*.yml")} <= {
        Path(p).name for p in shipped if p.startswith("prometheus/rules/")
    }
    assert not [p for p in shipped if p.startswith("dev/")]
    assert Path(data["hito.schemas.privacy"][0]).name == "policy.yaml"


def _locked(name: str) -> dict[str, str]:
    """package -> version of a lock file, checking every entry carries hashes."""
    text = (REPO_ROOT / "lock" / name).read_text()
    pins: dict[str, str] = {}
    for entry in re.split(r"\n(?=\S)", text):
        if entry.startswith("#") or not entry.strip():
            continue
        match = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)", entry)
        assert match, f"{name}: not an exact pin: {entry.splitlines()[0]}"
        assert "--hash=sha256:" in entry, f"{name}: {match[1]} has no hash"
        pins[_normal(match[1])] = match[2]
    return pins


def _pinned(requirements: list[str]) -> dict[str, str]:
    out = {}
    for r in requirements:
        match = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)", r)
        assert match, f"pyproject.toml: {r} is not pinned exactly"
        out[_normal(match[1])] = match[2]
    return out


def test_the_lock_files_pin_what_pyproject_pins_with_hashes() -> None:
    """`make lock` after every change of pyproject.toml: the direct pins and the lock agree,
    the runtime lock has no dev tool, the dev lock has everything plus the build backend."""
    direct = _pinned(PYPROJECT["project"]["dependencies"])
    dev = _pinned(PYPROJECT["project"]["optional-dependencies"]["dev"])
    runtime, development, build = _locked("runtime.txt"), _locked("dev.txt"), _locked("build.txt")
    assert {k: runtime.get(k) for k in direct} == direct
    assert {k: development.get(k) for k in direct | dev} == direct | dev
    assert not {"pytest", "mypy", "ruff", "hypothesis"} & set(runtime)
    assert runtime.items() <= development.items()  # one version of each package
    assert build.items() <= development.items()
    major = int(build["setuptools"].split(".")[0])
    assert major >= 77  # [build-system] requires setuptools>=77
