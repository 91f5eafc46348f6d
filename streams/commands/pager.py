"""``hito pager serve|show``: the Alertmanager webhook receiver and its durable page log.

The pager's own options are read from the command line or the environment (``HITO_PAGER_*``,
shown by ``--help``), not from the settings object: only the pager and `hito up`, which
passes its environment on, need them.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hito.commands.common import JSON_HELP, print_json
from hito.ops.pager.auth import TOKEN_FILE_ENV, TokenError, ensure_token, read_token, token_path
from hito.ops.pager.diskspace import DEFAULT_MIN_FREE_MB, DiskNearlyFull, require_free_space
from hito.ops.pager.outbox import Backoff, forward_url_problem
from hito.ops.pager.pages import PageLog
from hito.ops.pager.paths import page_log_path
from hito.ops.pager.safe_text import printable
from hito.ops.pager.server import DEFAULT_WATCHDOG_TIMEOUT_S, MAX_BODY_BYTES, Pager, serve
from hito.ops.pager.watchdog import LastSeenFile
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
        typer.Option(
            envvar="HITO_PAGER_FORWARD_URL",
            help="The real paging service (http:// or https://): every notification is queued "
            "on disk and POSTed there, unchanged, until it answers 2xx. Required outside the "
            "development profile unless --no-forward",
        ),
    ] = None,
    no_forward: Annotated[
        bool,
        typer.Option(
            "--no-forward",
            envvar="HITO_PAGER_NO_FORWARD",
            help="On purpose, no paging service: pages go only to the page log (and nobody is "
            "paged). Outside the development profile the pager refuses to start without a "
            "forward URL unless this is given",
        ),
    ] = False,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="Bearer token every POST must carry, created with a random token when "
            f"missing (default: ${TOKEN_FILE_ENV}, else <state_dir>/pager/token)",
        ),
    ] = None,
    watchdog_timeout: Annotated[
        float,
        typer.Option(
            envvar="HITO_PAGER_WATCHDOG_TIMEOUT",
            min=1.0,
            help="Seconds without a watchdog notification before the pager pages "
            "AlertPathSilent itself",
        ),
    ] = DEFAULT_WATCHDOG_TIMEOUT_S,
    watchdog_grace: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Seconds after start before a silence can page (default: 120, at most the "
            "timeout): time for Alertmanager to reach a restarted pager",
        ),
    ] = None,
    forward_retry_max: Annotated[
        float,
        typer.Option(min=0.01, help="Longest wait (s) between forward attempts (back-off cap)"),
    ] = 60.0,
    max_body_kb: Annotated[
        int, typer.Option(min=1, help="Largest webhook body accepted (KiB); larger: 413")
    ] = MAX_BODY_BYTES // 1024,
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
    forward_url = forward_url or None  # compose passes an unset variable as ""
    if refusal := _forward_refusal(forward_url, no_forward, settings.profile):
        log.error("pager not started: %s", refusal)
        raise typer.Exit(code=1)
    if forward_url and no_forward:
        log.warning("--no-forward (HITO_PAGER_NO_FORWARD) ignored: a forward URL is set")
    path = page_log_path(settings)
    # Checked before PageLog creates its directory: on a full disk even that can fail, with a
    # less helpful message. A page refused later (disk filled while running) is answered 503.
    try:
        space = require_free_space(path.parent, min_free_mb)
    except DiskNearlyFull as exc:
        log.error("pager not started: %s", exc)
        raise typer.Exit(code=1) from None
    log.info("page log %s (%.0f MB free)", path, space.free_mb)
    tokens = token_file or token_path(settings.state_dir)
    if ensure_token(tokens):
        log.info("created a new random bearer token in %s (mode 0600)", tokens)
    try:
        token = read_token(tokens)
    except TokenError as exc:
        log.error("pager not started: %s", exc)
        raise typer.Exit(code=1) from None
    pager = Pager(
        PageLog(path),
        token,
        forward_url=forward_url,
        watchdog_timeout_s=watchdog_timeout,
        watchdog_grace_s=watchdog_grace,
        backoff=Backoff(initial_s=min(1.0, forward_retry_max), max_s=forward_retry_max),
        max_body_bytes=max_body_kb * 1024,
    )
    serve("127.0.0.1", port or settings.pager_port, pager)


def _forward_refusal(forward_url: str | None, no_forward: bool, profile: str) -> str | None:
    """Why the pager must not start with this forward configuration, or None.

    A pager without a forward URL pages nobody, and says so only in a warning alert routed back
    to itself: outside the development profile (the local stack of `hito up` and the tests) it
    must be asked for explicitly. Messages name the option, never the URL (keys live in it).
    """
    if forward_url is not None:
        if problem := forward_url_problem(forward_url):
            return f"the forward URL (--forward-url, HITO_PAGER_FORWARD_URL) is unusable: {problem}"
        return None
    if no_forward or profile == "development":
        return None
    return (
        "no forward URL, so no page would reach anyone. Set HITO_PAGER_FORWARD_URL (or "
        "--forward-url) to the paging service's webhook, or HITO_PAGER_NO_FORWARD=1 (or "
        "--no-forward) to keep pages only in the page log on purpose"
    )


@pager_app.command("show")
def show(
    last: Annotated[int, typer.Option(help="How many of the newest pages to show")] = 20,
    alertname: Annotated[str | None, typer.Option(help="Only this alert")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """The pages received, newest last: when, urgency, state, alert, site, summary, runbook."""
    settings = load_settings()
    pages = [p for p in PageLog(page_log_path(settings)).read() if alertname in (None, p.alertname)]
    seen = LastSeenFile(page_log_path(settings).parent / "watchdog-last-seen").read()
    if as_json:
        print_json(
            {
                "log": str(page_log_path(settings)),
                "total": len(pages),
                "pages": [p.model_dump(mode="json") for p in pages[-last:]],
                "watchdog_last_seen": (
                    None if seen is None else datetime.fromtimestamp(seen, UTC).isoformat()
                ),
            }
        )
        return
    table = Table(title=f"pages in {page_log_path(settings)} ({len(pages)} in all)")
    for column in ("received (UTC)", "urgency", "state", "alert", "site", "summary", "runbook"):
        table.add_column(column)
    for p in pages[-last:]:
        # Text, not str: a page's fields come from whoever posted the alert, and a str cell
        # would be read as Rich markup ("[link=…]"); printable() escapes terminal controls.
        table.add_row(
            p.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            p.urgency,
            p.status,
            *(Text(printable(value)) for value in (p.alertname, p.site, p.summary, p.runbook_url)),
        )
    console = Console()
    console.print(table)
    if seen is None:
        console.print("watchdog: no notification recorded yet")
    else:
        when = datetime.fromtimestamp(seen, UTC).strftime("%Y-%m-%d %H:%M:%S")
        console.print(f"watchdog: last notification {when} UTC ({time.time() - seen:.0f} s ago)")
