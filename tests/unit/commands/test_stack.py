"""`hito down --wipe` says what it deletes and asks first; `--only` narrows it (no real
services: `manager.down` is recorded, or run on a temporary state directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hito.cli import app
from hito.commands import stack as stack_command
from hito.settings import HitoSettings
from hito.stack import manager
from hito.stack.services import services


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory holding data of every service (nothing runs)."""
    monkeypatch.setenv("HITO_PROFILE", "development")
    monkeypatch.setenv("HITO_STATE_DIR", str(tmp_path / "state"))
    settings = HitoSettings(state_dir=tmp_path / "state")
    for svc in services(settings):
        svc.data_dir(settings).mkdir(parents=True)
        (svc.data_dir(settings) / "data.bin").write_bytes(b"x")
    return tmp_path / "state"


def _kept(state: Path) -> list[str]:
    return sorted(p.parent.name for p in state.glob("*/data.bin"))


ALL = ["alertmanager", "influxdb", "kafka", "pager", "prometheus"]


def test_wipe_without_a_terminal_or_yes_deletes_nothing(state: Path) -> None:
    """It deleted every service's data at once, unsent pages and aggregates included."""
    result = CliRunner().invoke(app, ["down", "--wipe"])
    assert result.exit_code == 2
    assert "confirm with --yes" in result.output
    assert "pager: the page log and the outbox" in result.output
    assert _kept(state) == ALL


def test_wipe_asks_on_a_terminal_and_a_no_keeps_the_data(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack_command, "_interactive", lambda: True)
    result = CliRunner().invoke(app, ["down", "--wipe"], input="n\n")
    assert result.exit_code == 1
    assert _kept(state) == ALL


def test_wipe_yes_only_kafka_keeps_everything_else(state: Path) -> None:
    result = CliRunner().invoke(app, ["down", "--wipe", "--only", "kafka", "--yes"])
    assert result.exit_code == 0, result.output
    assert _kept(state) == ["alertmanager", "influxdb", "pager", "prometheus"]


def test_an_unknown_service_is_refused(state: Path) -> None:
    result = CliRunner().invoke(app, ["down", "--wipe", "--only", "kafak", "--yes"])
    assert result.exit_code == 2
    assert _kept(state) == ALL


def test_down_without_wipe_never_asks(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def down(settings: HitoSettings, **kw: Any) -> list[str]:
        calls.append(kw)
        return []

    monkeypatch.setattr(manager, "down", down)
    result = CliRunner().invoke(app, ["down"])
    assert result.exit_code == 0, result.output
    assert calls == [{"wipe": False, "only": None}]


def test_wipe_asks_on_a_terminal_and_a_yes_deletes(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack_command, "_interactive", lambda: True)
    result = CliRunner().invoke(app, ["down", "--wipe"], input="y\n")
    assert result.exit_code == 0, result.output
    assert _kept(state) == []
