"""Alerts posted to Alertmanager reach `hito pager` (started by `hito up`): critical ones on
the critical path, warnings on the low-urgency one, each recorded in the durable page log."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from hito.ops.pager.paths import page_log_path
from hito.ops.pager.server import PageLog
from hito.settings import HitoSettings


def _alert(run: str, severity: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": "HitoSmokeTest", "run": run, "severity": severity},
        "annotations": {"summary": f"smoke test {severity}", "runbook_url": "docs/runbooks/x.md"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }


def _ours(stack: HitoSettings, run: str) -> list[dict[str, Any]]:
    pages = httpx.get(f"http://127.0.0.1:{stack.pager_port}/pages", timeout=5).json()
    return [p for p in pages if p["labels"].get("run") == run]


def test_alerts_reach_the_pager_by_urgency_and_are_logged(stack: HitoSettings) -> None:
    run = uuid.uuid4().hex[:10]
    r = httpx.post(
        f"{stack.alertmanager.url}/api/v2/alerts",
        json=[_alert(run, "critical"), _alert(run, "warning")],
    )
    assert r.status_code == 200
    # Critical: group_wait 1 s; warnings: 30 s. Other tests' alerts may arrive too.
    deadline = time.monotonic() + 90
    while len(_ours(stack, run)) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    pages = _ours(stack, run)
    assert sorted((p["urgency"], p["receiver"], p["labels"]["severity"]) for p in pages) == [
        ("critical", "pager-critical", "critical"),
        ("low", "pager-low", "warning"),
    ]
    assert all(p["status"] == "firing" and p["alertname"] == "HitoSmokeTest" for p in pages)
    # The same pages are in the durable log a restarted pager (or `hito pager show`) reads.
    logged = [p for p in PageLog(page_log_path(stack)).read() if p.labels.get("run") == run]
    assert len(logged) == 2
