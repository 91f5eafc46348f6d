"""What every command shares: logging set-up, loading the runtime, printing counts."""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from hito.runtime import Runtime, load_runtime
from hito.settings import (
    KAFKA_USERS,
    PSEUDONYM_KEYS,
    HitoSettings,
    load_settings,
)

log = logging.getLogger("hito")


def load_with_logging() -> Runtime:
    """Settings and runtime for a long-running command, with INFO logs. Every secret a worker
    needs is checked first, all at once (one message names each one missing), and the first
    log line says which secrets are in use."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # kafka-python narrates every connection at INFO.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = load_settings()
    key_store = () if settings.development_secrets else (PSEUDONYM_KEYS,)
    settings.require(KAFKA_USERS, *settings.pipeline.registry_settings(), *key_store)
    log_secrets_in_use(settings)
    return load_runtime(settings)


def log_secrets_in_use(settings: HitoSettings) -> None:
    if settings.development_secrets:
        log.warning(
            "development secrets: HITO_PROFILE=development, secrets not set are the public "
            "ones of infra/dev/ (never for a deployment)"
        )
    else:
        log.info("production secrets: every secret comes from its own setting")


JSON_HELP = "Print one JSON document on stdout instead of tables (for scripts)"


def print_json(document: Any) -> None:
    """The machine-readable form of a command's output: one JSON document on stdout."""
    print(json.dumps(document, indent=2, default=str, ensure_ascii=False))  # noqa: T201


def print_counts(title: str, counts: Counter[str]) -> None:
    table = Table(title=title)
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for key, value in sorted(counts.items()):
        table.add_row(key, str(value))
    table.add_row("[bold]total", f"[bold]{sum(counts.values())}")
    Console().print(table)
