"""What the pager records: Alertmanager's webhook payload, the page made of each alert, and the
durable page log (JSON lines, fsync'd before the webhook is answered).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

Urgency = Literal["critical", "low"]
"""The webhook path a notification came on (the route's urgency)."""


class _Lenient(BaseModel):
    # Alertmanager adds fields between versions; a page must never be refused for that.
    model_config = ConfigDict(extra="ignore")


class WebhookAlert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str = ""
    endsAt: str = ""
    fingerprint: str = ""


class WebhookMessage(_Lenient):
    """Alertmanager's webhook payload (version 4)."""

    version: str
    receiver: str
    status: Literal["firing", "resolved"]
    alerts: list[WebhookAlert] = Field(min_length=1)
    groupKey: str = ""


class Page(BaseModel):
    """One alert of one notification, as recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    received_at: datetime
    urgency: Urgency
    receiver: str
    status: Literal["firing", "resolved"]
    alertname: str
    severity: str
    site: str | None
    summary: str
    runbook_url: str
    labels: dict[str, str]
    starts_at: str
    ends_at: str
    fingerprint: str


def pages_of(message: WebhookMessage, urgency: Urgency, now: datetime) -> list[Page]:
    return [
        Page(
            received_at=now,
            urgency=urgency,
            receiver=message.receiver,
            status=a.status,
            alertname=a.labels.get("alertname", ""),
            severity=a.labels.get("severity", ""),
            site=a.labels.get("site"),
            summary=a.annotations.get("summary", ""),
            runbook_url=a.annotations.get("runbook_url", ""),
            labels=a.labels,
            starts_at=a.startsAt,
            ends_at=a.endsAt,
            fingerprint=a.fingerprint,
        )
        for a in message.alerts
    ]


class PageLog:
    """Append-only JSON lines; each append is flushed and fsync'd before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Appends run in worker threads (asyncio.to_thread), one per webhook call: one at a
        # time, so a failed append can cut the file back to where it began without cutting
        # off pages another call has just written.
        self._lock = threading.Lock()

    def append(self, pages: list[Page]) -> None:
        """Raises OSError (the webhook then answers 503 and Alertmanager retries) unless every
        byte is on disk; after a failure the file is as it was before the call."""
        data = b"".join(orjson.dumps(p.model_dump(mode="json")) + b"\n" for p in pages)
        with self._lock:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a torn last line (crash mid-write) stays on its own
                try:
                    view = memoryview(data)
                    while view:  # os.write may write less than asked (disk nearly full)
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except OSError:
                    # A disk that fills mid-append leaves part of a line (and maybe some whole
                    # pages) behind. Alertmanager will retry the whole notification, so keep
                    # none of it: no torn line, and no page twice once the retry succeeds.
                    self._cut_back(fd, size)
                    raise
            finally:
                os.close(fd)
            if created:  # the new file's directory entry must be durable too
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)

    def _cut_back(self, fd: int, size: int) -> None:
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:
            # Readers skip an unreadable line and the next append starts on a new line, so
            # the log stays usable; the caller still reports the original failure.
            log.error(
                "could not cut %s back to %d bytes after a failed append: %s", self.path, size, exc
            )

    def read(self) -> Iterator[Page]:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            for line in f:
                if line.strip():
                    # A torn last line (power loss mid-write) is skipped, not fatal.
                    try:
                        yield Page.model_validate_json(line)
                    except ValidationError:
                        log.warning("unreadable line in %s skipped", self.path)


def paged_and_resolved(pages: Iterable[Page], alertname: str) -> bool:
    """Whether ``alertname`` paged (a firing page among ``pages``) and every alert of that
    name, one per label set (its fingerprint: CheckpointSurge has one per site and
    direction), has resolved since: its last page says so. Not only the first to resolve: a
    surge pages for entry and exit, which resolve minutes apart."""
    last: dict[object, str] = {}
    fired = False
    for p in sorted(pages, key=lambda p: p.received_at):  # stable: a notification's order
        if p.alertname == alertname:
            # Alertmanager always sends one; a hand-made webhook may not.
            last[p.fingerprint or tuple(sorted(p.labels.items()))] = p.status
            fired = fired or p.status == "firing"
    return fired and set(last.values()) == {"resolved"}


def summarise(pages: list[Page]) -> dict[str, Any]:
    """Counts for summaries (demo, status): firing pages by alert name and site."""
    firing: dict[str, int] = {}
    for p in pages:
        if p.status == "firing":
            key = f"{p.alertname}{'@' + p.site if p.site else ''}"
            firing[key] = firing.get(key, 0) + 1
    return {"pages": len(pages), "firing": firing}
