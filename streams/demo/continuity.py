"""The demo's worker app and its fleet's sequence numbers, remembered from one run to the next
(``<out dir>/fleet.json``): every demo run on a stack is one more stretch of the same crossing.

Why the same Faust app (consumer group, tables) and devices that go on from their last ``seq``:

- A new app reads the input topics from their start (the pipeline consumes from the earliest
  offset): every earlier run's events would be counted again, as late ones, and the summary's
  revisions would be those replays.
- A new app has no table: the last minutes an earlier demo's worker had not archived yet when
  it stopped (windows are archived once closed beyond the allowed lateness) would be counted
  from nothing when this run's late upload reaches them, and InfluxDB's counts for those
  minutes would lose the earlier run's crossings.
- The same app with every ``seq`` back at 0 would drop each event as a replay (dedup), so the
  fleet goes on where it stopped, as a device with a durable ``seq`` does.

`hito simulate` keeps its fleet's seq numbers the same way, in a file of its own
(``<state dir>/simulate/fleet.json``; the app id is unused there). The two do not know each
other's: a simulate run and a demo run on the same topics give the same devices the same seq
numbers, and the later run's events are dropped as duplicates.

The first run (no file, or one made for other topics or another bucket) makes a new app, and
its consumer group starts at the input topics' current end: events that other tools left in
the topics are not the demo's.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

from hito.credentials import client_config
from hito.settings import HitoSettings

MEMORY_FILE = "fleet.json"


@dataclass(frozen=True)
class FleetMemory:
    app_id: str
    next_seq: dict[str, int]  # device -> its next seq (every lower one was allocated)
    new: bool  # a new app: its consumer group has no offsets yet


def fingerprint(settings: HitoSettings) -> str:
    """What the remembered app is bound to: the brokers, the input topics and the bucket."""
    return json.dumps(
        {
            "kafka": settings.kafka.bootstrap,
            "inputs": list(settings.pipeline.topics.inputs),
            "bucket": settings.influxdb.bucket,
        },
        sort_keys=True,
    )


def recall(path: Path, settings: HitoSettings) -> FleetMemory:
    """The remembered app and seqs, or a new app (seqs from 0) when there is none for these
    settings."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and data.get("fingerprint") == fingerprint(settings):
        seqs = {str(k): int(v) for k, v in data["next_seq"].items()}
        return FleetMemory(str(data["app_id"]), seqs, new=False)
    return FleetMemory(f"hito-demo-{uuid.uuid4().hex[:6]}", {}, new=True)


def remember(path: Path, settings: HitoSettings, app_id: str, next_seq: dict[str, int]) -> None:
    """Written whole or not at all (a crash mid-write keeps the previous file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    text = json.dumps(
        {"fingerprint": fingerprint(settings), "app_id": app_id, "next_seq": next_seq},
        indent=2,
        sort_keys=True,
    )
    with tmp.open("w") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def start_at_end(settings: HitoSettings, app_id: str) -> int:
    """Commit, for the consumer group ``app_id`` (no member yet), the current end of every
    input topic's partitions, so that the app's worker starts there. Returns the records
    skipped."""
    consumer = KafkaConsumer(
        group_id=app_id, enable_auto_commit=False, **client_config(settings.kafka, "admin")
    )
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in settings.pipeline.topics.inputs
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
        offsets = {tp: OffsetAndMetadata(n, "", -1) for tp, n in ends.items() if n > 0}
        if offsets:
            consumer.commit(offsets)
        return sum(ends.values())
    finally:
        consumer.close()
