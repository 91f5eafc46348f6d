"""`hito pager serve` refuses a configuration where no page would reach anyone: no forward URL
outside the development profile (unless --no-forward says so on purpose), or a forward URL
that could never be delivered to. The server itself is replaced by a recorder: these tests
stop where it would bind its port."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from hito.cli import app
from hito.commands import pager as pager_command
from hito.ops.pager.server import Pager

# Set by the development environment or CI: each test chooses its own.
_VARIABLES = (
    "HITO_PAGER_FORWARD_URL",
    "HITO_PAGER_NO_FORWARD",
    "HITO_PAGER_TOKEN_FILE",
    "HITO_KAFKA__USERS_FILE",
    "HITO_INFLUXDB__TOKEN",
    "HITO_INFLUXDB__PASSWORD",
    "HITO_PIPELINE__DEVICES_FILE",
    "HITO_PIPELINE__DEVICE_KEYS_FILE",
)
KEY = "k3y-in-the-path"  # what a paging service's webhook URL carries; never to be printed


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Pager]:
    """The pagers `serve` was given (instead of listening), in a state directory of its own."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HITO_STATE_DIR", str(tmp_path / "state"))
    calls: list[Pager] = []
    monkeypatch.setattr(pager_command, "serve", lambda host, port, pager: calls.append(pager))
    return calls


def _production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HITO_PROFILE", raising=False)  # the default profile: production


def _serve(*args: str) -> Result:
    return CliRunner().invoke(app, ["pager", "serve", "--min-free-mb=0", *args])


def test_production_without_a_forward_url_refuses_to_start(
    served: list[Pager], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _production(monkeypatch)
    # What compose passes when the operator set neither variable.
    monkeypatch.setenv("HITO_PAGER_FORWARD_URL", "")
    monkeypatch.setenv("HITO_PAGER_NO_FORWARD", "")
    with caplog.at_level(logging.INFO):
        result = _serve()
    assert result.exit_code == 1, result.output
    assert served == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "no forward URL" in errors[0]
    assert "HITO_PAGER_FORWARD_URL" in errors[0] and "HITO_PAGER_NO_FORWARD" in errors[0]


@pytest.mark.parametrize("opt_out", [["--no-forward"], ["env:1"], ["env:true"]])
def test_production_without_a_url_starts_when_told_pages_stay_local(
    served: list[Pager], monkeypatch: pytest.MonkeyPatch, opt_out: list[str]
) -> None:
    _production(monkeypatch)
    if opt_out[0].startswith("env:"):
        monkeypatch.setenv("HITO_PAGER_NO_FORWARD", opt_out[0].removeprefix("env:"))
        opt_out = []
    result = _serve(*opt_out)
    assert result.exit_code == 0, result.output
    assert len(served) == 1 and served[0].forward_url is None


def test_production_with_a_forward_url_starts_and_forwards(
    served: list[Pager], monkeypatch: pytest.MonkeyPatch
) -> None:
    _production(monkeypatch)
    url = f"https://hooks.example.com/v1/{KEY}"
    monkeypatch.setenv("HITO_PAGER_FORWARD_URL", url)
    result = _serve()
    assert result.exit_code == 0, result.output
    assert len(served) == 1 and served[0].forward_url == url


def test_the_development_profile_starts_without_a_forward_url(served: list[Pager]) -> None:
    # tests/conftest.py sets HITO_PROFILE=development, as `hito up` of the local stack runs.
    result = _serve()
    assert result.exit_code == 0, result.output
    assert len(served) == 1 and served[0].forward_url is None


@pytest.mark.parametrize("profile", ["production", "development"])
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"hooks.example.com/v1/{KEY}", "does not start with http:// or https://"),
        (f"ftp://hooks.example.com/v1/{KEY}", "does not start with http:// or https://"),
        (f"https:///v1/{KEY}", "has no host"),
        (f"https://hooks.example.com:port/v1/{KEY}", "not a URL"),
    ],
)
def test_a_forward_url_that_can_never_be_delivered_to_is_refused_in_any_profile(
    served: list[Pager],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    profile: str,
    url: str,
    problem: str,
) -> None:
    if profile == "production":
        _production(monkeypatch)
    with caplog.at_level(logging.INFO):
        result = _serve(f"--forward-url={url}")
    assert result.exit_code == 1, result.output
    assert served == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and problem in errors[0] and "HITO_PAGER_FORWARD_URL" in errors[0]
    assert KEY not in caplog.text and KEY not in result.output
