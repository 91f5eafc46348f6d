"""Agent tests run the agents in Faust's test context: no Kafka, no InfluxDB."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from typing import Any

import pytest
from pydantic import SecretStr

from hito.runtime import Runtime


@pytest.fixture
def runtime(runtime: Runtime) -> Runtime:
    # The sink is never reached here; a placeholder token keeps these tests off the state dir.
    influx = runtime.settings.influxdb.model_copy(
        update={"pipeline_token": SecretStr("agent-tests-never-write")}
    )
    return dataclasses.replace(
        runtime, settings=runtime.settings.model_copy(update={"influxdb": influx})
    )


async def put_all(agent: Any, messages: Iterable[tuple[bytes, bytes | None]]) -> list[Any]:
    """Put every (value, key) without waiting for each (the agents take batches), then wait
    until the agent's batches (it yields a list of outcomes per batch) cover every message;
    one outcome per message, in the order put."""
    n = 0
    for value, key in messages:
        await agent.put(value, key=key, wait=False)
        n += 1

    def outcomes() -> list[Any]:
        return [o for i in range(agent.processed_offset) for o in agent.results[i]]

    # Checked under the condition's lock: the agent notifies under it, so no batch can finish
    # between the check and the wait.
    async with asyncio.timeout(30), agent.new_value_processed:
        while len(outcomes()) < n:
            await agent.new_value_processed.wait()
            if agent._crash_reason:
                raise agent._crash_reason
    return outcomes()
