"""How the harness starts contenders: the peer's path holds the hito the harness runs (and
nothing else), and the command offers exactly the harness's contenders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import hito
from hito.bench.contenders import child_env, peer_pythonpath
from hito.bench.harness import CONTENDERS
from hito.commands.bench import ALL
from hito.settings import load_settings


def test_the_peer_path_holds_only_the_running_hito(tmp_path: Path) -> None:
    path = peer_pythonpath(tmp_path)
    assert sorted(p.name for p in path.iterdir()) == ["hito"]
    assert (path / "hito").resolve() == Path(hito.__file__).parent.resolve()
    # A bare interpreter (no site-packages: nothing of this venv) finds hito and its contract
    # there, as the peer venv's interpreter does.
    code = (
        "import importlib.util as u\n"
        "print(u.find_spec('hito').origin)\n"
        "print(u.find_spec('hito.schemas.privacy').origin)\n"
    )
    found = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": str(path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert found == [
        str(path / "hito" / "__init__.py"),
        str(path / "hito" / "schemas" / "privacy" / "__init__.py"),
    ]
    assert peer_pythonpath(tmp_path) == path  # a second call re-links in place


def test_a_source_folder_is_not_a_whole_package(tmp_path: Path) -> None:
    streams = tmp_path / "streams"  # the source tree's hito, without hito.schemas
    streams.mkdir()
    (streams / "__init__.py").write_text("")
    with pytest.raises(RuntimeError, match="not a whole hito package"):
        peer_pythonpath(tmp_path / "run", package=streams)


def test_child_env_puts_only_the_given_path_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    settings = load_settings()
    assert child_env(settings)["PYTHONPATH"] == "/elsewhere"
    assert child_env(settings, Path("/run/peer-path"))["PYTHONPATH"] == "/run/peer-path:/elsewhere"
    monkeypatch.delenv("PYTHONPATH")
    assert "PYTHONPATH" not in child_env(settings)


def test_the_command_offers_every_contender_of_the_harness() -> None:
    assert tuple(ALL.split(",")) == CONTENDERS
