"""The distribution as a user gets it: the wheel built from this tree (infra/image/
build-wheel.sh, as the image's build stage), installed into a fresh virtual environment outside
the repository from the runtime lock (infra/image/install-wheel.sh, as the image), and run from
an empty directory with none of this checkout's environment."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hito.cli import hito_version
from hito.settings import REPO_ROOT

IMAGE = REPO_ROOT / "infra" / "image"
DEV = REPO_ROOT / "infra" / "dev"


@dataclass(frozen=True)
class Installed:
    bin: Path
    home: Path  # an empty HOME: no ~/.cache/hito, no ~/.local/state/hito of this machine

    def run(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
        """`hito <args>` (or python -c) with a clean environment; returns stdout, fails on a
        non-zero exit with everything it printed."""
        argv = (
            [str(self.bin / "hito"), *args]
            if args[0] != "-c"
            else [str(self.bin / "python"), *args]
        )
        clean = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8"}
        done = subprocess.run(
            argv, cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        ["bash", str(IMAGE / "build-wheel.sh"), str(REPO_ROOT), str(work / "dist")],
        check=True,
        capture_output=True,
    )
    [wheel] = (work / "dist").glob("hito-*.whl")
    subprocess.run(
        [
            "bash",
            str(IMAGE / "install-wheel.sh"),
            str(work / "venv"),
            str(REPO_ROOT / "lock" / "runtime.txt"),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    home = work / "home"
    home.mkdir()
    yield Installed(work / "venv" / "bin", home)


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    where = tmp_path / "empty"
    where.mkdir()
    return where


def test_version_and_worker_help(installed: Installed, empty: Path) -> None:
    assert installed.run("--version", cwd=empty) == f"hito {hito_version()}\n"
    help_text = installed.run("worker", "--help", cwd=empty)
    assert "--app-id" in help_text and "--register" in help_text


def test_schema_export_writes_the_committed_contract(installed: Installed, empty: Path) -> None:
    installed.run("schema", "export", cwd=empty)
    exported = {p.name: p.read_bytes() for p in (empty / "jsonschema").iterdir()}
    committed = {p.name: p.read_bytes() for p in (REPO_ROOT / "schemas" / "jsonschema").iterdir()}
    assert exported == committed
    vectors = (REPO_ROOT / "schemas" / "signing-vectors.json").read_bytes()
    assert (empty / "signing-vectors.json").read_bytes() == vectors


def test_policy_show_reads_the_shipped_policy(installed: Installed, empty: Path) -> None:
    """The development profile with explicit paths to this checkout's development files (they
    are not in the wheel, by design); the policy itself comes from the package."""
    env = {
        "HITO_PROFILE": "development",
        "HITO_PIPELINE__DEVICES_FILE": str(DEV / "devices.dev.yaml"),
        "HITO_PIPELINE__DEVICE_KEYS_FILE": str(DEV / "device-keys.dev.yaml"),
        "COLUMNS": "200",
    }
    shown = installed.run("policy", "show", cwd=empty, env=env)
    policy = yaml.safe_load((REPO_ROOT / "schemas" / "privacy" / "policy.yaml").read_text())
    assert f"Privacy policy {policy['version']}" in shown
    assert "document_number" in shown and "pseudonymise" in shown


def test_everything_is_read_from_the_installed_package(installed: Installed, empty: Path) -> None:
    report = json.loads(
        installed.run(
            "-c",
            "import importlib.util, json, hito, hito.settings as s; "
            "d = s.HitoSettings(); "
            "print(json.dumps({'hito': hito.__file__, 'infra': str(d.infra_dir), "
            "'policy': str(d.privacy.policy_file), 'others': [n for n in "
            "('streams', 'schemas', 'bench') if importlib.util.find_spec(n)]}))",
            cwd=empty,
        )
    )
    site = installed.bin.parent
    for key in ("hito", "infra", "policy"):
        # From the venv, never from this checkout.
        assert Path(report[key]).is_relative_to(site), (key, report[key])
        assert not Path(report[key]).is_relative_to(REPO_ROOT), (key, report[key])
    assert report["others"] == []  # one import name: hito
    infra = Path(report["infra"])
    assert (infra / "prometheus" / "prometheus.yml").is_file()
    assert (infra / "prometheus" / "rules" / "hito.yml").is_file()
    assert (infra / "kafka" / "install.sh").is_file()
    assert not (infra / "dev").exists()  # the public development secrets stay out
