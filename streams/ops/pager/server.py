"""``hito pager``: the webhook Alertmanager pages through.

It records every alert of every notification to a durable log (JSON lines, fsync'd before the
webhook is answered, so Alertmanager retries anything not on disk), queues the notification
unchanged on disk for the configured forward URL (the real paging service) and retries it
until it is accepted, and shows what it got: ``GET /pages`` (JSON), ``hito pager show`` (a
table), ``GET /metrics`` (Prometheus).

Paths: ``POST /alerts/critical`` (page on-call now), ``POST /alerts/low`` (low urgency) and
``POST /alerts/watchdog`` (the always-firing Watchdog: proof that the alert path works, never
a page), as routed by infra/alertmanager/alertmanager.yml. Every POST needs the bearer token
(hito.ops.pager.auth); one without it is answered 401 and recorded nowhere but a counter.
When the watchdog goes quiet the pager pages ``AlertPathSilent`` itself (watchdog.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from pydantic import ValidationError

from hito.ops.pager.auth import bearer_matches
from hito.ops.pager.diskspace import is_no_space
from hito.ops.pager.outbox import Backoff, Forwarder, Outbox, redacted
from hito.ops.pager.pages import Page, PageLog, Urgency, WebhookMessage, pages_of, summarise
from hito.ops.pager.safe_text import printable
from hito.ops.pager.watchdog import (
    WATCHDOG_ALERT,
    DeadMansSwitch,
    LastSeenFile,
    iso,
    restored_silence,
    silence_notification,
)

# Importers of the page model use this module's names (the demo, the tests).
__all__ = ["Page", "PageLog", "Pager", "WebhookMessage", "pages_of", "serve", "summarise"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Alertmanager's notifications are a few kB; 1 MiB is generous
DEFAULT_WATCHDOG_TIMEOUT_S = 300.0
# Alertmanager re-sends the Watchdog every minute (and retries a pager that was down).
DEFAULT_WATCHDOG_GRACE_S = 120.0
_PATHS = ("critical", "low", "watchdog")


class Pager:
    """The webhook receiver.

    Invariants: a notification is answered 2xx only once its pages are in the page log and
    (with a forward URL) its body is in the outbox; a POST without the token leaves no trace
    but ``hito_pager_refused_total``; a queued body leaves the outbox only when the forward
    target accepted it; at most one AlertPathSilent page is open at a time.
    """

    def __init__(
        self,
        page_log: PageLog,
        token: str,
        *,
        forward_url: str | None = None,
        watchdog_timeout_s: float = DEFAULT_WATCHDOG_TIMEOUT_S,
        watchdog_grace_s: float | None = None,
        backoff: Backoff | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = page_log
        self.token = token
        self.forward_url = forward_url
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        directory = page_log.path.parent
        self.outbox = Outbox(directory / "outbox") if forward_url else None
        self.last_seen = LastSeenFile(directory / "watchdog-last-seen")
        grace = (
            min(DEFAULT_WATCHDOG_GRACE_S, watchdog_timeout_s)
            if watchdog_grace_s is None
            else watchdog_grace_s
        )
        self.switch = DeadMansSwitch(
            timeout_s=watchdog_timeout_s,
            grace_s=grace,
            started_at=clock(),
            last_seen=self.last_seen.read(),
            silent_since=restored_silence(page_log.read()),
        )
        self.check_every_s = min(5.0, watchdog_timeout_s / 10)
        self._metrics()
        self.forwarder = (
            Forwarder(
                self.outbox,
                forward_url,
                backoff or Backoff(),
                on_failure=self.forward_failures.inc,
                on_change=self.forward_queue.set,
            )
            if self.outbox is not None and forward_url
            else None
        )
        self._tasks: list[asyncio.Task[None]] = []

    def _metrics(self) -> None:
        r = self.registry = CollectorRegistry()
        self.pages = Counter(
            "hito_pager_pages",
            "Alerts received from Alertmanager (and the pager's own AlertPathSilent)",
            ["urgency", "status", "alertname"],
            registry=r,
        )
        self.refused = Counter(
            "hito_pager_refused",
            "POSTs refused and recorded nowhere (reason: unauthorized = no or wrong bearer "
            "token, too_large = body over the limit, unreadable = not an Alertmanager webhook)",
            ["reason"],
            registry=r,
        )
        self.write_errors = Counter(
            "hito_pager_write_errors",
            "Webhook calls answered 503 because their pages could not be written to the page "
            "log (reason: no_space = disk or quota full, io = any other write error)",
            ["reason"],
            registry=r,
        )
        # Exported as 0 from the start, so rate() and absent-or-zero checks work.
        for reason in ("unauthorized", "too_large", "unreadable"):
            self.refused.labels(reason=reason)
        for reason in ("no_space", "io"):
            self.write_errors.labels(reason=reason)
        self.forward_failures = Counter(
            "hito_pager_forward_failures",
            "Forward attempts the forward URL did not accept (each is retried)",
            registry=r,
        )
        self.forward_queue = Gauge(
            "hito_pager_forward_queue",
            "Notifications queued on disk, not yet accepted by the forward URL",
            registry=r,
        )
        Gauge(
            "hito_pager_forward_configured",
            "1 when a forward URL is set; 0: pages go nowhere but the page log",
            registry=r,
        ).set(1 if self.forward_url else 0)
        self.watchdog_seen = Counter(
            "hito_pager_watchdog_notifications", "Watchdog notifications received", registry=r
        )
        self.watchdog_last = Gauge(
            "hito_pager_watchdog_last_seen_seconds",
            "Unix time of the last watchdog notification (0: none yet)",
            registry=r,
        )
        self.watchdog_last.set(self.switch.last_seen or 0)
        self.silent = Gauge(
            "hito_pager_alert_path_silent",
            "1 while the pager's own AlertPathSilent page is open",
            registry=r,
        )
        self.silent.set(1 if self.switch.silent_since else 0)
        if self.outbox is not None:
            self.forward_queue.set(len(self.outbox.pending()))

    def app(self) -> web.Application:
        @web.middleware
        async def require_token(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            # Before the body is read: an unauthenticated sender costs a header check only.
            if request.method == "POST" and not bearer_matches(
                request.headers.get("Authorization"), self.token
            ):
                self.refused.labels(reason="unauthorized").inc()
                return web.json_response(
                    {"error": "a valid bearer token is required"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="hito-pager"'},
                )
            return await handler(request)

        app = web.Application(client_max_size=self.max_body_bytes, middlewares=[require_token])
        app.router.add_post("/alerts/{urgency}", self.receive)
        app.router.add_get("/pages", self.list_pages)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/health", self.health)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def receive(self, request: web.Request) -> web.Response:
        path = request.match_info["urgency"]
        if path not in _PATHS:
            raise web.HTTPNotFound(text="POST /alerts/critical, /alerts/low or /alerts/watchdog")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.refused.labels(reason="too_large").inc()
            raise
        try:
            message = WebhookMessage.model_validate_json(body)
        except ValidationError as exc:
            self.refused.labels(reason="unreadable").inc()
            return web.json_response({"error": str(exc.errors()[:3])}, status=400)
        if path == "watchdog":
            return await self._heartbeat(message)
        urgency: Urgency = "critical" if path == "critical" else "low"
        pages = pages_of(message, urgency, datetime.now(UTC))
        problem = await self._record(pages, body)
        if problem is not None:
            return problem
        return web.json_response({"recorded": len(pages)})

    async def _record(self, pages: list[Page], body: bytes) -> web.Response | None:
        """Pages on disk (and the body queued for forwarding) before anyone hears "OK": a page
        is never only in memory. None when done; else the 503 to answer."""
        try:
            await asyncio.to_thread(self._write, pages, body)
        except OSError as exc:
            return self._not_recorded(pages, exc)
        for p in pages:
            self.pages.labels(urgency=p.urgency, status=p.status, alertname=p.alertname).inc()
            log.info(
                "page %s %s %s site=%s",
                p.urgency,
                p.status,
                printable(p.alertname, 100),
                printable(p.site, 100),
            )
        if self.forwarder is not None:
            self.forwarder.wake()
        return None

    def _write(self, pages: list[Page], body: bytes) -> None:
        # Staged first, committed after the page log: a notification the log refused (503,
        # Alertmanager retries) is not queued, so the retry is the only copy forwarded.
        staged = self.outbox.stage(body) if self.outbox is not None else None
        try:
            self.log.append(pages)
        except OSError:
            if staged is not None and self.outbox is not None:
                self.outbox.discard(staged)
            raise
        if staged is not None and self.outbox is not None:
            self.outbox.commit(staged)

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

    async def _heartbeat(self, message: WebhookMessage) -> web.Response:
        """A watchdog notification: the alert path works. Never a page; closes the silence
        page if one is open."""
        if not any(
            a.status == "firing" and a.labels.get("alertname") == WATCHDOG_ALERT
            for a in message.alerts
        ):
            self.refused.labels(reason="unreadable").inc()
            return web.json_response({"error": f"no firing {WATCHDOG_ALERT} alert"}, status=400)
        now = self.clock()
        self.switch.seen(now)
        self.watchdog_seen.inc()
        self.watchdog_last.set(now)
        try:
            await asyncio.to_thread(self.last_seen.write, now)
        except OSError as exc:  # only a restart's deadline depends on it
            log.warning("could not keep the watchdog time in %s: %s", self.last_seen.path, exc)
        if self.switch.silent_since is not None and not await self._silence_page("resolved"):
            return web.json_response({"error": "could not record the resolution"}, status=503)
        return web.json_response({"watchdog": "ok"})

    async def _silence_page(self, status: Literal["firing", "resolved"]) -> bool:
        """Record and forward AlertPathSilent; False (logged, retried later) if not on disk."""
        now = self.clock()
        seen = self.switch.last_seen
        starts_at = self.switch.silent_since or iso(seen or self.switch.started_at)
        body = orjson.dumps(silence_notification(status, starts_at, now, self.switch.timeout_s))
        message = WebhookMessage.model_validate_json(body)
        pages = pages_of(message, "critical", datetime.fromtimestamp(now, UTC))
        if await self._record(pages, body) is not None:
            return False
        self.switch.silent_since = starts_at if status == "firing" else None
        self.silent.set(1 if status == "firing" else 0)
        if status == "firing":
            last = f"the last at {iso(seen)}" if seen else "none since the pager started"
            log.error(
                "alert path silent: no watchdog notification for over %.0f s (%s); paged "
                "AlertPathSilent",
                self.switch.timeout_s,
                last,
            )
        else:
            log.info("alert path back: watchdog notifications arrive again; resolved")
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_every_s)
            if self.switch.overdue(self.clock()):
                await self._silence_page("firing")  # not on disk: tried again next check

    async def _start(self, app: web.Application) -> None:
        if self.forward_url:
            log.info("forwarding every notification to %s", redacted(self.forward_url))
        else:
            log.warning(
                "no forward URL (--forward-url or HITO_PAGER_FORWARD_URL): pages go nowhere "
                "but the page log %s",
                self.log.path,
            )
            leftover = self.log.path.parent / "outbox"
            if leftover.is_dir() and (queued := Outbox(leftover).pending()):
                log.warning("%d notification(s) stay queued in %s", len(queued), leftover)
        log.info(
            "watchdog: AlertPathSilent after %.0f s without a watchdog notification",
            self.switch.timeout_s,
        )
        self._spawn(self._watch())
        if self.forwarder is not None:
            self._spawn(self.forwarder.run())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        task.add_done_callback(self._ended)
        self._tasks.append(task)

    def _ended(self, task: asyncio.Task[None]) -> None:
        # These loops never return: one that ended is a bug, and must not end silently
        # (/health turns 503, so `hito status` and `hito up` see it).
        if not task.cancelled():
            log.critical("pager task %s ended: %r", task.get_coro(), task.exception())

    async def _stop(self, app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def list_pages(self, request: web.Request) -> web.Response:
        pages = [p.model_dump(mode="json") for p in self.log.read()]
        return web.Response(body=orjson.dumps(pages), content_type="application/json")

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")

    async def health(self, request: web.Request) -> web.Response:
        if any(t.done() for t in self._tasks):
            return web.json_response({"status": "a background task ended"}, status=503)
        return web.json_response({"status": "ok"})


def serve(host: str, port: int, pager: Pager) -> None:
    web.run_app(pager.app(), host=host, port=port, print=None, access_log=None)
