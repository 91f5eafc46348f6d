"""docker-compose.yml cannot start here: check that it parses, pins its images and mounts
only files that exist, and that it shares infra/'s configs instead of copying them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streams.settings import REPO_ROOT, HitoSettings

COMPOSE = REPO_ROOT / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _bind_mounts() -> list[tuple[str, Path, str]]:
    out = []
    for name, svc in _compose()["services"].items():
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                out.append((name, (REPO_ROOT / source).resolve(), target))
    return out


def test_services_and_pinned_images() -> None:
    services = _compose()["services"]
    assert set(services) == {"kafka", "influxdb", "prometheus", "alertmanager", "grafana"}
    for name, svc in services.items():
        image = svc["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert tag and tag != "latest", f"{name} image {image} is not pinned"
        assert svc["network_mode"] == "host", name


def test_every_mounted_file_exists_and_lives_in_infra() -> None:
    mounts = _bind_mounts()
    assert len(mounts) == 5
    for name, source, _ in mounts:
        assert source.exists(), f"{name} mounts missing {source}"
        assert source.is_relative_to(REPO_ROOT / "infra"), f"{name} mounts {source}"


def test_named_volumes_are_declared() -> None:
    data = _compose()
    declared = set(data["volumes"])
    used = {
        v.split(":")[0]
        for s in data["services"].values()
        for v in s.get("volumes", [])
        if not v.startswith((".", "/"))
    }
    assert used == declared


def test_versions_match_the_local_stack() -> None:
    s = HitoSettings()
    services = _compose()["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{s.kafka.version}"
    assert services["influxdb"]["image"] == f"influxdb:{s.influxdb.version.lstrip('v')}"
    env = services["influxdb"]["environment"]
    assert env["INFLUXD_HTTP_BIND_ADDRESS"] == f"127.0.0.1:{s.influxdb.port}"
    assert (env["DOCKER_INFLUXDB_INIT_ORG"], env["DOCKER_INFLUXDB_INIT_BUCKET"]) == ("hito", "hito")
    assert (
        f"--web.listen-address=127.0.0.1:{s.prometheus.port}" in services["prometheus"]["command"]
    )
    am_cmd = services["alertmanager"]["command"]
    assert f"--web.listen-address=127.0.0.1:{s.alertmanager.port}" in am_cmd
