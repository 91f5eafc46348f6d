"""Agent tests run the agents in Faust's test context: no Kafka, no InfluxDB."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import SecretStr

from streams.runtime import Runtime


@pytest.fixture
def runtime(runtime: Runtime) -> Runtime:
    # The sink is never reached here; a placeholder token keeps these tests off the state dir.
    influx = runtime.settings.influxdb.model_copy(
        update={"pipeline_token": SecretStr("agent-tests-never-write")}
    )
    return dataclasses.replace(
        runtime, settings=runtime.settings.model_copy(update={"influxdb": influx})
    )
