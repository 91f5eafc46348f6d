"""Prometheus finds workers by their target files (file service discovery), on the real
Prometheus 3 and real workers: a third worker started in the middle of a run is scraped with no
config change and no reload, the run stays exact, and WorkerDown still works — a killed worker
(its file left behind) pages the warning, a cleanly stopped one (its file removed) does not, and
the last one stopping pages the critical.

The Prometheus is this test's own (temporary state directory, spare port), started from the
config `hito up` generates; only the intervals are shortened to a second and only the
pipeline's rules are loaded (no Alertmanager: the alerts are read from Prometheus' API).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hito.runtime import Runtime
from hito.settings import REPO_ROOT, HitoSettings
from hito.stack import discovery, process
from hito.stack.monitoring import Prometheus
from hito.stack.worker_process import WorkerProcess, free_port
from tests.integration.pipeline.test_aggregation import assert_exact
from tests.integration.pipeline.test_faults import _fleet, _send_in_background, _wait_for_influx

PROMETHEUS = Prometheus("prometheus", "this test's own")


@pytest.fixture
def watched(isolated_runtime: Runtime, tmp_path: Path) -> Iterator[HitoSettings]:
    """The isolated pipeline's settings, pointing at a Prometheus of their own, running with
    its data under ``tmp_path`` (the workers keep the stack's state directory and tokens)."""
    settings = isolated_runtime.settings
    prometheus = settings.prometheus.model_copy(
        update={"port": free_port(), "worker_targets_dir": tmp_path / "targets"}
    )
    settings = settings.model_copy(update={"prometheus": prometheus})
    own = settings.model_copy(update={"state_dir": tmp_path / "state"})
    PROMETHEUS.prepare(own)
    config_path = PROMETHEUS.config_path(own)
    config = yaml.safe_load(config_path.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(REPO_ROOT / "infra" / "prometheus" / "rules" / "hito.yml")]
    config.pop("alerting")
    config["scrape_configs"] = [
        j for j in config["scrape_configs"] if j["job_name"] == "hito-worker"
    ]
    config_path.write_text(yaml.safe_dump(config))
    files = PROMETHEUS.files(own)
    process.start(PROMETHEUS.argv(own), files, cwd=PROMETHEUS.data_dir(own))
    try:
        _until("Prometheus ready", 60, lambda: PROMETHEUS.healthy(own))
        yield settings
    finally:
        process.stop(files, timeout_s=10)


def _until(what: str, timeout_s: float, check: Any, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(every_s)
    return found


def _query(settings: HitoSettings, promql: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{settings.prometheus.url}/api/v1/query", params={"query": promql}, timeout=5)
    r.raise_for_status()
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


def _last_config_time(settings: HitoSettings) -> str:
    r = httpx.get(f"{settings.prometheus.url}/api/v1/status/runtimeinfo", timeout=5)
    r.raise_for_status()
    info = r.json()["data"]
    assert info["reloadConfigSuccess"] is True
    when: str = info["lastConfigTime"]
    return when


def _up(settings: HitoSettings) -> dict[str, float]:
    rows = _query(settings, 'up{job="hito-worker"}')
    return {row["metric"]["instance"]: float(row["value"][1]) for row in rows}


def _worker_down(settings: HitoSettings) -> dict[tuple[str, str], str]:
    """Open WorkerDown alerts: (severity, instance) -> state (pending or firing)."""
    r = httpx.get(f"{settings.prometheus.url}/api/v1/alerts", timeout=5)
    r.raise_for_status()
    return {
        (a["labels"]["severity"], a["labels"].get("instance", "")): a["state"]
        for a in r.json()["data"]["alerts"]
        if a["labels"]["alertname"] == "WorkerDown"
    }


def test_a_third_worker_is_scraped_without_a_config_change_and_worker_down_works(
    watched: HitoSettings, isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings = watched
    config_path = tmp_path / "state" / "prometheus" / "prometheus.yml"
    config_digest = hashlib.sha256(config_path.read_bytes()).hexdigest()
    loaded = _last_config_time(settings)
    messages, exp = _fleet(isolated_runtime, 6000, seed=53)
    app_id = f"hito-sd-{uuid.uuid4().hex[:6]}"

    def start(name: str) -> WorkerProcess:
        return WorkerProcess.start(settings, app_id, free_port(), tmp_path / f"{name}.log")

    a, b = start("a"), start("b")
    workers = [a, b]
    try:
        a.wait_ready()
        b.wait_ready()
        _until("a and b scraped", 30, lambda: _up(settings) == {a.address: 1.0, b.address: 1.0})
        sender = _send_in_background(settings, messages, rate=400)  # 15 s of traffic
        time.sleep(3)
        c = start("c")
        workers.append(c)
        # Listed by c itself once its endpoint is up, then discovered and scraped while the
        # run goes on: samples from c.
        assert c.target_file is not None
        _until("c's target file", 30, c.target_file.exists)
        _until("c scraped", 30, lambda: _up(settings).get(c.address) == 1.0)
        assert _query(settings, f'scrape_samples_scraped{{instance="{c.address}"}} > 0')
        c.wait_ready()
        sender.join(timeout=60)
        _wait_for_influx(settings, exp, timeout_s=120)
        for w in workers:
            assert w.alive() and w.crashes() == 0, w.log_tail()

        # c is killed: its file stays, Prometheus sees it down, the warning fires (for: 30s).
        c.kill9()
        assert c.target_file.exists()
        _until("c down", 15, lambda: _up(settings).get(c.address) == 0.0)
        _until(
            "WorkerDown warning for c",
            75,
            lambda: _worker_down(settings).get(("warning", c.address)) == "firing",
            every_s=2,
        )
        # b is stopped cleanly: its file goes, so does its target; no alert about it.
        b.stop()
        assert b.target_file is not None and not b.target_file.exists()
        _until("b no longer a target", 20, lambda: b.address not in _up(settings))
        time.sleep(35)  # longer than the warning's `for`
        open_alerts = _worker_down(settings)
        assert ("warning", b.address) not in open_alerts
        assert ("critical", "") not in open_alerts  # a is still up
        # a, the last one answering, stops cleanly: no worker at all pages critical (for: 1m).
        a.stop()
        _until(
            "WorkerDown critical",
            100,
            lambda: _worker_down(settings).get(("critical", "")) == "firing",
            every_s=2,
        )
        assert discovery.registered(settings) == [c.address]  # only the killed worker's file
    finally:
        for w in workers:
            w.stop()
            w.forget()
    # Never a reload, never another config: discovery alone brought c in.
    assert hashlib.sha256(config_path.read_bytes()).hexdigest() == config_digest
    assert _last_config_time(settings) == loaded
    assert_exact(settings, exp, isolated_runtime.policy.version)
