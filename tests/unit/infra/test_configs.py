"""Shipped service configs: valid for their own tools, and in agreement with the settings."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from hito.settings import REPO_ROOT, HitoSettings
from hito.settings.sections import PrometheusSettings
from tests.unit.infra.tools import tool as _tool

INFRA = REPO_ROOT / "infra"


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
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    static = {
        name: job["static_configs"][0]["targets"]
        for name, job in jobs.items()
        if "static_configs" in job
    }
    assert static == {
        "hito-pager": [f"127.0.0.1:{s.pager_port}"],
        "influxdb": [f"{s.influxdb.host}:{s.influxdb.port}"],
        "prometheus": [f"{s.prometheus.host}:{s.prometheus.port}"],
        "alertmanager": [f"{s.alertmanager.host}:{s.alertmanager.port}"],
    }
    # Workers are discovered from files, never listed: no fixed worker port anywhere.
    assert jobs["hito-worker"] == {
        "job_name": "hito-worker",
        "file_sd_configs": [{"files": ["targets/workers/*.json"]}],
    }
    am = cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == [f"{s.alertmanager.host}:{s.alertmanager.port}"]


def test_the_stack_copy_discovers_workers_in_the_state_directory(tmp_path: Path) -> None:
    """`hito up` runs a copy with absolute rule files, the worker target directory of its
    state directory, the settings' ports and the runbook base; promtool accepts it."""
    from hito.stack.discovery import register
    from hito.stack.monitoring import stack_prometheus_config

    settings = HitoSettings(
        state_dir=tmp_path / "state",
        prometheus=PrometheusSettings(port=29090, runbook_base_url="https://wiki.example/rb/"),
    )
    shipped_dir = INFRA / "prometheus"
    text = stack_prometheus_config(
        (shipped_dir / "prometheus.yml").read_text(), shipped_dir, settings
    )
    cfg = yaml.safe_load(text)
    targets = tmp_path / "state" / "prometheus" / "targets" / "workers"
    [workers] = [j for j in cfg["scrape_configs"] if j["job_name"] == "hito-worker"]
    assert workers["file_sd_configs"] == [{"files": [f"{targets}/*.json"]}]
    assert cfg["rule_files"] == [f"{shipped_dir}/rules/*.yml"]
    assert cfg["global"]["external_labels"]["runbook_base"] == "https://wiki.example/rb"
    [own] = [j for j in cfg["scrape_configs"] if j["job_name"] == "prometheus"]
    assert own["static_configs"] == [{"targets": ["127.0.0.1:29090"]}]
    # A worker's file lands where the copy looks, in the format file discovery reads.
    path = register(settings, "127.0.0.1:41234", {"app_id": "hito"})
    assert path.parent == targets and path.match("*.json")
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:41234"], "labels": {"app_id": "hito"}}
    ]
    assert [p.name for p in targets.iterdir()] == [path.name]  # no temporary file left
    copy = tmp_path / "prometheus.yml"
    copy.write_text(text)
    result = subprocess.run(
        [_tool("promtool"), "check", "config", str(copy)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_copy_refuses_a_config_without_worker_discovery(tmp_path: Path) -> None:
    from hito.stack.monitoring import stack_prometheus_config

    shipped_dir = INFRA / "prometheus"
    cfg = yaml.safe_load((shipped_dir / "prometheus.yml").read_text())
    [workers] = [j for j in cfg["scrape_configs"] if j["job_name"] == "hito-worker"]
    del workers["file_sd_configs"]
    workers["static_configs"] = [{"targets": ["127.0.0.1:19100"]}]
    with pytest.raises(ValueError, match="must discover workers from files"):
        stack_prometheus_config(yaml.safe_dump(cfg), shipped_dir, HitoSettings(state_dir=tmp_path))


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


def test_the_config_the_stack_runs_names_the_state_directory_token(tmp_path: Path) -> None:
    """`hito up` runs a copy whose webhooks read the token from the state directory and reach
    the settings' pager port; amtool accepts it."""
    from hito.stack.services import with_token_file

    token = tmp_path / "state" / "pager" / "token"
    shipped = (INFRA / "alertmanager" / "alertmanager.yml").read_text()
    rendered = with_token_file(shipped, token, pager="127.0.0.1:29097")
    copy = tmp_path / "alertmanager.yml"
    copy.write_text(rendered)
    result = subprocess.run(
        [_tool("amtool"), "check-config", str(copy)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cfg = yaml.safe_load(rendered)
    hooks = [w for r in cfg["receivers"] for w in r["webhook_configs"]]
    files = [w["http_config"]["authorization"]["credentials_file"] for w in hooks]
    assert files == [str(token.resolve())] * 3
    assert [w["url"] for w in hooks] == [
        "http://127.0.0.1:29097/alerts/critical",
        "http://127.0.0.1:29097/alerts/low",
        "http://127.0.0.1:29097/alerts/watchdog",
    ]
    assert cfg["route"] == yaml.safe_load(shipped)["route"]


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
    """Bash in strict mode; POSIX sh (checked with dash) only where an image has no bash."""
    text = path.read_text()
    posix = text.startswith("#!/bin/sh\n")
    assert posix == (path in POSIX_SCRIPTS)
    result = subprocess.run(["dash" if posix else "bash", "-n", str(path)], capture_output=True)
    assert result.returncode == 0, result.stderr
    assert text.startswith("#!/bin/sh\n" if posix else "#!/usr/bin/env bash\n")
    assert ("set -eu\n" if posix else "set -euo pipefail") in text


# Run in prom/alertmanager, whose shell is busybox's.
POSIX_SCRIPTS = {INFRA / "alertmanager" / "compose-start.sh"}


def test_kafka_version_in_pom_matches_settings() -> None:
    pom = (INFRA / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka.version>(.+?)</kafka.version>", pom)
    assert match is not None
    assert match[1] == HitoSettings().kafka.version


def test_setup_disables_debians_prometheus_units(tmp_path: Path) -> None:
    """Nothing the setup leaves behind starts by itself at boot: where an earlier setup
    installed Debian's prometheus packages (enabled units, all interfaces), the install script
    disables them (stand-ins for dpkg-query and systemctl record what it asked)."""
    import os
    import stat

    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "calls"
    scripts = {
        "dpkg-query": 'case "$*" in *prometheus-node-exporter*) exit 1;; esac\n'
        'printf "install ok installed"\n',
        "systemctl": f'echo "$*" >> {calls}\ncase "$1" in is-enabled) exit 0;; *) exit 0;; esac\n',
    }
    for name, body in scripts.items():
        path = fake / name
        path.write_text("#!/usr/bin/env bash\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", str(INFRA / "install-debian.sh")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        "is-enabled prometheus",
        "disable prometheus",
        "is-enabled prometheus-alertmanager",
        "disable prometheus-alertmanager",
    ]
    assert "prometheus" not in (INFRA / "install-debian.sh").read_text().split("declare -A need")[1]
