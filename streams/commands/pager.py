"""``hito pager serve|show``: the Alertmanager webhook receiver and its durable page log."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hito.ops.pager.diskspace import DEFAULT_MIN_FREE_MB, DiskNearlyFull, require_free_space
from hito.ops.pager.paths import page_log_path
from hito.ops.pager.server import PageLog, serve
from hito.settings import load_settings

log = logging.getLogger(__name__)

pager_app = typer.Typer(
    help="The pager webhook: receives Alertmanager's pages, records and forwards them.",
    no_args_is_help=True,
)


@pager_app.command("serve")
def serve_command(
    port: Annotated[int, typer.Option(help="Listen port (0: the settings' pager_port)")] = 0,
    forward_url: Annotated[
        str | None,
        typer.Option(help="Also POST every notification, unchanged, to this URL"),
    ] = None,
    min_free_mb: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Refuse to start with less free space than this (MB) under the state directory",
        ),
    ] = DEFAULT_MIN_FREE_MB,
) -> None:
    """Receive Alertmanager webhooks on 127.0.0.1 until interrupted (`hito up` starts it)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings()
    path = page_log_path(settings)
    # Checked before PageLog creates its directory: on a full disk even that can fail, with a
    # less helpful message. A page refused later (disk filled while running) is answered 503.
    try:
        space = require_free_space(path.parent, min_free_mb)
    except DiskNearlyFull as exc:
        log.error("pager not started: %s", exc)
        raise typer.Exit(code=1) from None
    log.info("page log %s (%.0f MB free)", path, space.free_mb)
    serve("127.0.0.1", port or settings.pager_port, PageLog(path), forward_url)


@pager_app.command("show")
def show(
    last: Annotated[int, typer.Option(help="How many of the newest pages to show")] = 20,
    alertname: Annotated[str | None, typer.Option(help="Only this alert")] = None,
) -> None:
    """The pages received, newest last: when, urgency, state, alert, site, summary, runbook."""
    settings = load_settings()
    pages = [p for p in PageLog(page_log_path(settings)).read() if alertname in (None, p.alertname)]
    table = Table(title=f"pages in {page_log_path(settings)} ({len(pages)} in all)")
    for column in ("received (UTC)", "urgency", "state", "alert", "site", "summary", "runbook"):
        table.add_column(column)
    for p in pages[-last:]:
        table.add_row(
            p.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            p.urgency,
            p.status,
            p.alertname,
            p.site or "",
            p.summary,
            p.runbook_url,
        )
    Console().print(table)
