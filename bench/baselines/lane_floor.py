"""The lane floor: Hito's batch lane with an agent that takes each batch and acknowledges it,
nothing else (no decoding, no stage, no output).

It answers "what does the framework cost under the lane design": Faust's app, consumer group
and commit, Hito's gapless consumer handing each partition's fetched records to a lane as *one*
Faust event (``hito.pipeline.faust.lane``), the lane agent taking it (``Lanes.take``) and
acknowledging it as a watermark (``Lanes.done``), which the commit reads. The worker's ingest
agent is this plus its work, so Hito's CPU per event minus this floor's is what Hito's own code
costs. Same app settings as a worker (``create_app``), the raw topics on a lane of the
worker's size (``CHANNEL_SIZE``, ``LANE_BATCHES``). Its time runs from the first batch to the
last record, its CPU (``hito.bench.cpu``) over the same span. Runs as
``python -m hito.bench.baselines.lane_floor CONFIG_JSON`` (HITO_PIPELINE in the environment
names the topics), writes its counters to ``CONFIG_JSON["stats_path"]`` and exits.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence

import faust

from hito.bench.baselines.faust_floor import FloorStats
from hito.pipeline.faust.app import create_app
from hito.pipeline.faust.batches import Record
from hito.pipeline.faust.lane import CHANNEL_SIZE, Lane, Lanes, install_lanes, lane_agent
from hito.settings import load_settings


def main() -> None:
    config = json.loads(sys.argv[1])
    settings = load_settings()
    p = settings.pipeline
    app = create_app(settings, app_id=config["group"])
    raw_topics = list(p.raw_topics.values())
    # As the worker does (hito.pipeline.worker): the raw topics are registered with Faust so
    # that it subscribes and assigns them, and their records reach the agent through the lane.
    app.topics.add(app.topic(*raw_topics, partitions=p.topic_partitions))
    lane = Lane("floor", app.channel(maxsize=CHANNEL_SIZE), frozenset(raw_topics))
    lanes = Lanes([lane])
    install_lanes(app, lanes)
    stats = FloorStats(config["expected"], config["stats_path"], config["timeout_s"])

    async def take(records: Sequence[Record]) -> list[str]:
        stats.took(len(records))
        return []  # no per-record outcome: the watermark is the acknowledgement

    app.agent(lane.channel, name="floor", concurrency=1)(lane_agent(lanes, take))
    lanes.assigned = lambda tp: tp in app.consumer.assignment()

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def give_up() -> None:
        if time.monotonic() > stats.deadline:
            stats.finish()

    faust.Worker(app, loglevel="WARNING").execute_from_commandline()


if __name__ == "__main__":
    main()
