"""``hito up|down|status``: the local real-service stack."""

from __future__ import annotations

import logging

import typer
from rich.console import Console
from rich.table import Table

from streams.settings import HitoSettings, load_settings
from streams.stack import manager
from streams.stack.progress import make_runner


def _settings() -> HitoSettings:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return load_settings()


def up(
    timeout: float = typer.Option(180.0, help="Seconds to wait for each service to be healthy"),
) -> None:
    """Install what is missing and start Kafka, InfluxDB, Prometheus and Alertmanager locally."""
    settings = _settings()
    console = Console(stderr=True)
    try:
        started = manager.up(settings, make_runner(console), timeout_s=timeout)
    except (manager.StackError, RuntimeError) as exc:
        console.print(f"[red]hito up failed:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"started: {', '.join(started) or 'nothing (all were running)'}")
    _print_status(settings, Console())


def down(
    wipe: bool = typer.Option(False, "--wipe", help="Also delete the services' data"),
) -> None:
    """Stop the local services (data is kept unless --wipe)."""
    settings = _settings()
    stopped = manager.down(settings, wipe=wipe)
    Console().print(
        f"stopped: {', '.join(stopped) or 'nothing was running'}"
        + (f"; wiped data under {settings.state_dir}" if wipe else "")
    )


def status() -> None:
    """Show each local service's health, address and data directory. Exit 1 if any is down."""
    settings = _settings()
    if not _print_status(settings, Console()):
        raise typer.Exit(1)


def _print_status(settings: HitoSettings, console: Console) -> bool:
    rows = manager.status(settings)
    table = Table(title=f"Hito local stack (data and logs under {settings.state_dir})")
    for col in ("service", "health", "pid", "listens on"):
        table.add_column(col, no_wrap=True)
    table.add_column("for")
    for row in rows:
        health = "[green]healthy[/]" if row.healthy else "[red]down[/]"
        table.add_row(row.name, health, str(row.pid or "-"), row.url, row.purpose)
    console.print(table)
    return all(row.healthy for row in rows)
