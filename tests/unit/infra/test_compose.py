"""docker-compose.yml cannot start here: check that it parses, pins its images and mounts
only files that exist, and that it shares infra/'s configs instead of copying them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hito.settings import REPO_ROOT, HitoSettings

COMPOSE = REPO_ROOT / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _bind_mounts() -> list[tuple[str, Path, str]]:
    """Mounts of repository files (short syntax); secrets from the environment are not."""
    out = []
    for name, svc in _compose()["services"].items():
        for volume in svc.get("volumes", []):
            if isinstance(volume, dict):
                continue
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                out.append((name, (REPO_ROOT / source).resolve(), target))
    return out


def _secret_mounts() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, volume)
        for name, svc in _compose()["services"].items()
        for volume in svc.get("volumes", [])
        if isinstance(volume, dict)
    ]


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
        if isinstance(v, str) and not v.startswith((".", "/"))
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


def test_kafka_runs_the_shared_start_script_with_sasl() -> None:
    kafka = _compose()["services"]["kafka"]
    mounts = {target: source for name, source, target in _bind_mounts() if name == "kafka"}
    config_dir = mounts["/etc/hito/kafka"]
    assert config_dir == (REPO_ROOT / "infra" / "kafka").resolve()
    script = kafka["entrypoint"][-1]
    assert script == "/etc/hito/kafka/compose-start.sh"
    assert (config_dir / "compose-start.sh").exists()
    props = (config_dir / "server.properties").read_text()
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512" in props
    assert "allow.everyone.if.no.acl.found=false" in props
    assert "jaas.config" not in props, "passwords (JAAS lines) never go into the shared file"


def test_compose_dev_admin_is_the_dev_users_file_admin() -> None:
    from hito.credentials import user_for

    admin = user_for(HitoSettings().kafka, "admin")
    env = _compose()["services"]["kafka"]["environment"]
    assert env["HITO_KAFKA_ADMIN_USER"] == f"${{HITO_KAFKA_ADMIN_USER:-{admin.name}}}"
    expected = f"${{HITO_KAFKA_ADMIN_PASSWORD:-{admin.password.get_secret_value()}}}"
    assert env["HITO_KAFKA_ADMIN_PASSWORD"] == expected


def test_grafana_reads_with_the_dashboards_token_not_the_admin_token() -> None:
    env = _compose()["services"]["grafana"]["environment"]
    assert env["HITO_INFLUXDB_TOKEN"] == "${HITO_INFLUXDB_DASHBOARDS_TOKEN:-}"


def test_prometheus_has_no_lifecycle_api() -> None:
    """/-/quit and /-/reload would let anything on the machine stop every alert."""
    assert "--web.enable-lifecycle" not in _compose()["services"]["prometheus"]["command"]


def test_alertmanager_gets_the_pager_token_from_the_host_not_the_repository() -> None:
    [(name, mount)] = _secret_mounts()
    assert name == "alertmanager"
    # Required: compose refuses to start without it rather than page unauthenticated.
    assert mount["source"].startswith("${HITO_PAGER_TOKEN_FILE:?")
    assert (mount["type"], mount["read_only"]) == ("bind", True)
    # Next to the config, where its relative credentials_file points.
    config_target = next(
        target for svc, _, target in _bind_mounts() if target.endswith("alertmanager.yml")
    )
    assert mount["target"] == str(Path(config_target).parent / "pager.token")
