"""The dead man's switch: no watchdog notification for the timeout pages AlertPathSilent once
(recorded and forwarded), and the next watchdog notification resolves it, across restarts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hito.ops.pager.outbox import Backoff
from hito.ops.pager.pages import Page
from hito.ops.pager.server import PageLog, Pager
from hito.ops.pager.watchdog import DeadMansSwitch, restored_silence
from tests.unit.ops.pager.forward_target import Target, free_port, until
from tests.unit.ops.pager.webhook import AUTH, NOW, TOKEN, notification, watchdog

TIMEOUT_S = 0.6


def silence_pages(log: PageLog) -> list[Page]:
    return [p for p in log.read() if p.alertname == "AlertPathSilent"]


def test_deadline_is_a_timeout_after_the_last_notification_but_not_within_the_grace() -> None:
    switch = DeadMansSwitch(timeout_s=300, grace_s=120, started_at=1000.0)
    assert switch.deadline() == 1120.0  # nothing seen yet: the grace after start
    switch.seen(1010.0)
    assert switch.deadline() == 1310.0
    assert not switch.overdue(1309.9)
    assert switch.overdue(1310.0)
    switch.silent_since = "2026-11-28T04:00:00.000Z"
    assert not switch.overdue(2000.0)  # already paged: not again
    # Restarted 20 s after the last notification: the old deadline still holds...
    assert DeadMansSwitch(300, 120, started_at=1030.0, last_seen=1010.0).deadline() == 1310.0
    # ...but after a long stop, Alertmanager gets the grace period to reach it again.
    assert DeadMansSwitch(300, 120, started_at=5000.0, last_seen=1010.0).deadline() == 5120.0
    with pytest.raises(ValueError):
        DeadMansSwitch(0, 0, started_at=0.0)


def _page(alertname: str, status: str, receiver: str = "hito-pager-watchdog") -> Page:
    return Page(
        received_at=NOW,
        urgency="critical",
        receiver=receiver,
        status=status,
        alertname=alertname,
        severity="critical",
        site=None,
        summary="",
        runbook_url="",
        labels={},
        starts_at=f"{status}-start",
        ends_at="",
        fingerprint="",
    )


def test_an_open_silence_page_is_read_back_from_the_log() -> None:
    firing, resolved = _page("AlertPathSilent", "firing"), _page("AlertPathSilent", "resolved")
    other = _page("CheckpointSurge", "firing")
    assert restored_silence([]) is None
    assert restored_silence([firing, other]) == "firing-start"
    assert restored_silence([firing, resolved]) is None
    assert restored_silence([firing, resolved, firing]) == "firing-start"
    # Only the pager's own page counts, not one an alert sender named the same.
    assert restored_silence([_page("AlertPathSilent", "firing", receiver="pager-critical")]) is None


def test_silence_pages_once_is_forwarded_and_resolves_when_the_watchdog_returns(
    tmp_path: Path,
) -> None:
    log = PageLog(tmp_path / "pages.jsonl")
    target = Target(free_port())

    async def scenario() -> float:
        await target.up()
        pager = Pager(
            log,
            TOKEN,
            forward_url=target.url,
            watchdog_timeout_s=TIMEOUT_S,
            watchdog_grace_s=0.1,
            backoff=Backoff(0.02, 0.1),
        )
        async with TestClient(TestServer(pager.app())) as client:
            r = await client.post("/alerts/watchdog", data=orjson.dumps(watchdog()), headers=AUTH)
            assert (r.status, await r.json()) == (200, {"watchdog": "ok"})
            seen = time.monotonic()
            assert list(log.read()) == []  # a heartbeat is never a page
            await until(lambda: bool(silence_pages(log)))
            silent_after = time.monotonic() - seen
            assert pager.registry.get_sample_value("hito_pager_alert_path_silent") == 1
            await asyncio.sleep(3 * TIMEOUT_S)
            assert len(silence_pages(log)) == 1  # one page per silence, not one per check
            r = await client.post("/alerts/watchdog", data=orjson.dumps(watchdog()), headers=AUTH)
            assert r.status == 200
            assert [p.status for p in silence_pages(log)] == ["firing", "resolved"]
            assert pager.registry.get_sample_value("hito_pager_alert_path_silent") == 0
            await until(lambda: len(target.received) == 2)
            assert pager.registry.get_sample_value("hito_pager_watchdog_notifications_total") == 2
        await target.down()
        return silent_after

    silent_after = asyncio.run(scenario())
    # Never before the timeout; soon after it (the check runs every TIMEOUT_S / 10: the slack
    # is for a loaded 2-core CI machine, where 0.5 s was exceeded once).
    assert TIMEOUT_S <= silent_after < TIMEOUT_S + 2.0
    firing, resolved = silence_pages(log)
    assert resolved.ends_at != "0001-01-01T00:00:00Z"
    assert (firing.urgency, firing.severity, firing.runbook_url) == (
        "critical",
        "critical",
        "docs/runbooks/AlertPathSilent.md",
    )
    assert firing.summary.startswith("No watchdog notification from Alertmanager for over 1 s")
    # The paging service gets them as Alertmanager would send them: same alert, same start.
    sent = [orjson.loads(b) for b in target.received]
    assert [(m["version"], m["status"], m["alerts"][0]["status"]) for m in sent] == [
        ("4", "firing", "firing"),
        ("4", "resolved", "resolved"),
    ]
    assert sent[0]["alerts"][0]["fingerprint"] == sent[1]["alerts"][0]["fingerprint"]
    assert sent[0]["alerts"][0]["startsAt"] == sent[1]["alerts"][0]["startsAt"] == firing.starts_at
    assert sent[0]["alerts"][0]["labels"]["alertname"] == "AlertPathSilent"


def test_a_restarted_pager_neither_pages_twice_nor_forgets_to_resolve(tmp_path: Path) -> None:
    log = PageLog(tmp_path / "pages.jsonl")

    async def run(seconds: float, heartbeat_at_end: bool) -> Pager:
        pager = Pager(log, TOKEN, watchdog_timeout_s=TIMEOUT_S, watchdog_grace_s=0.1)
        async with TestClient(TestServer(pager.app())) as client:
            await asyncio.sleep(seconds)
            if heartbeat_at_end:
                body = orjson.dumps(watchdog())
                assert (
                    await client.post("/alerts/watchdog", data=body, headers=AUTH)
                ).status == 200
        return pager

    asyncio.run(run(1.0, heartbeat_at_end=False))  # no watchdog at all: pages after the grace
    assert [p.status for p in silence_pages(log)] == ["firing"]
    restarted = asyncio.run(run(1.0, heartbeat_at_end=False))
    assert restarted.registry.get_sample_value("hito_pager_alert_path_silent") == 1
    assert [p.status for p in silence_pages(log)] == ["firing"]  # still the one page
    asyncio.run(run(0.05, heartbeat_at_end=True))
    assert [p.status for p in silence_pages(log)] == ["firing", "resolved"]
    # The last watchdog time survives a restart too.
    assert abs(Pager(log, TOKEN).switch.last_seen - time.time()) < 2  # type: ignore[operator]


def test_only_a_firing_watchdog_counts_as_one(tmp_path: Path) -> None:
    log = PageLog(tmp_path / "pages.jsonl")
    pager = Pager(log, TOKEN)

    async def post(body: bytes) -> int:
        async with TestClient(TestServer(pager.app())) as client:
            return (await client.post("/alerts/watchdog", data=body, headers=AUTH)).status

    assert asyncio.run(post(orjson.dumps(notification()))) == 400
    assert asyncio.run(post(orjson.dumps(watchdog() | {"status": "resolved"}))) == 200
    resolved_only = watchdog()
    resolved_only["alerts"][0]["status"] = "resolved"
    assert asyncio.run(post(orjson.dumps(resolved_only))) == 400
    assert pager.registry.get_sample_value("hito_pager_watchdog_notifications_total") == 1
    assert list(log.read()) == []
