"""Grafana cannot run here: its provisioning files are checked against a small strict model,
and the script docker-compose.yml starts it with is run with a stand-in for its entrypoint."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from hito.settings import REPO_ROOT, HitoSettings

PROVISIONING = REPO_ROOT / "infra" / "grafana" / "provisioning"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Datasource(_Strict):
    name: str
    uid: str
    type: Literal["influxdb", "prometheus"]
    access: Literal["proxy", "direct"]
    url: str
    isDefault: bool = False
    jsonData: dict[str, object] = {}
    secureJsonData: dict[str, str] = {}


class DatasourceFile(_Strict):
    apiVersion: Literal[1]
    datasources: list[Datasource]


class ProviderOptions(_Strict):
    path: str
    foldersFromFilesStructure: bool = False


class Provider(_Strict):
    name: str
    folder: str
    type: Literal["file"]
    disableDeletion: bool
    allowUiUpdates: bool
    options: ProviderOptions


class ProviderFile(_Strict):
    apiVersion: Literal[1]
    providers: list[Provider]


def test_datasources_point_at_the_local_stack() -> None:
    s = HitoSettings()
    f = DatasourceFile.model_validate(
        yaml.safe_load((PROVISIONING / "datasources" / "hito.yml").read_text())
    )
    by_type = {d.type: d for d in f.datasources}
    influx = by_type["influxdb"]
    assert influx.url == s.influxdb.url
    assert influx.jsonData == {"version": "Flux", "organization": "hito", "defaultBucket": "hito"}
    # The token comes from Grafana's environment, never a literal in the file.
    assert influx.secureJsonData == {"token": "$HITO_INFLUXDB_TOKEN"}
    assert by_type["prometheus"].url == s.prometheus.url
    assert [d.isDefault for d in f.datasources].count(True) == 1


def test_dashboard_provider_reads_the_mounted_folder() -> None:
    f = ProviderFile.model_validate(
        yaml.safe_load((PROVISIONING / "dashboards" / "hito.yml").read_text())
    )
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./infra/grafana/dashboards:{f.providers[0].options.path}:ro" in mounts


START = REPO_ROOT / "infra" / "grafana" / "compose-start.sh"


def _token_variable() -> str:
    """The variable the datasource's token is read from."""
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "hito.yml").read_text())
    [influx] = [d for d in datasources["datasources"] if d["type"] == "influxdb"]
    variable: str = influx["secureJsonData"]["token"]
    return variable.removeprefix("$")


def _start_grafana(
    tmp_path: Path, token: str | None, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """compose-start.sh as docker-compose.yml runs it, with a stand-in for the image's
    /run.sh that prints the token variable."""
    token_file = tmp_path / "influxdb.token"
    if token is not None:
        token_file.write_text(token)
    stand_in = ["bash", "-c", f'printf %s "${_token_variable()}"']
    return subprocess.run(
        ["bash", str(START), *(args or stand_in)],
        env={
            "PATH": os.environ["PATH"],
            "HITO_GRAFANA_TOKEN_FILE": str(token_file),
            "HITO_GRAFANA_TOKEN_CHECKSUM": str(tmp_path / "token.cksum"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_grafana_starts_with_the_token_provision_wrote(tmp_path: Path) -> None:
    done = _start_grafana(tmp_path, "read-only-token-7f3a\n")  # the newline is not the token's
    assert (done.returncode, done.stdout, done.stderr) == (0, "read-only-token-7f3a", "")


def test_grafana_turns_unhealthy_when_the_token_is_replaced(tmp_path: Path) -> None:
    assert _start_grafana(tmp_path, "read-only-token-7f3a").returncode == 0
    assert _start_grafana(tmp_path, None, "--token-unchanged").returncode == 0
    replaced = _start_grafana(tmp_path, "read-only-token-new", "--token-unchanged")
    assert replaced.returncode == 1
    assert "docker compose restart grafana" in replaced.stderr


@pytest.mark.parametrize(
    ("token", "why"),
    [(None, "no read-only InfluxDB token"), ("", "is empty"), ("\n\n", "is blank")],
    ids=["missing", "empty", "blank"],
)
def test_grafana_does_not_start_without_it(tmp_path: Path, token: str | None, why: str) -> None:
    done = _start_grafana(tmp_path, token)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("grafana not started: ") and why in done.stderr
    assert str(tmp_path / "influxdb.token") in done.stderr


def test_grafana_does_not_start_without_its_token_file_setting(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(START), "true"],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0 and "set HITO_GRAFANA_TOKEN_FILE" in done.stderr


@pytest.mark.parametrize(
    "password", [None, "", "\n", " \t\n"], ids=["missing", "empty", "newline", "blank"]
)
def test_grafana_does_not_start_without_its_admin_password(
    tmp_path: Path, password: str | None
) -> None:
    """Grafana's /run.sh reads the file without checking, and an empty value leaves the admin
    with the password "admin"."""
    password_file = tmp_path / "grafana-admin-password"
    if password is not None:
        password_file.write_text(password)
    done = _start_grafana(
        tmp_path, "read-only-token-7f3a", GF_SECURITY_ADMIN_PASSWORD__FILE=str(password_file)
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("grafana not started: ")
    assert "admin password file" in done.stderr and str(password_file) in done.stderr
    assert ("is blank" in done.stderr) == bool(password)
    password_file.write_text("a-strong-password")
    done = _start_grafana(
        tmp_path, "read-only-token-7f3a", GF_SECURITY_ADMIN_PASSWORD__FILE=str(password_file)
    )
    assert (done.returncode, done.stdout) == (0, "read-only-token-7f3a")
