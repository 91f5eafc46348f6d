"""What every command shares: logging set-up, loading the runtime, printing counts."""

from __future__ import annotations

import logging
from collections import Counter

from rich.console import Console
from rich.table import Table

from hito.runtime import Runtime, load_runtime
from hito.settings import load_settings


def load_with_logging() -> Runtime:
    """Settings and runtime for a long-running command, with INFO logs."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # kafka-python narrates every connection at INFO.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    return load_runtime(load_settings())


def print_counts(title: str, counts: Counter[str]) -> None:
    table = Table(title=title)
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for key, value in sorted(counts.items()):
        table.add_row(key, str(value))
    table.add_row("[bold]total", f"[bold]{sum(counts.values())}")
    Console().print(table)
