"""The paging-service outage of test_alert_path.py, run beside the rest of the session.

The scenario lasts more than five minutes (``HITO_TEST_FORWARD_OUTAGE_S``, default 300 s, the
issue's five minutes) and spends them waiting. It needs none of the session's shared services:
it has its own Prometheus, Alertmanager and pager (alert_path_stack.py) and its own forward
target. So tests/integration/conftest.py starts it in a thread once the shared stack is up, and
its test only waits for the outcome; the other tests run meanwhile. The scenario and its checks
are the same as when it ran inside its test, and a failure is raised in its test.

What keeps it apart from the tests around it:
- Its ports are below the kernel's ephemeral range and apart from every other test's
  (alert_path_stack.py, ``QUIET_PORTS``): while the forward target is down for minutes, or the
  pager restarts, no client socket or spare port of another test takes its port.
- Whatever ends the session early (-x, a failing fixture) also stops its services: from its
  thread, or from the fixture's teardown when the thread is still inside a wait.
- It never changes the process environment. With ``HITO_PAGER_TOKEN_FILE`` set, the private
  pager would share that token file; the scenario then runs inside its test, as before, with
  the variable removed for that test only.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from hito.ops.pager.auth import TOKEN_FILE_ENV
from tests.integration.stack.alert_path_stack import AlertPath, ForwardTarget, wait_for

WATCHDOG_TIMEOUT_S = 20.0
OUTAGE_S = float(os.environ.get("HITO_TEST_FORWARD_OUTAGE_S", "300"))
# The test's own limit (pytest-timeout), whether it waits for the scenario or runs it inline;
# it waits a little less, to say what timed out.
OUTAGE_TEST_TIMEOUT_S = OUTAGE_S + 240
OUTAGE_WAIT_S = OUTAGE_TEST_TIMEOUT_S - 30
OUTAGE_TEST = "test_pages_wait_out_a_paging_service_outage_and_a_pager_crash"


class Background:
    """A scenario in a thread of its own. ``result()`` waits for it and raises what it raised;
    a scenario never started (or not allowed in the background) runs there, inline.
    ``cleanup`` stops what it started; the scenario calls it too, on its way out."""

    def __init__(
        self,
        body: Callable[[], None],
        cleanup: Callable[[], None],
        *,
        inline_only: str | None = None,
    ) -> None:
        self._body = body
        self._cleanup = cleanup
        self._inline_only = inline_only  # why it may not run in the background
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._inline_only is None:
            self._thread = threading.Thread(target=self._run, name="paging-outage", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._body()
        except BaseException as exc:  # raised again in the test, by result()
            self._error = exc

    def result(self, timeout_s: float) -> None:
        if self._thread is None:
            with pytest.MonkeyPatch.context() as env:
                env.delenv(TOKEN_FILE_ENV, raising=False)
                self._body()
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise AssertionError(f"the background scenario is still running after {timeout_s} s")
        if self._error is not None:
            raise self._error

    def join(self, timeout_s: float) -> None:
        """Wait for the thread (after its stop was asked for); if it is still inside a wait
        that does not watch the stop (a service's start-up, say), stop its services here."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._cleanup()


def outage_scenario(root: Path, stopping: threading.Event) -> Background:
    """The scenario, under ``root``; ``stopping`` set at the end of the session cuts its waits
    short (a session that ended before its test, with -x say) and it stops its services."""
    inline_only = f"{TOKEN_FILE_ENV} is set" if os.environ.get(TOKEN_FILE_ENV) else None
    target = ForwardTarget()
    alert_path = AlertPath.create(
        root, watchdog_timeout_s=WATCHDOG_TIMEOUT_S, forward_url=target.url
    )

    def cleanup() -> None:
        alert_path.stop_all()
        target.down()

    return Background(
        lambda: _outage(alert_path, target, stopping, cleanup), cleanup, inline_only=inline_only
    )


def _post_alert(path: AlertPath, run: str) -> None:
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": "AlertPathTest", "severity": "critical", "run": run},
        "annotations": {"summary": "a page during the outage", "runbook_url": "docs/x.md"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
    }
    r = httpx.post(f"{path.settings.alertmanager.url}/api/v2/alerts", json=[alert], timeout=5)
    r.raise_for_status()


def _outage(
    alert_path: AlertPath,
    target: ForwardTarget,
    stopping: threading.Event,
    cleanup: Callable[[], None],
) -> None:
    def sleep(seconds: float) -> None:
        if stopping.wait(max(0.0, seconds)):
            raise AssertionError("the session ended before the scenario")

    try:
        alert_path.start_all()  # the target is down from the start: its port is closed
        outage_began = time.monotonic()
        run = uuid.uuid4().hex[:10]
        _post_alert(alert_path, run)
        wait_for("AlertPathTest recorded", 30, lambda: alert_path.pages("AlertPathTest"))
        wait_for(
            "failed forward attempts",
            30,
            lambda: (alert_path.metric("hito_pager_forward_failures_total") or 0) >= 3,
        )
        assert (alert_path.metric("hito_pager_forward_queue") or 0) >= 1

        # Half-way through, the pager crashes and is started again: the queue is on disk.
        sleep(OUTAGE_S / 2 - (time.monotonic() - outage_began))
        queued = alert_path.metric("hito_pager_forward_queue")
        alert_path.kill(alert_path.pager)
        alert_path.start(alert_path.pager)
        assert alert_path.metric("hito_pager_forward_queue") == queued
        assert queued is not None and queued >= 1

        # Prometheus notices the failing forward (2 min of failures) and pages about it: that
        # page queues too. The target stays down at least OUTAGE_S, and until then.
        wait_for(
            "PagerForwardFailing recorded",
            OUTAGE_S + 180,
            lambda: stopping.is_set() or alert_path.pages("PagerForwardFailing"),
            every_s=2,
        )
        sleep(OUTAGE_S - (time.monotonic() - outage_began))
        assert target.received == []
        failures_during_outage = alert_path.metric("hito_pager_forward_failures_total") or 0
        assert failures_during_outage >= 3  # since the restart alone

        target.up()
        back = time.monotonic()
        wait_for(
            "the queue drained", 30, lambda: alert_path.metric("hito_pager_forward_queue") == 0
        )
        delivered_after = time.monotonic() - back
        assert delivered_after <= 10  # within one back-off period (2 s) plus the sends
        names = target.alertnames()
        assert names[0] == ("AlertPathTest", "firing")  # in order: the oldest page first
        assert ("PagerForwardFailing", "firing") in names
        assert names.index(("PagerForwardFailing", "firing")) > 0
        assert target.received[0]["alerts"][0]["labels"]["run"] == run
        # A pager restart is not a silence: Alertmanager reached the new one within the grace.
        assert alert_path.pages("AlertPathSilent") == []
        assert list((alert_path.settings.state_dir / "pager" / "outbox").iterdir()) == []
    finally:
        cleanup()
