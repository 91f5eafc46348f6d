"""``hito simulate``: the simulated fleet of the reference crossing, against Kafka."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hito.commands.common import load_with_logging, print_counts
from hito.credentials import client_config


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
        0.0,
        min=0.0,
        max=1.0,
        help="Share of events older than the backfill horizon (refused: late_beyond_window)",
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
    travellers: int = typer.Option(
        0,
        min=0,
        help="Crossings made by this many returning travellers (0: a new person each time); "
        "feeds repeat_crossings",
    ),
    offline: Annotated[
        list[str] | None,
        typer.Option(
            help="Device ids whose uplink goes down (repeatable): their events are held, as "
            "their outbox holds them, and sent in one go when they reconnect"
        ),
    ] = None,
    offline_after: float = typer.Option(
        0.0, min=0.0, help="Seconds into the run the --offline devices lose their uplink"
    ),
    offline_for: float | None = typer.Option(
        None, min=0.0, help="Seconds the uplink stays down (default: to the end of the run)"
    ),
    offline_span: float = typer.Option(
        0.0,
        min=0.0,
        help="Spread the held events' times over this many seconds before the reconnection "
        "(a compressed outage; 0: the times they were produced at)",
    ),
) -> None:
    """Run the simulated fleet of the reference crossing against Kafka."""
    from hito.demo import continuity
    from hito.device.simulate.fleet import Fleet, FleetPlan
    from hito.device.simulate.runner import SendRefused, send_messages

    if duration:
        if not rate:
            raise typer.BadParameter("--duration needs --rate")
        count = max(1, int(rate * duration))
    runtime = load_with_logging()
    settings, registry = runtime.settings, runtime.registry
    # The fleet's devices go on from the seq numbers the last run on these topics left, as
    # devices with a durable outbox do: from 0 again, every event of a second run was dropped
    # downstream as a duplicate (or stale) while the counts printed here called it valid.
    memory_file = settings.state_dir / "simulate" / continuity.MEMORY_FILE
    memory = continuity.recall(memory_file, settings)
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
        travellers=travellers,
        offline_devices=frozenset(offline or []),
        offline_after_s=offline_after,
        offline_for_s=offline_for,
        offline_span_s=offline_span,
        first_seq=memory.next_seq,
    )
    # At a set rate the run is live: event times, rhythm, surge and silences follow the clock.
    live_clock = (lambda: datetime.now(UTC)) if rate else None
    fleet = Fleet(registry, plan, datetime.now(UTC), clock=live_clock)
    try:
        sent = send_messages(
            fleet.messages(),
            producer_config=client_config(settings.kafka, "device"),
            total=count,
            rate=rate,
        )
    except SendRefused as exc:
        Console(stderr=True).print(f"[red]simulate failed:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        # Every seq allocated, sent or not, is used up (a device never reuses one).
        continuity.remember(memory_file, settings, memory.app_id, fleet.next_seqs())
    print_counts("sent, by expected outcome", sent)
    if manifest:
        manifest.write_text(json.dumps(dict(sorted(sent.items())), indent=2) + "\n")
