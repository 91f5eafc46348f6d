"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine): check the compose
file against the Compose Specification's own JSON Schema, and its structure: what runs, at
which versions, how it restarts and reports health, where every secret comes from, that
workers scale and Prometheus finds them; and that the image is pinned and non-root."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hito.cli import hito_version
from hito.settings import REPO_ROOT, HitoSettings
from tests.unit.infra.compose_file import (
    COMPOSE,
    DOCKERFILE,
    HITO_SERVICES,
    SECRETS_DIR,
    bind_mounts,
    compose,
    dockerfile,
    services,
)


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    script = REPO_ROOT / "infra" / "image" / "compose-schema.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    # No skip: `make setup` caches it (Go module proxy); a missing schema is a failed setup.
    assert done.returncode == 0, done.stderr
    schema: dict[str, Any] = json.loads(Path(done.stdout.strip()).read_text())
    return schema


def test_the_compose_file_is_valid_compose(compose_schema: dict[str, Any]) -> None:
    jsonschema.validate(compose(), compose_schema)


def test_the_schema_check_can_fail(compose_schema: dict[str, Any]) -> None:
    broken = compose()
    broken["services"]["worker"]["restart_policy"] = "always"  # not a compose key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, compose_schema)


def test_services_and_pinned_images() -> None:
    svc_by_name = services()
    assert set(svc_by_name) == {
        "kafka",
        "influxdb",
        "prometheus",
        "alertmanager",
        "grafana",
        *HITO_SERVICES,
    }
    for name, svc in svc_by_name.items():
        image = svc["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert tag and "latest" not in tag, f"{name} image {image} is not pinned"
        assert svc["network_mode"] == "host", name
    for name in HITO_SERVICES:
        # Built from this repository's Dockerfile, tagged with the package's version.
        assert svc_by_name[name]["build"] == "."
        assert svc_by_name[name]["image"] == f"hito:${{HITO_IMAGE_TAG:-{hito_version()}}}"


def test_versions_match_the_local_stack() -> None:
    s = HitoSettings()
    svc_by_name = services()
    assert svc_by_name["kafka"]["image"] == f"apache/kafka:{s.kafka.version}"
    assert svc_by_name["influxdb"]["image"] == f"influxdb:{s.influxdb.version.lstrip('v')}"
    assert svc_by_name["prometheus"]["image"] == f"prom/prometheus:v{s.prometheus.version}"
    assert svc_by_name["alertmanager"]["image"] == f"prom/alertmanager:v{s.alertmanager.version}"
    env = svc_by_name["influxdb"]["environment"]
    assert env["INFLUXD_HTTP_BIND_ADDRESS"] == f"127.0.0.1:{s.influxdb.port}"
    assert (env["DOCKER_INFLUXDB_INIT_ORG"], env["DOCKER_INFLUXDB_INIT_BUCKET"]) == ("hito", "hito")
    assert (
        f"--web.listen-address=127.0.0.1:{s.prometheus.port}"
        in svc_by_name["prometheus"]["command"]
    )
    am_cmd = svc_by_name["alertmanager"]["command"]
    assert f"--web.listen-address=127.0.0.1:{s.alertmanager.port}" in am_cmd


def test_every_service_restarts_and_reports_its_health() -> None:
    for name, svc in services().items():
        if name == "provision":  # one-shot: runs to completion, never restarted
            assert svc["restart"] == "no"
            assert "healthcheck" not in svc
            continue
        assert svc["restart"] == "unless-stopped", name
        check = svc["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and check["retries"] >= 3, name


def test_hito_healthchecks_are_real_commands() -> None:
    """`hito probe` exists with the options the healthchecks use."""
    from typer.testing import CliRunner

    from hito.cli import app

    for name in ("worker", "pager"):
        test = services()[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "hito", "probe"], name
        options = [a for a in test[3:] if a.startswith("--")]
        help_text = CliRunner().invoke(app, ["probe", "--help"]).output
        assert all(o in help_text for o in options), (name, options)
    pager = services()["pager"]["healthcheck"]["test"]
    assert pager[-1] == f"http://127.0.0.1:{HitoSettings().pager_port}/health"


def test_workers_scale_and_prometheus_finds_them() -> None:
    svc_by_name = services()
    worker = svc_by_name["worker"]
    # --scale worker=N: no fixed name, no published or fixed metrics port.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == ["worker"]
    targets = worker["environment"]["HITO_PROMETHEUS__WORKER_TARGETS_DIR"]
    assert f"worker-targets:{targets}" in worker["volumes"]
    # Prometheus mounts the same volume where its config's file discovery looks.
    prom = svc_by_name["prometheus"]
    config_mount = next(v for v in prom["volumes"] if v.endswith("prometheus.yml:ro"))
    config_dir = Path(config_mount.split(":")[1]).parent
    config = yaml.safe_load((REPO_ROOT / "infra" / "prometheus" / "prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "hito-worker"]
    [pattern] = job["file_sd_configs"][0]["files"]
    assert f"worker-targets:{config_dir / Path(pattern).parent}:ro" in prom["volumes"]
    assert config["rule_files"] == ["rules/*.yml"]
    assert f"./infra/prometheus/rules:{config_dir / 'rules'}:ro" in prom["volumes"]


def test_order_provisioning_before_workers() -> None:
    svc_by_name = services()
    assert svc_by_name["provision"]["command"][0] == "provision"
    assert svc_by_name["provision"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "influxdb": {"condition": "service_healthy"},
    }
    done = {"provision": {"condition": "service_completed_successfully"}}
    assert svc_by_name["worker"]["depends_on"] == done
    assert svc_by_name["prometheus"]["depends_on"] == done
    assert svc_by_name["grafana"]["depends_on"]["provision"] == done["provision"]


def test_every_mounted_file_exists_and_lives_in_infra() -> None:
    mounts = bind_mounts()
    assert len(mounts) == 8
    for name, source, _ in mounts:
        assert source.exists(), f"{name} mounts missing {source}"
        assert source.is_relative_to(REPO_ROOT / "infra"), f"{name} mounts {source}"
    assert not [m for m in mounts if m[1].is_relative_to(REPO_ROOT / "infra" / "dev")]


def test_named_volumes_are_declared() -> None:
    data = compose()
    declared = set(data["volumes"])
    used = {
        v.split(":")[0]
        for s in data["services"].values()
        for v in s.get("volumes", [])
        if isinstance(v, str) and not v.startswith((".", "/"))
    }
    assert used == declared


def test_secrets_come_from_files_or_the_environment_never_from_here() -> None:
    text = COMPOSE.read_text()
    assert "DEV-ONLY" not in text and "admin/admin" not in text
    data = compose()
    for name, secret in data["secrets"].items():
        assert secret["file"].startswith(f"{SECRETS_DIR}/"), name
    used = {s for svc in data["services"].values() for s in svc.get("secrets", [])}
    assert used == set(data["secrets"])
    assert "secrets/" in (REPO_ROOT / ".gitignore").read_text().splitlines()
    # Passwords and tokens in the environment are required (`:?`): no default to fall back to.
    for svc in data["services"].values():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD$|TOKEN$", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), (key, value)


def test_the_services_get_only_the_secrets_they_need() -> None:
    svc_by_name = services()
    assert svc_by_name["provision"]["secrets"] == ["kafka_users"]
    assert svc_by_name["worker"]["secrets"] == [
        "kafka_pipeline",
        "devices",
        "device_keys",
    ]
    assert svc_by_name["pager"]["secrets"] == ["pager_token"]
    env = svc_by_name["worker"]["environment"]
    assert env["HITO_KAFKA__USERS_FILE"] == "/run/secrets/kafka_pipeline"  # not the admin's
    assert "HITO_INFLUXDB__TOKEN" not in env  # workers write with their scoped token
    # The key store is rewritten as keys are destroyed: on the state volume, never a
    # read-only secret, and the same file provision made.
    store = env["HITO_PRIVACY__KEY_STORE_FILE"]
    assert store.startswith("/var/lib/hito/")
    assert svc_by_name["provision"]["environment"]["HITO_PRIVACY__KEY_STORE_FILE"] == store


def test_the_pager_forwards_or_is_told_not_to() -> None:
    """Both pass through, empty when unset: the pager (production profile, never
    development here) then refuses to start rather than page nobody."""
    env = services()["pager"]["environment"]
    assert env["HITO_PAGER_FORWARD_URL"] == "${HITO_PAGER_FORWARD_URL:-}"
    assert env["HITO_PAGER_NO_FORWARD"] == "${HITO_PAGER_NO_FORWARD:-}"
    assert not any("HITO_PROFILE" in (svc.get("environment") or {}) for svc in services().values())


def test_grafana_admin_is_not_admin_admin() -> None:
    grafana = services()["grafana"]
    env = grafana["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert grafana["secrets"] == ["grafana_admin_password"]
    assert env["GF_SECURITY_ADMIN_USER"] == "${HITO_GRAFANA_ADMIN_USER:-hito-admin}"


def test_kafka_runs_the_shared_start_script_with_sasl() -> None:
    kafka = services()["kafka"]
    mounts = {target: source for name, source, target in bind_mounts() if name == "kafka"}
    config_dir = mounts["/etc/hito/kafka"]
    assert config_dir == (REPO_ROOT / "infra" / "kafka").resolve()
    script = kafka["entrypoint"][-1]
    assert script == "/etc/hito/kafka/compose-start.sh"
    assert (config_dir / "compose-start.sh").exists()
    props = (config_dir / "server.properties").read_text()
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512" in props
    assert "allow.everyone.if.no.acl.found=false" in props
    assert "jaas.config" not in props, "passwords (JAAS lines) never go into the shared file"


def test_prometheus_has_no_lifecycle_api_and_needs_the_runbook_base() -> None:
    """/-/quit and /-/reload would let anything on the machine stop every alert."""
    prom = services()["prometheus"]
    assert "--web.enable-lifecycle" not in prom["command"]
    assert prom["environment"]["HITO_RUNBOOK_BASE_URL"].startswith("${HITO_RUNBOOK_BASE_URL:?")


def test_alertmanager_gets_the_pager_token_next_to_its_config() -> None:
    am = services()["alertmanager"]
    [mount] = [v for v in am["volumes"] if isinstance(v, dict)]
    assert mount["source"] == f"{SECRETS_DIR}/pager.token"
    assert (mount["type"], mount["read_only"]) == ("bind", True)
    config_target = next(
        target for svc, _, target in bind_mounts() if target.endswith("alertmanager.yml")
    )
    assert mount["target"] == str(Path(config_target).parent / "pager.token")
    # The pager checks the same file the Alertmanager sends.
    assert compose()["secrets"]["pager_token"]["file"] == mount["source"]


def test_the_image_is_pinned_non_root_and_runs_hito() -> None:
    lines = dockerfile()
    [base] = [line for line in lines if line.startswith("ARG PYTHON_IMAGE=")]
    # An exact patch release of Python 3.11 on an exact Debian release, never a moving tag.
    assert re.fullmatch(
        r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base
    )
    stages = [line for line in lines if line.startswith("FROM ")]
    assert stages == ["FROM ${PYTHON_IMAGE} AS build", "FROM ${PYTHON_IMAGE}"]
    assert "USER hito:hito" in lines
    assert 'ENTRYPOINT ["hito"]' in lines
    # The locked tree, hashes checked (the scripts CI runs without Docker).
    text = DOCKERFILE.read_text()
    assert "infra/image/build-wheel.sh" in text and "infra/image/install-wheel.sh" in text
    assert "COPY lock/runtime.txt" in text
    install = (REPO_ROOT / "infra" / "image" / "install-wheel.sh").read_text()
    assert "--require-hashes --no-deps -r" in install


def test_the_image_leaves_the_development_secrets_out() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and "infra/dev/" in ignored
    copied = [
        line.split()[1]
        for line in dockerfile()
        if line.startswith("COPY ") and "--from" not in line
    ]
    for source in copied:
        assert (REPO_ROOT / source).exists(), source
