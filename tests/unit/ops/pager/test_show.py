"""`hito pager show --json`: the page log and the watchdog, for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hito.cli import app
from hito.ops.pager.server import PageLog, WebhookMessage, pages_of
from tests.unit.ops.pager.webhook import NOW, notification


def test_pager_show_json_lists_the_newest_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITO_STATE_DIR", str(tmp_path))
    log = PageLog(tmp_path / "pager" / "pages.jsonl")
    for site, status in (
        ("chacalluta", "firing"),
        ("santa-rosa", "firing"),
        ("chacalluta", "resolved"),
    ):
        message = WebhookMessage.model_validate(notification(status, site=site))
        log.append(pages_of(message, "critical", NOW))
    result = CliRunner().invoke(app, ["pager", "show", "--json", "--last", "2"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["log"] == str(tmp_path / "pager" / "pages.jsonl")
    assert doc["total"] == 3
    assert [(p["site"], p["status"]) for p in doc["pages"]] == [
        ("santa-rosa", "firing"),
        ("chacalluta", "resolved"),
    ]
    assert doc["pages"][0]["runbook_url"] == "docs/runbooks/CheckpointSurge.md"
    assert doc["pages"][0]["received_at"] == NOW.isoformat().replace("+00:00", "Z")
    assert doc["watchdog_last_seen"] is None
