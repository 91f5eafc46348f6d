"""The worker's agents without Kafka: in Faust's test context, fed lane batches made here.

Two users: the agent tests (tests/agents), and the handler bench (``hito.bench.handlers``),
which measures the CPU the two handlers cost per event with no broker in the way. The agents
read lane batches (``hito.pipeline.faust.lane``): :func:`lane_batches` makes them from (topic,
key, value, headers) records, as the consumer would from a fetch, and :class:`RecordingSend`
stands for Kafka on the way out (every record kept, none refused).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from faust.types import TP
from pydantic import SecretStr

from hito.pipeline.faust.batches import LaneBatch, Record
from hito.pipeline.faust.lane import Lanes
from hito.pipeline.output import Headers, Outgoing
from hito.pipeline.worker import Worker, build_worker
from hito.runtime import Runtime

# (topic, key, value, headers): a record as a producer wrote it.
Written = tuple[str, bytes | None, bytes | None, Headers | None]


@dataclass(frozen=True)
class FakeRecord:
    """A fetched record (what a handler reads of Faust's ConsumerMessage)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None


class RecordingSend:
    """Every record the agents produce, in order (a Send that never fails)."""

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    async def __call__(self, record: Outgoing) -> None:
        self.sent.append(record)

    async def flush(self) -> None:
        return None

    def to(self, topic: str) -> list[Outgoing]:
        return [r for r in self.sent if r.topic == topic]

    def starting(self, prefix: str) -> list[Outgoing]:
        return [r for r in self.sent if r.topic.startswith(prefix)]


def offline_runtime(runtime: Runtime) -> Runtime:
    """``runtime`` with a placeholder InfluxDB pipeline token: offline, the sink is never
    reached, and no token is read from the state directory."""
    influx = runtime.settings.influxdb.model_copy(
        update={"pipeline_token": SecretStr("offline-never-writes")}
    )
    return dataclasses.replace(
        runtime, settings=runtime.settings.model_copy(update={"influxdb": influx})
    )


def offline_worker(
    runtime: Runtime, app_id: str, now: datetime | Callable[[], datetime], send: RecordingSend
) -> Worker:
    """A worker whose records go to ``send``, whose clock stands at ``now`` (or is ``now()``),
    and which owns every partition (there is no consumer to ask)."""
    clock = now if callable(now) else (lambda: now)
    worker = build_worker(runtime, app_id=app_id, clock=clock, send=send)
    worker.lanes.assigned = lambda tp: True
    worker.lanes.reraise = True  # a handler's error fails the test that caused it
    worker.lanes.resume({})
    return worker


def lane_batches(
    lanes: Lanes,
    records: Iterable[Written],
    size: int = 500,
    partition: int = 0,
    first_offset: int = 0,
) -> list[LaneBatch]:
    """Lane batches of consecutive records of one topic (partition ``partition``), at most
    ``size`` each, offsets counting up per topic from ``first_offset``."""
    offsets: dict[str, int] = {}
    out: list[LaneBatch] = []
    for topic, key, value, headers in records:
        offset = offsets.get(topic, first_offset)
        offsets[topic] = offset + 1
        record = FakeRecord(topic, partition, offset, key, value, headers)
        last = out[-1] if out else None
        if last is None or last.tp.topic != topic or len(last.records) >= size:
            out.append(LaneBatch(TP(topic, partition), [cast(Record, record)], lanes.generation))
        else:
            assert isinstance(last.records, list)
            last.records.append(cast(Record, record))
    return out


async def put_all(agent: Any, batches: list[LaneBatch]) -> list[str]:
    """Put every batch into ``agent`` (an agent's test context), then wait until it has
    handled them all; one outcome per record, in the order put."""
    before = agent.processed_offset
    for batch in batches:
        await agent.put(batch, wait=False)

    def outcomes() -> list[str]:
        return [o for i in range(before, agent.processed_offset) for o in agent.results[i]]

    # Checked under the condition's lock: the agent notifies under it, so no batch can finish
    # between the check and the wait.
    async with asyncio.timeout(30), agent.new_value_processed:
        while agent.processed_offset - before < len(batches):
            await agent.new_value_processed.wait()
            if agent._crash_reason:
                raise agent._crash_reason
    return outcomes()
