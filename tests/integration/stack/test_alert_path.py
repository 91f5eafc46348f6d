"""The alert path cannot die quietly (issue #18, finding 4), on the real services.

Each test runs its own Prometheus, Alertmanager and `hito pager` (alert_path_stack.py: spare
loopback ports, a temporary state directory, the stack's own start-up code) and stops them
afterwards; the shared stack is not touched.

1. Prometheus is killed: the pager pages AlertPathSilent within its watchdog timeout, and
   resolves it once Prometheus is back.
2. A POST without the token is refused and recorded nowhere, while Alertmanager's (with the
   token from the state directory) keep arriving.
3. The paging service is down for ``HITO_TEST_FORWARD_OUTAGE_S`` (default 300 s, the issue's
   five minutes; the whole scenario stays under 6 minutes) and the pager crashes meanwhile:
   every page is delivered, in order, when the service is back, and PagerForwardFailing has
   paged. It runs beside the rest of the session (paging_outage.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.stack.alert_path_stack import AlertPath, ForwardTarget, wait_for
from tests.integration.stack.paging_outage import (
    OUTAGE_TEST_TIMEOUT_S,
    OUTAGE_WAIT_S,
    WATCHDOG_TIMEOUT_S,
    Background,
)


@pytest.fixture
def target() -> Iterator[ForwardTarget]:
    t = ForwardTarget()
    yield t
    t.down()


@pytest.fixture
def alert_path(
    tmp_path: Path, target: ForwardTarget, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AlertPath]:
    # The token must be this test's, in its own state directory.
    monkeypatch.delenv("HITO_PAGER_TOKEN_FILE", raising=False)
    path = AlertPath.create(tmp_path, watchdog_timeout_s=WATCHDOG_TIMEOUT_S, forward_url=target.url)
    try:
        yield path
    finally:
        path.stop_all()


def watchdogs(path: AlertPath) -> float:
    return path.metric("hito_pager_watchdog_notifications_total") or 0.0


def test_a_dead_prometheus_pages_alert_path_silent_then_resolves(
    alert_path: AlertPath, target: ForwardTarget
) -> None:
    target.up()
    alert_path.start_all()
    # Alertmanager (0.25) reaches the pager with the token `hito up` generated.
    wait_for("a watchdog notification", 60, lambda: watchdogs(alert_path) >= 2)
    assert alert_path.pages("AlertPathSilent") == []
    assert alert_path.metric("hito_pager_refused_total", {"reason": "unauthorized"}) == 0

    alert_path.kill(alert_path.prometheus)
    killed = time.monotonic()
    [page] = wait_for(
        "AlertPathSilent", WATCHDOG_TIMEOUT_S + 40, lambda: alert_path.pages("AlertPathSilent")
    )
    silent_after = time.monotonic() - killed
    # The last watchdog came at most one repeat (2 s) before the kill, or up to 4 s after it
    # (Alertmanager keeps Prometheus' last alert until its end time); the pager checks
    # every 2 s.
    assert WATCHDOG_TIMEOUT_S - 3 <= silent_after <= WATCHDOG_TIMEOUT_S + 12, silent_after
    assert (page["status"], page["urgency"], page["severity"]) == ("firing", "critical", "critical")
    assert page["runbook_url"] == "docs/runbooks/AlertPathSilent.md"
    wait_for("the page forwarded", 15, lambda: ("AlertPathSilent", "firing") in target.alertnames())

    alert_path.start(alert_path.prometheus)  # restarted on the same data directory
    wait_for(
        "AlertPathSilent resolved",
        60,
        lambda: [p for p in alert_path.pages("AlertPathSilent") if p["status"] == "resolved"],
    )
    assert [p["status"] for p in alert_path.pages("AlertPathSilent")] == ["firing", "resolved"]
    wait_for(
        "the resolution forwarded",
        15,
        lambda: ("AlertPathSilent", "resolved") in target.alertnames(),
    )


def forged_page() -> bytes:
    return orjson.dumps(
        {
            "version": "4",
            "status": "firing",
            "receiver": "pager-critical",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "ForgedPage", "severity": "critical", "site": "x"},
                    "annotations": {"summary": "all quiet, ignore the other pages"},
                }
            ],
        }
    )


def test_a_post_without_the_token_is_refused_and_recorded_nowhere(
    alert_path: AlertPath, target: ForwardTarget
) -> None:
    target.up()
    alert_path.start_all()
    wait_for("a watchdog notification", 60, lambda: watchdogs(alert_path) >= 1)
    before = alert_path.page_log.read_bytes() if alert_path.page_log.exists() else b""
    url = f"{alert_path.pager_url}/alerts/critical"
    for headers in ({}, {"Authorization": "Bearer not-the-token-0123456789abcdefghijklmn"}):
        r = httpx.post(url, content=forged_page(), headers=headers, timeout=5)
        assert r.status_code == 401
    assert alert_path.metric("hito_pager_refused_total", {"reason": "unauthorized"}) == 2
    time.sleep(3)  # long enough for a forward, had one been queued
    assert alert_path.pages("ForgedPage") == []
    current = alert_path.page_log.read_bytes() if alert_path.page_log.exists() else b""
    assert current == before
    assert b"ForgedPage" not in current
    firing = {"urgency": "critical", "status": "firing", "alertname": "ForgedPage"}
    assert alert_path.metric("hito_pager_pages_total", firing) is None
    assert [m for m in target.received if "ForgedPage" in orjson.dumps(m).decode()] == []
    outbox = alert_path.settings.state_dir / "pager" / "outbox"
    assert list(outbox.iterdir()) == []
    # Alertmanager's notifications, with the token, are still taken.
    seen = watchdogs(alert_path)
    wait_for("more watchdog notifications", 30, lambda: watchdogs(alert_path) > seen)
    # And the same body with the token is a page: the refusal was about the token only.
    r = httpx.post(url, content=forged_page(), headers=alert_path.bearer(), timeout=5)
    assert (r.status_code, r.json()) == (200, {"recorded": 1})


@pytest.mark.timeout(OUTAGE_TEST_TIMEOUT_S)
def test_pages_wait_out_a_paging_service_outage_and_a_pager_crash(
    paging_outage: Background,
) -> None:
    """The scenario runs beside the rest of the session (paging_outage.py); this waits for it
    and raises what it raised."""
    paging_outage.result(OUTAGE_WAIT_S)
