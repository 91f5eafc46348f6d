"""Shipped service configs: valid for their own tools, and in agreement with the settings."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hito.settings import REPO_ROOT, HitoSettings

INFRA = REPO_ROOT / "infra"


def _tool(name: str) -> str:
    found = shutil.which(name)
    # No skip: CI installs the Debian packages; a missing tool is a failed setup.
    assert found, f"{name} missing: run infra/install-debian.sh"
    return found


def test_promtool_accepts_the_prometheus_config() -> None:
    result = subprocess.run(
        [_tool("promtool"), "check", "config", str(INFRA / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = subprocess.run(
        [_tool("amtool"), "check-config", str(INFRA / "alertmanager" / "alertmanager.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_config(tmp_path: Path) -> None:
    """The check above can fail: a config with an unknown key is refused."""
    bad = tmp_path / "prometheus.yml"
    bad.write_text("global:\n  scrape_interval: 5s\n  no_such_key: 1\n")
    result = subprocess.run(
        [_tool("promtool"), "check", "config", str(bad)], capture_output=True, text=True
    )
    assert result.returncode != 0


def test_prometheus_targets_match_the_settings() -> None:
    s = HitoSettings()
    cfg = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]}
    assert jobs["hito-worker"] == [f"127.0.0.1:{p}" for p in s.worker_metrics_ports]
    assert jobs["hito-pager"] == [f"127.0.0.1:{s.pager_port}"]
    assert jobs["influxdb"] == [f"{s.influxdb.host}:{s.influxdb.port}"]
    assert jobs["prometheus"] == [f"{s.prometheus.host}:{s.prometheus.port}"]
    am = cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == [f"{s.alertmanager.host}:{s.alertmanager.port}"]


def test_alertmanager_pages_the_pager_port_with_its_bearer_token() -> None:
    s = HitoSettings()
    cfg = yaml.safe_load((INFRA / "alertmanager" / "alertmanager.yml").read_text())
    urls = {r["name"]: [w["url"] for w in r["webhook_configs"]] for r in cfg["receivers"]}
    base = f"http://127.0.0.1:{s.pager_port}/alerts"
    assert urls == {
        "pager-critical": [f"{base}/critical"],
        "pager-low": [f"{base}/low"],
        "pager-watchdog": [f"{base}/watchdog"],
    }
    hooks = [w for r in cfg["receivers"] for w in r["webhook_configs"]]
    # Relative to the config file: docker compose mounts the token there; never the secret.
    assert [w["http_config"] for w in hooks] == [
        {"authorization": {"type": "Bearer", "credentials_file": "pager.token"}}
    ] * 3


def test_the_watchdog_is_re_sent_every_minute_and_never_resolved() -> None:
    cfg = yaml.safe_load((INFRA / "alertmanager" / "alertmanager.yml").read_text())
    [route] = [r for r in cfg["route"]["routes"] if r["receiver"] == "pager-watchdog"]
    assert route["matchers"] == ['alertname="Watchdog"']
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "0s",
        "30s",
        "1m",
    )
    [watchdog] = [r for r in cfg["receivers"] if r["name"] == "pager-watchdog"]
    assert watchdog["webhook_configs"][0]["send_resolved"] is False


@pytest.mark.parametrize("tool", ["amtool", "amtool-v0.35.0"])
def test_the_config_the_stack_runs_names_the_state_directory_token(
    tmp_path: Path, tool: str
) -> None:
    """`hito up` runs a copy whose webhooks read the token from the state directory; it is
    valid for Debian's Alertmanager 0.25 and for the 0.35 build when that is cached."""
    from hito.stack.services import with_token_file

    if tool == "amtool":
        amtool = _tool("amtool")
    else:
        cached = HitoSettings().cache_dir / "bin" / tool
        if not cached.exists():
            pytest.skip(f"{cached} not built (infra/alertmanager/build.sh)")
        amtool = str(cached)
    token = tmp_path / "state" / "pager" / "token"
    rendered = with_token_file((INFRA / "alertmanager" / "alertmanager.yml").read_text(), token)
    copy = tmp_path / "alertmanager.yml"
    copy.write_text(rendered)
    result = subprocess.run([amtool, "check-config", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    cfg = yaml.safe_load(rendered)
    files = [
        w["http_config"]["authorization"]["credentials_file"]
        for r in cfg["receivers"]
        for w in r["webhook_configs"]
    ]
    assert files == [str(token.resolve())] * 3
    shipped = yaml.safe_load((INFRA / "alertmanager" / "alertmanager.yml").read_text())
    assert cfg["route"] == shipped["route"]


def test_the_stack_prepares_a_private_token_before_alertmanager_and_the_pager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hito.stack.services import Alertmanager, PagerService

    monkeypatch.delenv("HITO_PAGER_TOKEN_FILE", raising=False)
    settings = HitoSettings(state_dir=tmp_path / "state")
    am = Alertmanager("alertmanager", "")
    am.prepare(settings)
    token = tmp_path / "state" / "pager" / "token"
    assert token.stat().st_mode & 0o777 == 0o600
    secret = token.read_text()
    assert len(secret) >= 32
    config = tmp_path / "state" / "alertmanager" / "alertmanager.yml"
    assert f"--config.file={config}" in am.argv(settings)
    assert secret not in config.read_text()  # the copy names the file, never the secret
    assert str(token) in config.read_text()
    # Prepared again (the next `hito up`), or by the pager: the same token, not a new one.
    am.prepare(settings)
    PagerService("pager", "").prepare(settings)
    assert token.read_text() == secret


def test_the_stack_runs_prometheus_without_its_lifecycle_api(tmp_path: Path) -> None:
    from hito.stack.services import Prometheus

    argv = Prometheus("prometheus", "").argv(HitoSettings(state_dir=tmp_path))
    assert [a for a in argv if "lifecycle" in a] == []


def test_a_webhook_without_the_token_is_refused_by_the_stack() -> None:
    from hito.stack.services import with_token_file

    shipped = (INFRA / "alertmanager" / "alertmanager.yml").read_text()
    bearer = "authorization: {type: Bearer, credentials_file: pager.token}"
    unauthenticated = shipped.replace(f"        http_config:\n          {bearer}\n", "", 1)
    assert unauthenticated != shipped
    with pytest.raises(ValueError, match="receiver pager-critical: webhook without a bearer"):
        with_token_file(unauthenticated, Path("/tmp/token"))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=CheckpointSurge", "severity=critical", "site=chacalluta"], "pager-critical"),
        (["alertname=SinkFailing", "severity=critical"], "pager-critical"),
        (["alertname=DeviceSilent", "severity=warning", "site=santa-rosa"], "pager-low"),
        (["alertname=DlqRateHigh", "severity=warning"], "pager-low"),
        (["alertname=Unlabelled"], "pager-low"),
        (["alertname=Watchdog", "severity=none"], "pager-watchdog"),
        (["alertname=PagerForwardFailing", "severity=critical"], "pager-critical"),
        (["alertname=PagerForwardUnset", "severity=warning"], "pager-low"),
    ],
)
def test_alertmanager_routes_critical_watchdog_and_warnings(
    labels: list[str], receiver: str
) -> None:
    result = subprocess.run(
        [
            _tool("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={INFRA / 'alertmanager' / 'alertmanager.yml'}",
            *labels,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def _properties(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {k.strip(): v.strip() for k, v in pairs}


def test_kafka_config_is_single_node_kraft_on_the_settings_ports() -> None:
    s = HitoSettings()
    props = _properties(INFRA / "kafka" / "server.properties")
    assert props["process.roles"] == "broker,controller"
    assert props["advertised.listeners"] == f"SASL_PLAINTEXT://127.0.0.1:{s.kafka.port}"
    # Authenticated and authorised by default: SCRAM for clients, ACLs with no fallback.
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.security.protocol.map"].split(",")[0] == "SASL_PLAINTEXT:SASL_PLAINTEXT"
    assert "PLAINTEXT://" not in props["listeners"].replace("SASL_PLAINTEXT://", "")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["auto.create.topics.enable"] == "false"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{s.kafka.controller_port}"
    assert s.kafka.controller_port != 9093  # Alertmanager's default port
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
        "min.insync.replicas",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.sh")), ids=lambda p: p.name)
def test_shell_scripts_parse(path: Path) -> None:
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert path.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in path.read_text()


def test_kafka_version_in_pom_matches_settings() -> None:
    pom = (INFRA / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka.version>(.+?)</kafka.version>", pom)
    assert match is not None
    assert match[1] == HitoSettings().kafka.version
