"""The dead man's switch: a page when the alert path itself goes quiet.

Prometheus fires the ``Watchdog`` alert all the time (infra/prometheus/rules/alertpath.yml)
and Alertmanager re-sends it every minute to ``POST /alerts/watchdog``. When none has arrived
for ``timeout_s``, Prometheus, Alertmanager or the route between them and the pager is down,
and no other alert can page: the pager raises ``AlertPathSilent`` itself (critical, recorded
and forwarded like any page) and resolves it when watchdog notifications come back.

Restarts: the last watchdog time is kept in a small file, and whether the silence page is
open is read back from the page log, so a restarted pager neither pages twice for the same
silence nor forgets to resolve it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from hito.ops.pager.pages import Page

WATCHDOG_ALERT = "Watchdog"
SILENT_ALERT = "AlertPathSilent"
# The receiver name on the pager's own pages: an alert routed by Alertmanager never has it.
SELF_RECEIVER = "hito-pager-watchdog"
RUNBOOK = "docs/runbooks/AlertPathSilent.md"
_LABELS = {"alertname": SILENT_ALERT, "severity": "critical", "source": "hito-pager"}
# Alertmanager's "no end yet" time, kept so the forward target sees what it knows.
_NO_END = "0001-01-01T00:00:00Z"


def iso(ts: float) -> str:
    """``ts`` (Unix seconds) as Alertmanager writes times: UTC, milliseconds, "Z"."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class DeadMansSwitch:
    """When the silence page is due, and whether it is open.

    Invariant: ``silent_since`` is set exactly while a firing AlertPathSilent page is the last
    one of its kind on record. The deadline is one ``timeout_s`` after the last watchdog
    notification, but never sooner than ``grace_s`` after the pager started: Alertmanager
    needs a moment to reach a pager that was just (re)started.
    """

    timeout_s: float
    grace_s: float
    started_at: float
    last_seen: float | None = None
    silent_since: str | None = None

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.grace_s < 0:
            raise ValueError(f"timeout_s must be > 0 and grace_s >= 0: {self}")

    def deadline(self) -> float:
        seen = self.last_seen if self.last_seen is not None else float("-inf")
        return max(seen + self.timeout_s, self.started_at + self.grace_s)

    def overdue(self, now: float) -> bool:
        """A silence page is due now (and none is open)."""
        return self.silent_since is None and now >= self.deadline()

    def seen(self, now: float) -> None:
        self.last_seen = max(now, self.last_seen or now)


def restored_silence(pages: Iterable[Page]) -> str | None:
    """The start of the silence page still open in a page log (None if none is)."""
    open_since: str | None = None
    for p in pages:
        if p.alertname == SILENT_ALERT and p.receiver == SELF_RECEIVER:
            open_since = p.starts_at if p.status == "firing" else None
    return open_since


def silence_notification(
    status: Literal["firing", "resolved"], starts_at: str, now: float, timeout_s: float
) -> dict[str, Any]:
    """The page, as an Alertmanager v4 webhook body: recorded like any notification and
    forwarded unchanged, so the paging service reads it like every other page."""
    annotations = {
        "summary": (
            f"No watchdog notification from Alertmanager for over {timeout_s:.0f} s: "
            "Prometheus, Alertmanager or the route to the pager is down, so no other alert "
            "can page"
        ),
        "runbook_url": RUNBOOK,
    }
    fingerprint = hashlib.sha256(repr(sorted(_LABELS.items())).encode()).hexdigest()[:16]
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{SILENT_ALERT}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": SELF_RECEIVER,
        "groupLabels": {"alertname": SILENT_ALERT},
        "commonLabels": _LABELS,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [
            {
                "status": status,
                "labels": _LABELS,
                "annotations": annotations,
                "startsAt": starts_at,
                "endsAt": iso(now) if status == "resolved" else _NO_END,
                "generatorURL": "",
                "fingerprint": fingerprint,
            }
        ],
    }


class LastSeenFile:
    """The time of the last watchdog notification, kept across restarts (written atomically;
    a lost update only makes the next deadline a little earlier)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> float | None:
        try:
            return float(self.path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def write(self, ts: float) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{ts:.3f}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(self.path)
