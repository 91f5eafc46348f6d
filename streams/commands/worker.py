"""``hito worker``, ``hito simulate``, ``hito schema export``, ``hito dlq inspect|replay``."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hito.runtime import Runtime, load_runtime
from hito.schemas import signing_vectors
from hito.schemas.export import EXPORT_DIR, export
from hito.schemas.reasons import Reason
from hito.settings import load_settings

schema_app = typer.Typer(help="Published event contracts.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="The dead-letter queue: what was rejected, and why.", no_args_is_help=True
)


def _load() -> Runtime:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # kafka-python narrates every connection at INFO.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    return load_runtime(load_settings())


def worker(
    metrics_port: int = typer.Option(0, help="Port for /metrics (0: first free worker port)"),
    app_id: str = typer.Option("hito", help="Faust app id = Kafka consumer group"),
) -> None:
    """Run a pipeline worker (Faust) until interrupted; exposes Prometheus metrics."""
    import faust
    from prometheus_client import start_http_server

    from hito.pipeline.worker import build_worker
    from hito.stack.worker_process import free_metrics_port

    # Topics and ACLs are the admin's job (`hito up` / `hito kafka provision`): the pipeline
    # user may not create raw topics.
    runtime = _load()
    settings = runtime.settings
    w = build_worker(runtime, app_id=app_id)
    try:
        port = metrics_port or free_metrics_port(settings.worker_metrics_ports)
    except RuntimeError as exc:
        raise typer.BadParameter(str(exc)) from exc
    start_http_server(port, addr="127.0.0.1", registry=w.metrics.registry)
    logging.getLogger(__name__).info("metrics on http://127.0.0.1:%d/metrics", port)
    faust.Worker(w.app, loglevel="INFO").execute_from_commandline()


def simulate(
    count: int = typer.Option(10_000, min=1, help="Messages to send"),
    rate: float = typer.Option(0.0, min=0.0, help="Messages per second (0: flat out)"),
    seed: int = typer.Option(7),
    bad_fraction: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Share of bad events, spread over every reason"
    ),
    duplicate_fraction: float = typer.Option(0.0, min=0.0, max=1.0),
    out_of_order_fraction: float = typer.Option(0.0, min=0.0, max=1.0),
    late_fraction: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Share of events older than the aggregation lateness"
    ),
    duration: float = typer.Option(
        0.0, min=0.0, help="Seconds to run at --rate (sets --count to rate x duration)"
    ),
    surge_site: str | None = typer.Option(None, help="Site whose traffic surges"),
    surge_factor: float = typer.Option(5.0, min=1.0, help="The surge site's traffic times this"),
    surge_start: float = typer.Option(0.0, min=0.0, help="Seconds into the run the surge starts"),
    surge_duration: float | None = typer.Option(
        None, min=0.0, help="Seconds the surge lasts (default: to the end)"
    ),
    silent: Annotated[
        list[str] | None, typer.Option(help="Device ids that go silent (repeatable)")
    ] = None,
    silent_after: float = typer.Option(
        0.0, min=0.0, help="Seconds the --silent devices still send before going silent"
    ),
    manifest: Annotated[
        Path | None, typer.Option(help="Write expected outcomes as JSON here")
    ] = None,
) -> None:
    """Run the simulated fleet of the reference crossing against Kafka."""
    from hito.device.simulate.fleet import Fleet, FleetPlan
    from hito.device.simulate.runner import SendRefused, send_messages

    if duration:
        if not rate:
            raise typer.BadParameter("--duration needs --rate")
        count = max(1, int(rate * duration))
    runtime = _load()
    settings, registry = runtime.settings, runtime.registry
    plan = FleetPlan(
        count=count,
        seed=seed,
        bad_fraction=bad_fraction,
        duplicate_fraction=duplicate_fraction,
        out_of_order_fraction=out_of_order_fraction,
        late_fraction=late_fraction,
        surge_site=surge_site,
        surge_factor=surge_factor,
        surge_start_s=surge_start,
        surge_duration_s=surge_duration,
        silent_devices=frozenset(silent or []),
        silent_after_s=silent_after,
        raw_topics=dict(settings.pipeline.raw_topics),
    )
    # At a set rate the run is live: event times, rhythm, surge and silences follow the clock.
    live_clock = (lambda: datetime.now(UTC)) if rate else None
    fleet = Fleet(registry, plan, datetime.now(UTC), clock=live_clock)
    try:
        sent = send_messages(fleet.messages(), kafka=settings.kafka, total=count, rate=rate)
    except SendRefused as exc:
        Console(stderr=True).print(f"[red]simulate failed:[/] {exc}")
        raise typer.Exit(1) from exc
    _print_counts("sent, by expected outcome", sent)
    if manifest:
        manifest.write_text(json.dumps(dict(sorted(sent.items())), indent=2) + "\n")


@schema_app.command("export")
def schema_export(
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the files")] = (
        EXPORT_DIR
    ),
    vectors: Annotated[
        Path, typer.Option("--vectors", help="Where to write the signature test vectors")
    ] = signing_vectors.VECTORS_PATH,
) -> None:
    """Write the JSON Schemas device makers build against, and the signature test vectors."""
    for path in export(directory):
        Console().print(f"wrote {path}")
    Console().print(f"wrote {signing_vectors.write(vectors)}")


@dlq_app.command("inspect")
def dlq_inspect(
    samples: int = typer.Option(3, min=0, help="Sample records shown per reason"),
) -> None:
    """Counts by reason and sample records (original bytes never shown: they may hold PII)."""
    from hito.ops.dlq import read_all, redacted_view

    settings = load_settings()
    counts: Counter[str] = Counter()
    shown: Counter[str] = Counter()
    console = Console()
    for entry in read_all(settings):
        reason = entry.record.reason.value
        counts[reason] += 1
        if shown[reason] < samples:
            shown[reason] += 1
            console.print_json(json.dumps(redacted_view(entry)))
    _print_counts(f"DLQ {settings.pipeline.dlq_topic}", counts)


@dlq_app.command("replay")
def dlq_replay(
    reason: Annotated[
        list[Reason] | None, typer.Option(help="Only these reasons (repeatable; default all)")
    ] = None,
    yes: bool = typer.Option(False, "--yes", help="Do it without asking"),
) -> None:
    """Re-submit DLQ records to their raw topic, through the same validation (after a fix)."""
    from hito.ops.dlq import reason_filter, replay

    settings = load_settings()
    if not yes:
        typer.confirm(
            f"replay {', '.join(r.value for r in reason or []) or 'all'} records?", abort=True
        )
    sent = replay(settings, reason_filter([r.value for r in reason or []]))
    Console().print(f"re-submitted {sent} records")


def _print_counts(title: str, counts: Counter[str]) -> None:
    table = Table(title=title)
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for key, value in sorted(counts.items()):
        table.add_row(key, str(value))
    table.add_row("[bold]total", f"[bold]{sum(counts.values())}")
    Console().print(table)
