"""The Faust floor: Hito's own Faust app and consumer with an agent that only takes batches and
acks them (no decoding, no stage, no output).

It answers "how much of a worker's time is Faust itself": whatever Hito does per event comes on
top of this. Same app settings as a worker (``streams.app.create_app``: credentials, fetch size,
buffer, the consumer's batch delivery), same batch size and wait. Its time runs from the first
batch to the last record. Runs as ``python -m bench.baselines.faust_floor CONFIG_JSON``
(HITO_PIPELINE in the environment names the topics) and writes its counters to
``CONFIG_JSON["stats_path"]``, then exits.
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
from hito.pipeline.faust.app import create_app
from hito.settings import load_settings


def main() -> None:
    config = json.loads(sys.argv[1])
    settings = load_settings()
    p = settings.pipeline
    app = create_app(settings, app_id=config["group"])
    raw = app.topic(*p.raw_topics.values(), partitions=p.topic_partitions)
    expected: int = config["expected"]
    stats: dict[str, Any] = {"consumed": 0, "first_at": 0.0, "last_at": 0.0}
    cpu0 = [0.0]

    def finish() -> None:
        stats["cpu_s"] = time.process_time() - cpu0[0]
        stats["peak_rss_mb"] = _peak_rss_mb()
        Path(config["stats_path"]).write_text(json.dumps(stats))
        os._exit(0)  # the measurement is taken; Faust's orderly stop adds nothing to it

    @app.agent(raw, concurrency=1)
    async def floor(stream: Any) -> None:
        consumer: Any = app.consumer  # Hito's consumer (streams/consumer.py)
        async for events in stream.noack_take(p.batch_max_events, within=p.batch_within_s):
            if not stats["first_at"]:
                stats["first_at"] = time.time()
                cpu0[0] = time.process_time()
            for event in events:
                consumer.mark_handled(event.message)  # as Hito's agents do
                await stream.ack(event)
            stats["consumed"] += len(events)
            stats["last_at"] = time.time()
            if stats["consumed"] >= expected:
                finish()

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def give_up() -> None:
        if time.monotonic() > deadline:
            finish()

    deadline = time.monotonic() + config["timeout_s"]
    faust.Worker(app, loglevel="WARNING").execute_from_commandline()


if __name__ == "__main__":
    main()
