"""A page's text is whatever the alert's sender wrote: what the pager prints or logs holds no
terminal control, fake line or Rich markup from it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from hito.cli import app
from hito.ops.pager.pages import PageLog
from hito.ops.pager.safe_text import printable
from hito.ops.pager.server import Pager
from tests.unit.ops.pager.webhook import AUTH, TOKEN, notification

HOSTILE = {
    "alertname": "Evil\x1b[2J\x1b]0;pwned\x07",
    "site": "\u202eatullacahc",
    "summary": "[link=https://evil.example]click[/link][bold red]\r\n2026-11-28 INFO page ok",
}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, ñandú, 東京", "plain text, ñandú, 東京"),
        ("a\x1b[31mred", "a\\x1b[31mred"),
        ("line\r\nfake", "line\\x0d\\x0afake"),
        ("\u202eevil\u200b", "\\u202eevil\\u200b"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("sep\u2028x", "sep\\u2028x"),
        (None, ""),
    ],
)
def test_printable_escapes_controls_and_keeps_the_rest(text: str | None, shown: str) -> None:
    assert printable(text) == shown


def test_printable_cuts_long_text() -> None:
    assert printable("x" * 500, limit=10) == "xxxxxxxxxx…"


def _record_hostile_page(state_dir: Path) -> None:
    pager = Pager(PageLog(state_dir / "pager" / "pages.jsonl"), TOKEN)
    body = notification(site=HOSTILE["site"])
    body["alerts"][0]["labels"]["alertname"] = HOSTILE["alertname"]
    body["alerts"][0]["annotations"]["summary"] = HOSTILE["summary"]

    async def post() -> int:
        async with TestClient(TestServer(pager.app())) as client:
            r = await client.post("/alerts/critical", data=orjson.dumps(body), headers=AUTH)
            return r.status

    assert asyncio.run(post()) == 200


def test_show_prints_hostile_fields_escaped_and_unstyled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITO_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "400")  # one table row per page: nothing wraps
    _record_hostile_page(tmp_path)
    result = CliRunner().invoke(app, ["pager", "show"])
    assert result.exit_code == 0, result.output
    out = result.output
    for ch in ("\x1b", "\x07", "\r", "\u202e"):
        assert ch not in out
    assert "Evil\\x1b[2J\\x1b]0;pwned\\x07" in out
    assert "\\u202eatullacahc" in out
    # Markup is shown as typed, not applied (Rich would drop "[link=…]" and style the rest).
    assert "[link=https://evil.example]click[/link][bold red]\\x0d\\x0a2026-11-28 INFO" in out
    assert "watchdog: no notification recorded yet" in out


def test_log_lines_about_a_hostile_page_stay_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="hito.ops.pager.server"):
        _record_hostile_page(tmp_path)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("page ")]
    assert line == ("page critical firing Evil\\x1b[2J\\x1b]0;pwned\\x07 site=\\u202eatullacahc")
