"""The forward queue: notifications wait on disk until the forward target accepts them, in
order, through target outages and pager restarts; failures are counted, never given up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hito.ops.pager.outbox import Backoff, Outbox, redacted
from hito.ops.pager.server import PageLog, Pager
from tests.unit.ops.pager.forward_target import Target, free_port, until
from tests.unit.ops.pager.webhook import AUTH, TOKEN, notification

FAST = Backoff(initial_s=0.02, max_s=0.1)


def metric(pager: Pager, name: str) -> float | None:
    return pager.registry.get_sample_value(name)


def test_notifications_wait_through_an_outage_and_a_restart_and_arrive_in_order(
    tmp_path: Path,
) -> None:
    log = PageLog(tmp_path / "pages.jsonl")
    target = Target(free_port())
    bodies = [
        orjson.dumps(notification(status, site="chacalluta")) for status in ("firing", "resolved")
    ]

    async def scenario() -> None:
        pager = Pager(log, TOKEN, forward_url=target.url, backoff=FAST)
        async with TestClient(TestServer(pager.app())) as client:
            for body in bodies:  # the target is down: nothing listens on its port
                assert (
                    await client.post("/alerts/critical", data=body, headers=AUTH)
                ).status == 200
            # Well past what the old pager tried (5 attempts): it keeps trying.
            await until(lambda: (metric(pager, "hito_pager_forward_failures_total") or 0) >= 10)
            assert metric(pager, "hito_pager_forward_queue") == 2
        # The pager restarts while the target is still down: the queue is on disk.
        restarted = Pager(log, TOKEN, forward_url=target.url, backoff=FAST)
        assert metric(restarted, "hito_pager_forward_queue") == 2
        async with TestClient(TestServer(restarted.app())):
            await until(lambda: (metric(restarted, "hito_pager_forward_failures_total") or 0) >= 3)
            target.refusing = True  # up, but answering 503: still not delivered
            await target.up()
            failed = metric(restarted, "hito_pager_forward_failures_total") or 0
            await until(
                lambda: (metric(restarted, "hito_pager_forward_failures_total") or 0) > failed + 2
            )
            assert target.received == []
            target.refusing = False
            await until(lambda: len(target.received) == 2)
            await until(lambda: metric(restarted, "hito_pager_forward_queue") == 0)
        await target.down()

    asyncio.run(scenario())
    assert target.received == bodies  # unchanged, each once, the firing page first
    assert list((tmp_path / "outbox").iterdir()) == []


def test_a_later_notification_does_not_overtake_one_still_failing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    first, second = outbox.put(b"1"), outbox.put(b"2")
    assert outbox.pending() == [first, second]
    outbox.remove(first)
    assert outbox.pending() == [second]
    # Numbers go on after a restart: a new notification sorts after the old ones.
    third = Outbox(tmp_path / "outbox").put(b"3")
    assert Outbox(tmp_path / "outbox").pending() == [second, third]
    assert [p.read_bytes() for p in outbox.pending()] == [b"2", b"3"]


def test_a_staged_body_left_by_a_crash_is_dropped_not_sent(tmp_path: Path) -> None:
    """Staged = not yet acknowledged to Alertmanager, which will retry it: sending the staged
    copy as well would page twice."""
    outbox = Outbox(tmp_path / "outbox")
    staged = outbox.stage(b"unacknowledged")
    assert outbox.pending() == []
    assert Outbox(tmp_path / "outbox").pending() == []
    assert not staged.exists()


def test_queued_files_are_private(tmp_path: Path) -> None:
    queued = Outbox(tmp_path / "outbox").put(b"{}")
    assert queued.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("failures", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (500, 60.0)]
)
def test_back_off_doubles_up_to_its_cap_and_never_stops(failures: int, delay: float) -> None:
    assert Backoff(initial_s=1.0, max_s=60.0).delay(failures) == delay


def test_logged_urls_lose_their_path_and_query() -> None:
    url = "https://user:secret@events.pager.example:8443/integration/KEY123?token=abc"
    assert redacted(url) == "https://events.pager.example:8443/…"


def test_without_a_forward_url_the_pager_says_so_and_queues_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = PageLog(tmp_path / "pages.jsonl")
    pager = Pager(log, TOKEN)
    assert metric(pager, "hito_pager_forward_configured") == 0

    async def scenario() -> None:
        async with TestClient(TestServer(pager.app())) as client:
            body = orjson.dumps(notification(site="x"))
            assert (await client.post("/alerts/critical", data=body, headers=AUTH)).status == 200

    with caplog.at_level("WARNING", logger="hito.ops.pager.server"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records] == [
        "no forward URL (--forward-url or HITO_PAGER_FORWARD_URL): pages go nowhere but the "
        f"page log {log.path}"
    ]
    assert not (tmp_path / "outbox").exists()
    assert len(list(log.read())) == 1
    assert (
        metric(
            Pager(log, TOKEN, forward_url="http://127.0.0.1:9/"), "hito_pager_forward_configured"
        )
        == 1
    )
