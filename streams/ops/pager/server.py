"""``hito pager``: the webhook Alertmanager pages through.

It records every alert of every notification to a durable log (JSON lines, fsync'd before the
webhook is answered, so Alertmanager retries anything not on disk), optionally forwards the
notification unchanged to a configured URL (the real paging service), and shows what it got:
``GET /pages`` (JSON), ``hito pager show`` (a table), ``GET /metrics`` (Prometheus).

Paths: ``POST /alerts/critical`` (page on-call now) and ``POST /alerts/low`` (low urgency), as
routed by infra/alertmanager/alertmanager.yml.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hito.ops.pager.diskspace import is_no_space

log = logging.getLogger(__name__)

Urgency = Literal["critical", "low"]


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


class Pager:
    def __init__(self, page_log: PageLog, forward_url: str | None = None) -> None:
        self.log = page_log
        self.forward_url = forward_url
        self.registry = CollectorRegistry()
        self.pages = Counter(
            "hito_pager_pages",
            "Alerts received from Alertmanager",
            ["urgency", "status", "alertname"],
            registry=self.registry,
        )
        self.refused = Counter(
            "hito_pager_refused", "Webhook calls refused as unreadable", registry=self.registry
        )
        self.forward_errors = Counter(
            "hito_pager_forward_errors",
            "Notifications the forward URL did not accept (after retries)",
            registry=self.registry,
        )
        self.write_errors = Counter(
            "hito_pager_write_errors",
            "Webhook calls answered 503 because their pages could not be written to the page "
            "log (reason: no_space = disk or quota full, io = any other write error)",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("no_space", "io"):  # exported as 0 from the start, so rate() works
            self.write_errors.labels(reason=reason)
        self._session: aiohttp.ClientSession | None = None
        self._forwarding: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/alerts/{urgency}", self.receive)
        app.router.add_get("/pages", self.list_pages)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/health", self.health)
        app.on_cleanup.append(self._close)
        return app

    async def receive(self, request: web.Request) -> web.Response:
        urgency = request.match_info["urgency"]
        if urgency not in ("critical", "low"):
            raise web.HTTPNotFound(text="POST /alerts/critical or /alerts/low")
        body = await request.read()
        try:
            message = WebhookMessage.model_validate_json(body)
        except ValidationError as exc:
            self.refused.inc()
            return web.json_response({"error": str(exc.errors()[:3])}, status=400)
        pages = pages_of(message, urgency, datetime.now(UTC))  # type: ignore[arg-type]
        # On disk before Alertmanager hears "OK": a page is never only in memory.
        try:
            await asyncio.to_thread(self.log.append, pages)
        except OSError as exc:
            return self._not_recorded(pages, exc)
        for p in pages:
            self.pages.labels(urgency=urgency, status=p.status, alertname=p.alertname).inc()
            log.info("page %s %s %s site=%s", urgency, p.status, p.alertname, p.site)
        if self.forward_url:
            # Not awaited: the page is recorded; a slow forward target must not delay the
            # answer to Alertmanager. Kept referenced so the task is not garbage-collected.
            task = asyncio.get_running_loop().create_task(self._forward(body))
            self._forwarding.add(task)
            task.add_done_callback(self._forwarding.discard)
        return web.json_response({"recorded": len(pages)})

    def _not_recorded(self, pages: list[Page], exc: OSError) -> web.Response:
        """503, so Alertmanager retries the notification: a page that is not on disk is never
        acknowledged (PageLog.append has left the log as it was)."""
        reason = "no_space" if is_no_space(exc) else "io"
        self.write_errors.labels(reason=reason).inc()
        problem = "no space left on device" if reason == "no_space" else str(exc)
        log.error(
            "could not record %d page(s) in %s: %s; answering 503 so Alertmanager retries",
            len(pages),
            self.log.path,
            problem,
        )
        return web.json_response(
            {"error": f"page log {self.log.path}: {problem}", "recorded": 0}, status=503
        )

    async def _forward(self, body: bytes) -> None:
        assert self.forward_url
        self._session = self._session or aiohttp.ClientSession()
        for attempt in range(5):
            try:
                async with self._session.post(
                    self.forward_url,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as r:
                    if r.status < 300:
                        return
                    log.warning("forward to %s: HTTP %d", self.forward_url, r.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("forward to %s failed: %s", self.forward_url, exc)
            await asyncio.sleep(2**attempt)
        self.forward_errors.inc()

    async def list_pages(self, request: web.Request) -> web.Response:
        pages = [p.model_dump(mode="json") for p in self.log.read()]
        return web.Response(body=orjson.dumps(pages), content_type="application/json")

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()


def serve(host: str, port: int, page_log: PageLog, forward_url: str | None) -> None:
    pager = Pager(page_log, forward_url)
    web.run_app(pager.app(), host=host, port=port, print=None, access_log=None)


def summarise(pages: list[Page]) -> dict[str, Any]:
    """Counts for summaries (demo, status): firing pages by alert name and site."""
    firing: dict[str, int] = {}
    for p in pages:
        if p.status == "firing":
            key = f"{p.alertname}{'@' + p.site if p.site else ''}"
            firing[key] = firing.get(key, 0) + 1
    return {"pages": len(pages), "firing": firing}
