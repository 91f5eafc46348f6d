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


def _start_grafana(tmp_path: Path, token: str | None) -> subprocess.CompletedProcess[str]:
    """compose-start.sh as docker-compose.yml runs it, with a stand-in for the image's
    /run.sh that prints the variable the datasource's token is read from."""
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "hito.yml").read_text())
    [influx] = [d for d in datasources["datasources"] if d["type"] == "influxdb"]
    variable = influx["secureJsonData"]["token"].removeprefix("$")
    token_file = tmp_path / "influxdb.token"
    if token is not None:
        token_file.write_text(token)
    return subprocess.run(
        ["sh", str(START), "sh", "-c", f'printf %s "${variable}"'],
        env={"PATH": os.environ["PATH"], "HITO_GRAFANA_TOKEN_FILE": str(token_file)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_grafana_starts_with_the_token_provision_wrote(tmp_path: Path) -> None:
    done = _start_grafana(tmp_path, "read-only-token-7f3a")
    assert (done.returncode, done.stdout, done.stderr) == (0, "read-only-token-7f3a", "")


@pytest.mark.parametrize("token", [None, ""], ids=["missing", "empty"])
def test_grafana_does_not_start_without_it(tmp_path: Path, token: str | None) -> None:
    done = _start_grafana(tmp_path, token)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(
        f"grafana not started: no read-only InfluxDB token in {tmp_path / 'influxdb.token'}"
    )
