"""Grafana cannot run here: its provisioning files are checked against a small strict model."""

from __future__ import annotations

from typing import Literal

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
