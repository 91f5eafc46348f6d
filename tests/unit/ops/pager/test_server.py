"""hito pager: every alert of a webhook call is on disk before the call is answered."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hito.ops.pager.server import PageLog, Pager, WebhookMessage, pages_of, summarise
from tests.unit.ops.pager.webhook import AUTH, NOW, TOKEN, notification


async def _call(pager: Pager, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with TestClient(TestServer(pager.app())) as client:
        if method == "POST":
            r = await client.post(
                path, data=body if isinstance(body, bytes) else orjson.dumps(body), headers=AUTH
            )
        else:
            r = await client.get(path)
        text = await r.read()
        return r.status, orjson.loads(text) if r.content_type == "application/json" else text


def test_a_page_is_recorded_with_its_site_urgency_and_runbook(tmp_path: Path) -> None:
    log = PageLog(tmp_path / "pages.jsonl")
    pager = Pager(log, TOKEN)
    status, reply = asyncio.run(
        _call(pager, "POST", "/alerts/critical", notification(site="chacalluta", direction="entry"))
    )
    assert (status, reply) == (200, {"recorded": 1})
    [page] = list(log.read())
    assert (page.urgency, page.status, page.alertname, page.site) == (
        "critical",
        "firing",
        "CheckpointSurge",
        "chacalluta",
    )
    assert page.runbook_url == "docs/runbooks/CheckpointSurge.md"
    # Durable: a new reader of the same file (a restarted pager) sees it.
    assert [p.fingerprint for p in PageLog(tmp_path / "pages.jsonl").read()] == ["a1b2c3"]


def test_unreadable_webhooks_are_refused_and_nothing_is_recorded(tmp_path: Path) -> None:
    log = PageLog(tmp_path / "pages.jsonl")
    pager = Pager(log, TOKEN)
    for body in (
        b"not json",
        orjson.dumps({"version": "4"}),
        orjson.dumps(notification() | {"alerts": []}),
    ):
        status, _ = asyncio.run(_call(pager, "POST", "/alerts/critical", body))
        assert status == 400
    status, _ = asyncio.run(_call(pager, "POST", "/alerts/urgent", notification()))
    assert status == 404
    assert list(log.read()) == []
    refused = pager.registry.get_sample_value("hito_pager_refused_total", {"reason": "unreadable"})
    assert refused == 3.0


def test_pages_endpoint_and_summary(tmp_path: Path) -> None:
    log = PageLog(tmp_path / "pages.jsonl")
    pager = Pager(log, TOKEN)
    asyncio.run(_call(pager, "POST", "/alerts/critical", notification(site="chacalluta")))
    asyncio.run(
        _call(pager, "POST", "/alerts/critical", notification("resolved", site="chacalluta"))
    )
    status, pages = asyncio.run(_call(pager, "GET", "/pages"))
    assert status == 200
    assert [(p["status"], p["site"]) for p in pages] == [
        ("firing", "chacalluta"),
        ("resolved", "chacalluta"),
    ]
    assert summarise(list(log.read())) == {"pages": 2, "firing": {"CheckpointSurge@chacalluta": 1}}


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    log = PageLog(tmp_path / "pages.jsonl")
    asyncio.run(_call(Pager(log, TOKEN), "POST", "/alerts/low", notification(site="x")))
    with log.path.open("ab") as f:
        f.write(b'{"received_at": "2026-')  # power cut mid-write
    assert len(list(log.read())) == 1
    # The next page does not join the torn line: it is read back.
    asyncio.run(_call(Pager(log, TOKEN), "POST", "/alerts/low", notification(site="y")))
    assert [p.site for p in log.read()] == ["x", "y"]


def test_notifications_are_forwarded_unchanged(tmp_path: Path) -> None:
    received: list[bytes] = []

    async def scenario() -> None:
        async def sink(request: web.Request) -> web.Response:
            received.append(await request.read())
            return web.Response(text="ok")

        downstream = web.Application()
        downstream.router.add_post("/hook", sink)
        async with TestServer(downstream) as server:
            pager = Pager(
                PageLog(tmp_path / "p.jsonl"), TOKEN, forward_url=str(server.make_url("/hook"))
            )
            body = orjson.dumps(notification(site="chacalluta"))
            async with TestClient(TestServer(pager.app())) as client:
                r = await client.post("/alerts/critical", data=body, headers=AUTH)
                assert r.status == 200
                for _ in range(50):
                    if received:
                        break
                    await asyncio.sleep(0.05)
            assert received == [body]

    asyncio.run(scenario())


@contextmanager
def file_size_limit(max_bytes: int) -> Iterator[None]:
    """A real write failure without a mount: past RLIMIT_FSIZE the kernel makes a write short,
    then fails it with EFBIG (SIGXFSZ, which would kill the process, is ignored meanwhile)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def many_alerts(n: int) -> dict[str, Any]:
    """One notification carrying ``n`` DeviceSilent alerts (a site's sensors all gone quiet)."""
    body = notification(site="chacalluta")
    template = body["alerts"][0]
    body["alerts"] = [
        template
        | {
            "labels": {
                "alertname": "DeviceSilent",
                "severity": "warning",
                "site": "chacalluta",
                "device_id": f"sensor-{i:03d}",
            },
            "fingerprint": f"f{i:03d}",
        }
        for i in range(n)
    ]
    return body


def test_a_failed_append_leaves_the_log_as_it_was(tmp_path: Path) -> None:
    log = PageLog(tmp_path / "pages.jsonl")
    first = pages_of(WebhookMessage.model_validate(notification(site="x")), "low", NOW)
    log.append(first)
    before = log.path.read_bytes()
    batch = pages_of(WebhookMessage.model_validate(many_alerts(20)), "low", NOW)
    with file_size_limit(len(before) + 1000), pytest.raises(OSError) as raised:
        log.append(batch)  # about 10 kB: the first kB is written, then EFBIG
    assert raised.value.errno == errno.EFBIG
    assert log.path.read_bytes() == before  # not a byte of the failed batch is left
    log.append(batch)  # the retry, with room again
    lines = log.path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a whole line
    assert [orjson.loads(line)["fingerprint"] for line in lines[:-1]] == ["a1b2c3"] + [
        f"f{i:03d}" for i in range(20)
    ]


def test_an_unwritable_page_is_answered_503_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = PageLog(tmp_path / "pages.jsonl")
    pager = Pager(log, TOKEN)
    assert asyncio.run(_call(pager, "POST", "/alerts/low", notification(site="x")))[0] == 200
    before = log.path.read_bytes()
    with (
        caplog.at_level(logging.ERROR, logger="hito.ops.pager.server"),
        file_size_limit(len(before)),
    ):
        status, reply = asyncio.run(_call(pager, "POST", "/alerts/low", many_alerts(3)))
    assert status == 503  # a 5xx: Alertmanager retries it
    assert reply["recorded"] == 0
    assert str(log.path) in reply["error"]
    assert log.path.read_bytes() == before
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage() == (
        f"could not record 3 page(s) in {log.path}: [Errno 27] File too large; "
        "answering 503 so Alertmanager retries"
    )
    errors = pager.registry.get_sample_value
    assert errors("hito_pager_write_errors_total", {"reason": "io"}) == 1.0
    assert errors("hito_pager_write_errors_total", {"reason": "no_space"}) == 0.0
    # Pages are counted once they are on disk, not when they are refused.
    labels = {"urgency": "low", "status": "firing", "alertname": "DeviceSilent"}
    assert errors("hito_pager_pages_total", labels) is None
    status, reply = asyncio.run(_call(pager, "POST", "/alerts/low", many_alerts(3)))
    assert (status, reply) == (200, {"recorded": 3})
    assert errors("hito_pager_pages_total", labels) == 3.0
    assert [p.fingerprint for p in log.read()] == ["a1b2c3", "f000", "f001", "f002"]


async def _post_as(pager: Pager, headers: dict[str, str], body: bytes) -> int:
    async with TestClient(TestServer(pager.app())) as client:
        r = await client.post("/alerts/critical", data=body, headers=headers)
        return r.status


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdefghijklmnopqrs"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "wrong", "not-bearer", "prefix", "empty"],
)
def test_a_post_without_the_token_is_refused_and_recorded_nowhere(
    tmp_path: Path, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    received: list[bytes] = []

    async def scenario() -> int:
        async def sink(request: web.Request) -> web.Response:
            received.append(await request.read())
            return web.Response(text="ok")

        target = web.Application()
        target.router.add_post("/hook", sink)
        async with TestServer(target) as server:
            pager = Pager(log, TOKEN, forward_url=str(server.make_url("/hook")))
            status = await _post_as(pager, headers, orjson.dumps(notification(site="x")))
            await asyncio.sleep(0.2)  # time enough to forward, had it been queued
            assert (
                pager.registry.get_sample_value(
                    "hito_pager_refused_total", {"reason": "unauthorized"}
                )
                == 1.0
            )
            firing = {"urgency": "critical", "status": "firing", "alertname": "CheckpointSurge"}
            assert pager.registry.get_sample_value("hito_pager_pages_total", firing) is None
            return status

    log = PageLog(tmp_path / "pager" / "pages.jsonl")
    with caplog.at_level(logging.INFO, logger="hito.ops.pager"):
        assert asyncio.run(scenario()) == 401
    assert not log.path.exists()
    assert list((tmp_path / "pager" / "outbox").iterdir()) == []
    assert received == []
    assert not [r for r in caplog.records if r.getMessage().startswith("page ")]
    # The same body with the token is a page: the refusal was the token's doing.
    pager = Pager(log, TOKEN)
    assert asyncio.run(_post_as(pager, AUTH, orjson.dumps(notification(site="x")))) == 200
    assert [p.site for p in log.read()] == ["x"]


def test_gets_need_no_token(tmp_path: Path) -> None:
    """Prometheus scrapes /metrics and `hito status` checks /health without the secret."""
    pager = Pager(PageLog(tmp_path / "pages.jsonl"), TOKEN)
    for path in ("/health", "/metrics", "/pages"):
        status, _ = asyncio.run(_call(pager, "GET", path))
        assert status == 200, path


def test_an_oversized_body_is_refused_413_and_recorded_nowhere(tmp_path: Path) -> None:
    log = PageLog(tmp_path / "pages.jsonl")
    pager = Pager(log, TOKEN, max_body_bytes=4096)
    small, big = orjson.dumps(many_alerts(3)), orjson.dumps(many_alerts(20))
    assert len(small) < 4096 < len(big)
    assert asyncio.run(_post_as(pager, AUTH, big)) == 413
    assert not log.path.exists()
    refused = pager.registry.get_sample_value("hito_pager_refused_total", {"reason": "too_large"})
    assert refused == 1.0
    assert asyncio.run(_post_as(pager, AUTH, small)) == 200
    assert len(list(log.read())) == 3


def test_the_default_body_limit_is_one_mebibyte(tmp_path: Path) -> None:
    pager = Pager(PageLog(tmp_path / "pages.jsonl"), TOKEN)
    body = orjson.dumps(notification() | {"padding": "x" * (1024 * 1024)})
    assert asyncio.run(_post_as(pager, AUTH, body)) == 413


def test_a_notification_the_forward_queue_cannot_take_is_503_and_not_half_recorded(
    tmp_path: Path,
) -> None:
    """The outbox is written before the page log: if it fails (disk full), the page is not
    recorded either, and Alertmanager's retry is the only copy recorded and forwarded."""
    log = PageLog(tmp_path / "pages.jsonl")
    pager = Pager(log, TOKEN, forward_url="http://127.0.0.1:9/hook")
    body = orjson.dumps(many_alerts(20))  # about 10 kB: the queued copy cannot be written
    with file_size_limit(len(body) // 2):
        status = asyncio.run(_post_as(pager, AUTH, body))
    assert status == 503
    assert not log.path.exists()
    assert list((tmp_path / "outbox").iterdir()) == []
    assert pager.registry.get_sample_value("hito_pager_write_errors_total", {"reason": "io"}) == 1
