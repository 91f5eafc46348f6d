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


def test_alertmanager_pages_the_pager_port() -> None:
    s = HitoSettings()
    cfg = yaml.safe_load((INFRA / "alertmanager" / "alertmanager.yml").read_text())
    urls = {r["name"]: [w["url"] for w in r["webhook_configs"]] for r in cfg["receivers"]}
    base = f"http://127.0.0.1:{s.pager_port}/alerts"
    assert urls == {"pager-critical": [f"{base}/critical"], "pager-low": [f"{base}/low"]}


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=CheckpointSurge", "severity=critical", "site=chacalluta"], "pager-critical"),
        (["alertname=SinkFailing", "severity=critical"], "pager-critical"),
        (["alertname=DeviceSilent", "severity=warning", "site=santa-rosa"], "pager-low"),
        (["alertname=DlqRateHigh", "severity=warning"], "pager-low"),
        (["alertname=Unlabelled"], "pager-low"),
    ],
)
def test_alertmanager_routes_critical_to_the_pager_and_warnings_low(
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
