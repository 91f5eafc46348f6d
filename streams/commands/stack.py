"""``hito up|down|status``: the local real-service stack."""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hito.commands.common import JSON_HELP, print_json
from hito.settings import INFLUX_ADMIN, KAFKA_USERS, HitoSettings, load_settings
from hito.stack import manager, overview
from hito.stack.progress import make_runner
from hito.stack.services import services


def _settings() -> HitoSettings:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return load_settings()


def up(
    timeout: float = typer.Option(180.0, help="Seconds to wait for each service to be healthy"),
    brokers: int | None = typer.Option(
        None,
        min=1,
        max=5,
        help="Kafka nodes (each broker and controller); 3: replication factor 3, "
        "min.insync.replicas 2 (default: HITO_KAFKA__BROKERS, or what the state directory "
        "holds, else 1)",
    ),
) -> None:
    """Install what is missing and start Kafka, InfluxDB, Prometheus, Alertmanager and the pager
    locally."""
    settings = _settings()
    if brokers is not None:
        kafka = settings.kafka.model_validate({**settings.kafka.model_dump(), "brokers": brokers})
        settings = settings.model_copy(update={"kafka": kafka})
    # The local stack needs the Kafka users (its admin formats the broker) and InfluxDB's
    # admin credentials (its setup): checked before anything starts.
    settings.require(KAFKA_USERS, *INFLUX_ADMIN)
    console = Console(stderr=True)
    try:
        started = manager.up(settings, make_runner(console), timeout_s=timeout)
    except (manager.StackError, RuntimeError) as exc:
        # Escaped: paths and commands in the message are text, not rich markup.
        console.print(f"[red]hito up failed:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    console.print(f"started: {', '.join(started) or 'nothing (all were running)'}")
    for line in manager.outdated(settings):
        console.print(f"[yellow]outdated:[/] {line}")
    settings = manager.stack_settings(settings)
    if settings.kafka.brokers > 1:
        console.print(
            f"Kafka: {settings.kafka.brokers} brokers; give clients all of them with "
            f"HITO_KAFKA__BROKERS={settings.kafka.brokers}"
        )
    _print_status(settings, Console())


# What --wipe deletes, service by service: said before asking, because some of it cannot be
# rebuilt (aggregates older than the raw topics' retention, pages not yet forwarded).
WIPES = {
    "kafka": "every topic (raw events, clean events, DLQ) and consumer offsets",
    "influxdb": "every aggregate, the window archive and the scoped tokens",
    "prometheus": "the metrics history",
    "alertmanager": "silences and the notification log",
    "pager": "the page log and the outbox (pages not yet forwarded to on-call)",
}


def down(
    wipe: bool = typer.Option(False, "--wipe", help="Also delete the services' data"),
    only: Annotated[
        list[str] | None,
        typer.Option(help="Only this service (repeatable): kafka, influxdb, prometheus, ..."),
    ] = None,
    yes: bool = typer.Option(False, "--yes", help="Wipe without asking"),
) -> None:
    """Stop the local services (data is kept unless --wipe, which asks first)."""
    settings = _settings()
    names = [svc.name for svc in services(manager.stack_settings(settings, strict=False))]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise typer.BadParameter(f"no such service: {', '.join(unknown)}", param_hint="--only")
    if only is not None and "kafka" in only:  # every node of a cluster: one Kafka's data
        only = [*only, *(n for n in names if n.startswith("kafka-"))]
    if wipe and not yes:
        _confirm_wipe(settings, [n for n in names if only is None or n in only])
    stopped = manager.down(settings, wipe=wipe, only=only)
    Console().print(
        f"stopped: {', '.join(stopped) or 'nothing was running'}"
        + (f"; wiped data under {settings.state_dir}" if wipe else "")
    )


def _confirm_wipe(settings: HitoSettings, names: list[str]) -> None:
    """Say what --wipe deletes and ask; without a terminal to ask on, refuse (a script says
    --yes). It used to delete everything at once: advice to wipe Kafka's data cost the
    aggregates and the unsent pages too."""
    console = Console(stderr=True)
    console.print(f"[yellow]--wipe deletes, under {settings.state_dir}:[/]")
    for name in names:
        console.print(f"  {name}: {WIPES.get(name, 'its data')}")
    if not _interactive():
        console.print("[red]not wiped:[/] confirm with --yes (no terminal to ask on)")
        raise typer.Exit(2)
    if not typer.confirm("Delete this data for good?", default=False):
        raise typer.Exit(1)


def _interactive() -> bool:
    return sys.stdin.isatty()


def status(
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """One screen for operators: services' health, workers, events/s, DLQ rate, lag, InfluxDB
    writes and open alerts. Exit 1 if a service is down."""
    settings = _settings()
    if as_json:
        rows = manager.status(settings)
        view = overview.collect(settings)
        print_json(
            {
                "state_dir": str(settings.state_dir),
                "profile": settings.profile,
                "healthy": all(row.healthy for row in rows),
                "services": [dataclasses.asdict(row) for row in rows],
                "pipeline": view.pipeline,
                "alerts": view.alerts,
                "revised_minutes": view.revised_minutes,
                "revisions": view.revisions,
                "problems": view.problems,
                "outdated": manager.outdated(settings),
            }
        )
        if not all(row.healthy for row in rows):
            raise typer.Exit(1)
        return
    console = Console()
    healthy = _print_status(settings, console)
    _print_overview(overview.collect(settings), console)
    for line in manager.outdated(settings):
        console.print(f"[yellow]outdated:[/] {line}")
    if not healthy:
        raise typer.Exit(1)


def _print_overview(view: overview.Overview, console: Console) -> None:
    p = view.pipeline
    if p:
        dlq_share = p["dlq_per_s"] / p["events_per_s"] if p["events_per_s"] else 0.0
        table = Table(title="Pipeline (Prometheus, last minute)")
        for col in ("workers", "events/s", "accepted/s", "DLQ/s", "lag", "points/s", "errors/s"):
            table.add_column(col, justify="right")
        table.add_row(
            f"{p['workers']:.0f}",
            f"{p['events_per_s']:.1f}",
            f"{p['accepted_per_s']:.1f}",
            f"{p['dlq_per_s']:.1f} ({dlq_share:.0%})",
            f"{p['lag']:.0f}",
            f"{p['points_per_s']:.1f}",
            f"{p['sink_errors_per_s']:.2f}",
        )
        console.print(table)
    alerts = Table(title=f"Open alerts ({len(view.alerts)})")
    for col in ("alert", "severity", "site", "since (UTC)", "summary", "runbook"):
        alerts.add_column(col)
    for a in sorted(view.alerts, key=lambda a: (a["severity"] != "critical", a["alertname"])):
        colour = "red" if a["severity"] == "critical" else "yellow"
        alerts.add_row(
            f"[{colour}]{a['alertname']}[/]",
            a["severity"],
            a["site"],
            a["since"],
            a["summary"],
            a["runbook"],
        )
    console.print(alerts)
    if view.revisions:
        revised = Table(
            title=f"Minutes revised by late uploads, last 7 days ({view.revised_minutes}; "
            "newest revisions first)"
        )
        for col in ("minute (UTC)", "site", "source", "events added", "revised at (UTC)"):
            revised.add_column(col)
        for r in view.revisions:
            revised.add_row(r["minute"], r["site"], r["source"], str(r["events"]), r["revised_at"])
        console.print(revised)
    for problem in view.problems:
        console.print(f"[yellow]not available:[/] {problem}")


def _print_status(settings: HitoSettings, console: Console) -> bool:
    rows = manager.status(settings)
    secrets = (
        "[yellow]development secrets[/] (HITO_PROFILE=development: public infra/dev/ files)"
        if settings.development_secrets
        else "production secrets (every secret from its own setting)"
    )
    table = Table(
        title=f"Hito local stack (data and logs under {settings.state_dir})", caption=secrets
    )
    for col in ("service", "health", "pid", "listens on"):
        table.add_column(col, no_wrap=True)
    table.add_column("for")
    for row in rows:
        health = "[green]healthy[/]" if row.healthy else "[red]down[/]"
        table.add_row(row.name, health, str(row.pid or "-"), row.url, row.purpose)
    console.print(table)
    return all(row.healthy for row in rows)
