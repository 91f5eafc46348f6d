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
    """A key's newest value in one partition, JSON-decoded; ``value`` None: no record of it
    anywhere (``partition`` None too), or deleted there."""

    key: str
    value: Any = None
    written_at: datetime | None = None
    partition: int | None = None


def latest_values(records: Iterable[Record], wanted: Iterable[str]) -> list[Latest]:
    """The newest value of each wanted key in each partition that has one, in ``wanted``'s
    order (each key once; by partition), or one ``Latest(key)`` for a key found nowhere. A
    key is normally in one partition; it is in two when its records were produced with two
    partitioners (a client of another language, say), and the caller must see both.

    Keys are compared encoded, so the records of other keys are not decoded (a changelog of a
    million keys is read in full). A wanted key's record that has no JSON value raises
    ValueError: the topic is not what the caller took it for."""
    order = list(dict.fromkeys(wanted))
    encoded = {json.dumps(key).encode(): key for key in order}
    found: dict[tuple[str, int], Latest] = {}
    for record in records:
        key = encoded.get(record.key) if record.key is not None else None
        if key is None:
            continue
        where = (key, record.partition)
        if record.value is None:
            found[where] = Latest(key, None, None, record.partition)
            continue
        found[where] = Latest(
            key,
            json.loads(record.value),
            datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC),
            record.partition,
        )
    out: list[Latest] = []
    for key in order:
        mine = [found[w] for w in sorted(w for w in found if w[0] == key)]
        out.extend(mine or [Latest(key)])
    return out


def read_latest(
    settings: HitoSettings,
    topic: str,
    keys: Iterable[str],
    *,
    role: Role,
    timeout_s: float = 300.0,
) -> list[Latest]:
    """:func:`latest_values` of the whole topic as it is now, as ``role``. A dedup changelog
    holds up to about 1 KiB a device (its window of recent numbers), so a GB or so at a
    million devices: minutes. LookupError when Kafka has no such topic."""
    records = (
        Record(msg.key, msg.value, msg.timestamp, msg.partition)
        for msg in read_to_end(settings, topic, role, timeout_s=timeout_s, missing_ok=False)
    )
    return latest_values(records, keys)
