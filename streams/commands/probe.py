"""``hito probe``: a container healthcheck (the image has no curl): exit 0 when every URL,
and with ``--worker`` the metrics endpoint of every live worker of this host, answers 2xx."""

from __future__ import annotations

from typing import Annotated

import httpx
import typer

from hito.settings import load_settings


def probe(
    urls: Annotated[list[str] | None, typer.Argument(help="URLs that must answer 2xx")] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker",
            help="Also every `hito worker` of this host and state directory (their metrics)",
        ),
    ] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per request")] = 3.0,
) -> None:
    """Check that services answer; the exit status is the verdict (for healthchecks)."""
    from hito.stack import discovery

    wanted = list(urls or [])
    if worker:
        running = discovery.local_workers(load_settings())
        if not running:
            typer.echo("no worker of this host is running", err=True)
            raise typer.Exit(1)
        wanted += [f"http://{address}/metrics" for address in running]
    if not wanted:
        raise typer.BadParameter("give URLs, --worker, or both")
    failed = []
    for url in wanted:
        try:
            ok = httpx.get(url, timeout=timeout).is_success
        except httpx.HTTPError as exc:
            ok, reason = False, type(exc).__name__
        else:
            reason = "not 2xx"
        if not ok:
            failed.append(f"{url} ({reason})")
    if failed:
        typer.echo(f"not answering: {', '.join(failed)}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {len(wanted)} answering")
