"""Agent tests run the agents in Faust's test context: no Kafka, no InfluxDB.

The helpers that feed them (lane batches made from written records, a Send that records what
the agents produce, a worker owning every partition) live in ``hito.pipeline.offline``, which
the handler bench uses too.
"""

from __future__ import annotations

import pytest

from hito.pipeline.offline import RecordingSend, lane_batches, offline_runtime, put_all
from hito.pipeline.offline import offline_worker as worker_for_tests
from hito.runtime import Runtime

__all__ = ["RecordingSend", "lane_batches", "put_all", "worker_for_tests"]


@pytest.fixture
def runtime(runtime: Runtime) -> Runtime:
    return offline_runtime(runtime)  # the sink is never reached here
