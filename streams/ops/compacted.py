"""The newest value of some keys of a compacted topic, read as the topic is now.

What operator tools show of the pipeline's own state without asking a worker: a Faust table's
changelog (``<app id>-<table>-changelog``, compacted) holds, for each key, the value the
table had when a worker last wrote it; keys and values JSON-encoded, as Faust's tables do. A
reader must take it as compaction does: a later record of a key replaces an earlier one, a
tombstone (no value) deletes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hito.credentials import Role
from hito.ops.read_to_end import read_to_end
from hito.settings import HitoSettings


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None  # None: a tombstone
    timestamp_ms: int
    partition: int


@dataclass(frozen=True)
class Latest:
    """A key's newest value, JSON-decoded; ``value`` None: no record of it, or deleted."""

    key: str
    value: Any = None
    written_at: datetime | None = None
    partition: int | None = None


def latest_values(records: Iterable[Record], wanted: Iterable[str]) -> list[Latest]:
    """The newest value of each wanted key, in ``wanted``'s order (each once). A record whose
    key or value is not JSON, or has no key, raises ValueError: the topic is not what the
    caller took it for, and an answer from it would be wrong."""
    order = list(dict.fromkeys(wanted))
    keys = set(order)
    found: dict[str, Latest] = {}
    for record in records:
        if record.key is None:
            raise ValueError(f"a record without a key in partition {record.partition}")
        key = json.loads(record.key)
        if key not in keys:
            continue
        if record.value is None:
            found[key] = Latest(key)
            continue
        found[key] = Latest(
            key,
            json.loads(record.value),
            datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC),
            record.partition,
        )
    return [found.get(key, Latest(key)) for key in order]


def read_latest(
    settings: HitoSettings, topic: str, keys: Iterable[str], *, role: Role, timeout_s: float = 120.0
) -> list[Latest]:
    """:func:`latest_values` of the whole topic as it is now (a million keys are some tens of
    MB). LookupError when Kafka has no such topic."""
    records = (
        Record(msg.key, msg.value, msg.timestamp, msg.partition)
        for msg in read_to_end(settings, topic, role, timeout_s=timeout_s, missing_ok=False)
    )
    return latest_values(records, keys)
