"""`hito up` is idempotent on a running stack and `hito status` reports every service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from hito.settings import HitoSettings
from hito.stack import process
from hito.stack.services import SERVICES


def _hito(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hito.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **env},
    )


def test_up_twice_starts_nothing_and_status_is_healthy(stack: HitoSettings) -> None:
    pids_before = _pids(stack)
    second = _hito("up")
    assert second.returncode == 0, second.stderr
    assert "started: nothing (all were running)" in second.stderr
    assert _pids(stack) == pids_before

    status = _hito("status")
    assert status.returncode == 0, status.stdout
    for name, port in (
        ("kafka", stack.kafka.port),
        ("influxdb", stack.influxdb.port),
        ("prometheus", stack.prometheus.port),
        ("alertmanager", stack.alertmanager.port),
        ("pager", stack.pager_port),
    ):
        line = next(row for row in status.stdout.splitlines() if row.startswith(f"│ {name} "))
        assert "healthy" in line and f"127.0.0.1:{port}" in line, line
    # The operator's part: pipeline figures from Prometheus and the open alerts from
    # Alertmanager (both answered: no "not available" line).
    assert "Pipeline (Prometheus, last minute)" in status.stdout
    assert "Open alerts (" in status.stdout
    assert "not available" not in status.stdout, status.stdout

    # The same for scripts: one JSON document.
    as_json = _hito("status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["healthy"] is True and doc["problems"] == []
    by_name = {s["name"]: s for s in doc["services"]}
    assert {n: (s["healthy"], s["url"].rsplit(":", 1)[1]) for n, s in by_name.items()} == {
        "kafka": (True, str(stack.kafka.port)),
        "influxdb": (True, str(stack.influxdb.port)),
        "prometheus": (True, str(stack.prometheus.port)),
        "alertmanager": (True, str(stack.alertmanager.port)),
        "pager": (True, str(stack.pager_port)),
    }
    assert set(doc["pipeline"]) >= {"workers", "events_per_s", "dlq_per_s", "lag"}
    assert "Watchdog" in {a["alertname"] for a in doc["alerts"]}  # the alert path works


def test_up_in_another_state_directory_refuses_this_stacks_services(
    stack: HitoSettings, tmp_path: Path
) -> None:
    """A second `hito up` (another checkout, a CI run) on the same ports used to report
    "started: nothing (all were running)" for services it did not run."""
    pids_before = _pids(stack)
    second = tmp_path / "second-state"
    refused = _hito("up", HITO_STATE_DIR=str(second), COLUMNS="10000")

    assert refused.returncode == 1, refused.stderr
    assert "nothing was started" in refused.stderr
    theirs = stack.state_dir.resolve()  # as the services' working directories name it
    for svc in SERVICES:
        pid = process.read_pid(svc.files(stack))
        port = urlsplit(svc.url(stack)).port
        assert f"  {svc.name}: port {port}, pid {pid} (" in refused.stderr
        assert f"): the {svc.name} of the stack in {theirs}\n" in refused.stderr
    assert f"Stop that stack: `HITO_STATE_DIR={theirs} hito down`." in refused.stderr
    assert not (second / "run").exists()  # no pid file: it started nothing
    assert _pids(stack) == pids_before


def _pids(settings: HitoSettings) -> dict[str, str]:
    run = settings.state_dir / "run"
    return {p.stem: p.read_text() for p in sorted(run.glob("*.pid"))}
