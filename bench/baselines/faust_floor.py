"""The Faust floor: Hito's own Faust app and consumer with an agent on the raw topics that only
takes the records in batches and acks each one (no decoding, no stage, no output).

It answers "what does Faust's per-record path cost": each record goes through Faust's
conductor, a topic queue, the stream iterator and a per-record ack, as every record did before
the batch lane (``hito.pipeline.faust.lane``; the lane floor, ``lane_floor.py``, measures that
path). Same app settings as a worker (``hito.pipeline.faust.app.create_app``: credentials,
fetch size, buffer, the gapless consumer), the worker's batch size and wait. Its time runs
from the first batch to the last record, its CPU (``hito.bench.cpu``) over the same span. Runs
as ``python -m hito.bench.baselines.faust_floor CONFIG_JSON`` (HITO_PIPELINE in the
environment names the topics), writes its counters to ``CONFIG_JSON["stats_path"]`` and exits.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import faust

from hito.bench.baselines.ceiling import _peak_rss_mb
from hito.bench.cpu import own_cpu_s
from hito.pipeline.faust.app import create_app
from hito.settings import load_settings


class FloorStats:
    """A floor's counters: records taken, first batch -> last record, CPU over that span.
    ``finish`` writes them and ends the process (the measurement is taken; Faust's orderly
    stop adds nothing to it)."""

    def __init__(self, expected: int, stats_path: str, timeout_s: float) -> None:
        self.expected = expected
        self._path = Path(stats_path)
        self.deadline = time.monotonic() + timeout_s
        self.consumed = 0
        self.first_at = self.last_at = 0.0
        self._cpu0 = 0.0

    def took(self, records: int) -> None:
        """``records`` were taken and acknowledged; finishes once every record was."""
        if not self.first_at:
            self.first_at = time.time()
            self._cpu0 = own_cpu_s()
        self.consumed += records
        self.last_at = time.time()
        if self.consumed >= self.expected:
            self.finish()

    def finish(self) -> None:
        stats = {
            "consumed": self.consumed,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "cpu_s": own_cpu_s() - self._cpu0 if self.first_at else 0.0,
            "peak_rss_mb": _peak_rss_mb(),
        }
        self._path.write_text(json.dumps(stats))
        os._exit(0)


def main() -> None:
    config = json.loads(sys.argv[1])
    settings = load_settings()
    p = settings.pipeline
    app = create_app(settings, app_id=config["group"])
    raw = app.topic(*p.raw_topics.values(), partitions=p.topic_partitions)
    stats = FloorStats(config["expected"], config["stats_path"], config["timeout_s"])

    @app.agent(raw, concurrency=1)
    async def floor(stream: Any) -> None:
        consumer: Any = app.consumer  # Hito's gapless consumer (hito.pipeline.faust.consumer)
        async for events in stream.noack_take(p.batch_max_events, within=p.batch_within_s):
            for event in events:
                consumer.mark_handled(event.message)  # a record acked before the lane
                await stream.ack(event)
            stats.took(len(events))

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def give_up() -> None:
        if time.monotonic() > stats.deadline:
            stats.finish()

    faust.Worker(app, loglevel="WARNING").execute_from_commandline()


if __name__ == "__main__":
    main()
