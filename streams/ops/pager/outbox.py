"""The forward queue: notifications on their way to the real paging service.

Each notification is one file in the outbox directory, fsync'd (and its directory entry too)
before the pager answers Alertmanager, and deleted only once the forward target answered 2xx.
So nothing is dropped: not when the target is down for hours, not when the pager restarts in
between. Files are named by a sequence number; sending in name order keeps a firing page
before its resolution.

Queueing is two-phase (``stage`` then ``commit``) so the webhook can write the page log in
between: a page that could not be recorded is not forwarded either, and Alertmanager's retry
queues it once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger(__name__)

_QUEUED = re.compile(r"^(\d{12})\.json$")
_STAGED_SUFFIX = ".staged"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Outbox:
    """A directory of queued notification bodies, oldest first. Thread-safe."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # A staged file left by a crash was never acknowledged to Alertmanager, which
        # retries the notification: queueing it too would forward it twice.
        for leftover in directory.glob(f"*{_STAGED_SUFFIX}"):
            leftover.unlink()
        self._next = max((int(n) for n in self._numbers()), default=0) + 1

    def _numbers(self) -> list[str]:
        return sorted(m[1] for p in self.directory.iterdir() if (m := _QUEUED.match(p.name)))

    def stage(self, body: bytes) -> Path:
        """Write ``body`` durably under a name ``pending`` ignores; ``commit`` queues it."""
        with self._lock:
            number = self._next
            self._next += 1
        staged = self.directory / f"{number:012d}.json{_STAGED_SUFFIX}"
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            os.close(fd)
            staged.unlink(missing_ok=True)
            raise
        os.close(fd)
        return staged

    def commit(self, staged: Path) -> Path:
        """Queue a staged body (an atomic rename, made durable)."""
        queued = staged.with_name(staged.name.removesuffix(_STAGED_SUFFIX))
        staged.rename(queued)
        _fsync_dir(self.directory)
        return queued

    def discard(self, staged: Path) -> None:
        staged.unlink(missing_ok=True)

    def put(self, body: bytes) -> Path:
        return self.commit(self.stage(body))

    def pending(self) -> list[Path]:
        """Queued bodies, oldest first."""
        return [self.directory / f"{n}.json" for n in self._numbers()]

    def remove(self, queued: Path) -> None:
        """Forget a delivered body (durably: a restart must not send it again)."""
        queued.unlink(missing_ok=True)
        _fsync_dir(self.directory)


def redacted(url: str) -> str:
    """``url`` without path, query or user info: paging services put keys there, and this
    string goes into logs."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}/…"


def forward_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a forward target, or None when it can. Checked at start: a URL
    without an http(s) scheme or a host would otherwise fail every attempt, retried for ever.
    The answer names the problem, never a part of the URL (keys live in it)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number (or too large)
    except ValueError:
        return "it is not a URL (a malformed host or port)"
    if parts.scheme not in ("http", "https"):
        return "it does not start with http:// or https://"
    if not parts.hostname:
        return "it has no host"
    return None


@dataclass(frozen=True)
class Backoff:
    """Capped exponential back-off between failed attempts; there is no last attempt."""

    initial_s: float = 1.0
    max_s: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1, 2, …)."""
        return float(min(self.max_s, self.initial_s * 2 ** min(failures - 1, 30)))


class Forwarder:
    """Sends the outbox, oldest first, until each body is accepted (2xx), for ever.

    One body at a time: a later notification never overtakes an earlier one (a resolution
    must not arrive before its page). ``on_failure`` and ``on_change`` feed the metrics.
    """

    def __init__(
        self,
        outbox: Outbox,
        url: str,
        backoff: Backoff,
        *,
        on_failure: Callable[[], None],
        on_change: Callable[[int], None],
        timeout_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.outbox = outbox
        self.url = url
        self.backoff = backoff
        self._on_failure = on_failure
        self._on_change = on_change
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._sleep = sleep
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was queued: look at the outbox now."""
        self._wake.set()

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            failures = 0
            while True:
                try:
                    delivered = await self._send_oldest(session)
                except OSError as exc:  # the outbox itself (disk): keep trying, loudly
                    log.error("forward queue %s unreadable: %s", self.outbox.directory, exc)
                    delivered = False
                if delivered:
                    failures = 0
                    continue
                failures += 1
                self._on_failure()
                await self._sleep(self.backoff.delay(failures))

    async def _send_oldest(self, session: aiohttp.ClientSession) -> bool:
        """Send the oldest queued body (waiting for one if none is); whether it was accepted."""
        self._wake.clear()
        queued = await asyncio.to_thread(self.outbox.pending)
        self._on_change(len(queued))
        if not queued:
            await self._wake.wait()
            return True
        if not await self._send(session, queued[0]):
            log.warning(
                "%d notification(s) waiting for %s; retrying with back-off (at most %.0f s)",
                len(queued),
                redacted(self.url),
                self.backoff.max_s,
            )
            return False
        await asyncio.to_thread(self.outbox.remove, queued[0])
        self._on_change(len(queued) - 1)
        return True

    async def _send(self, session: aiohttp.ClientSession, queued: Path) -> bool:
        try:
            body = await asyncio.to_thread(queued.read_bytes)
        except FileNotFoundError:
            return True  # already delivered and removed
        try:
            async with session.post(
                self.url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
            ) as r:
                if 200 <= r.status < 300:
                    return True
                log.warning("forward to %s: HTTP %d", redacted(self.url), r.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("forward to %s failed: %s", redacted(self.url), self._describe(exc))
        return False

    def _describe(self, exc: Exception) -> str:
        # Never str(exc) as such: some aiohttp errors repeat the whole URL, key included.
        if isinstance(exc, aiohttp.ClientConnectorError):
            return f"cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
        if isinstance(exc, TimeoutError):
            return f"no answer within {self._timeout.total:.0f} s"
        return type(exc).__name__
