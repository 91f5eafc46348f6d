"""``hito dlq inspect|replay``: what was rejected, and why; re-submission after a fix."""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated

import typer
from rich.console import Console

from hito.commands.common import JSON_HELP, print_counts, print_json
from hito.schemas.reasons import Reason
from hito.settings import load_settings

dlq_app = typer.Typer(
    help="The dead-letter queue: what was rejected, and why.", no_args_is_help=True
)


@dlq_app.command("inspect")
def dlq_inspect(
    samples: int = typer.Option(3, min=0, help="Sample records shown per reason"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Counts by reason and sample records (original bytes never shown: they may hold PII)."""
    from hito.ops.dlq import read_all, redacted_view

    settings = load_settings()
    counts: Counter[str] = Counter()
    kept: list[dict[str, object]] = []
    console = Console()
    for entry in read_all(settings):
        reason = entry.record.reason.value
        counts[reason] += 1
        if counts[reason] <= samples:
            kept.append(redacted_view(entry))
            if not as_json:
                console.print_json(json.dumps(kept[-1]))
    if as_json:
        print_json(
            {
                "topic": settings.pipeline.dlq_topic,
                "total": sum(counts.values()),
                "by_reason": dict(sorted(counts.items())),
                "samples": kept,
            }
        )
        return
    print_counts(f"DLQ {settings.pipeline.dlq_topic}", counts)


@dlq_app.command("replay")
def dlq_replay(
    reason: Annotated[
        list[Reason] | None, typer.Option(help="Only these reasons (repeatable; default all)")
    ] = None,
    yes: bool = typer.Option(False, "--yes", help="Do it without asking"),
) -> None:
    """Re-submit rejected events to their raw topic, through the same validation (after a fix).
    Reads the rejected bytes from the raw zone: needs the admin's Kafka user."""
    from hito.ops.dlq import reason_filter, replay

    settings = load_settings()
    if not yes:
        typer.confirm(
            f"replay {', '.join(r.value for r in reason or []) or 'all'} records?", abort=True
        )
    done = replay(settings, reason_filter([r.value for r in reason or []]))
    Console().print(f"re-submitted {done.sent} records")
    if done.cut:
        Console().print(f"not re-submitted: {done.cut} whose bytes were cut (too large to keep)")
    if done.unread:
        Console().print(
            f"not re-submitted: {done.unread} batches refused unread (no bytes kept; their "
            "events are in the raw topic until its retention)"
        )
