"""Webhook bodies and credentials shared by the pager's tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

NOW = datetime(2026, 11, 28, 4, 2, tzinfo=UTC)
TOKEN = "test-token-0123456789abcdefghijklmnopqrstuv"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def notification(status: str = "firing", **labels: str) -> dict[str, Any]:
    """An Alertmanager v4 webhook body, as Alertmanager 0.25 sends it."""
    return {
        "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="CheckpointSurge"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "pager-critical",
        "groupLabels": {"alertname": "CheckpointSurge"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:19093",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "CheckpointSurge", "severity": "critical", **labels},
                "annotations": {
                    "summary": "Crossings at chacalluta (entry) far above normal",
                    "runbook_url": "docs/runbooks/CheckpointSurge.md",
                },
                "startsAt": "2026-11-28T04:01:05Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:19090/graph",
                "fingerprint": "a1b2c3",
            }
        ],
    }


def watchdog() -> dict[str, Any]:
    """The Watchdog notification Alertmanager re-sends every minute (receiver pager-watchdog)."""
    body = notification(alertname="Watchdog", severity="none")
    return body | {
        "receiver": "pager-watchdog",
        "groupKey": '{}/{alertname="Watchdog"}:{alertname="Watchdog"}',
        "alerts": [
            body["alerts"][0]
            | {
                "annotations": {
                    "summary": "Always firing",
                    "runbook_url": "docs/runbooks/Watchdog.md",
                },
                "fingerprint": "00000000deadbeef",
            }
        ],
    }
