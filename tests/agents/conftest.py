"""Agent tests run the agents in Faust's test context: no Kafka, no InfluxDB.

The helpers that feed them (lane batches made from written records, a Send that records what
the agents produce, a worker owning every partition) live in ``hito.pipeline.offline``, which
the handler bench uses too.
"""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import SecretStr

from hito.pipeline.offline import RecordingSend, lane_batches, put_all
from hito.pipeline.offline import offline_worker as worker_for_tests
from hito.runtime import Runtime

__all__ = ["RecordingSend", "lane_batches", "put_all", "worker_for_tests"]


@pytest.fixture
def runtime(runtime: Runtime) -> Runtime:
    # The sink is never reached here; a placeholder token keeps these tests off the state dir.
    influx = runtime.settings.influxdb.model_copy(
        update={"pipeline_token": SecretStr("agent-tests-never-write")}
    )
    return dataclasses.replace(
        runtime, settings=runtime.settings.model_copy(update={"influxdb": influx})
    )
