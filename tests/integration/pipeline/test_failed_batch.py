"""A batch that fails part-way is read again in place, on the real stack (Kafka, InfluxDB,
one worker process): InfluxDB ends exact, the worker never crashed, and the failures are
counted and cleared.

The fault hook HITO_TEST_FAIL_INGEST_BATCH (streams/pipeline/worker.py) makes two ingest
batches handle their first half, then raise. Before the lanes retried in place, the agent
crashed, Faust restarted it and it went on with the next batches: the second halves were
handled only at the next rebalance or restart, behind later clean events (and the aggregator
then took them for replays); with one worker and no restart, InfluxDB never became exact.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from hito.runtime import Runtime
from hito.stack.worker_process import WorkerProcess
from tests.integration.pipeline.test_aggregation import assert_exact
from tests.integration.pipeline.test_faults import (
    PORTS,
    _fleet,
    _send_in_background,
    _wait_for_influx,
)

FAIL_FROM_BATCH = 20  # well into the run: earlier batches committed, most traffic to come


def test_a_batch_failed_part_way_is_read_again_and_the_run_is_exact(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings = isolated_runtime.settings
    messages, exp = _fleet(isolated_runtime, 4000, seed=53)
    app_id = f"hito-failed-batch-{uuid.uuid4().hex[:6]}"
    hook = {"HITO_TEST_FAIL_INGEST_BATCH": str(FAIL_FROM_BATCH)}
    worker = WorkerProcess.start(settings, app_id, PORTS[0], tmp_path / "worker.log", env=hook)
    try:
        worker.wait_ready()
        sender = _send_in_background(settings, messages, rate=800)
        sender.join(timeout=60)
        _wait_for_influx(settings, exp, timeout_s=90)
        log = worker.log_path.read_bytes()
        assert log.count(b"RuntimeError: test fault hook: a batch failed part-way") == 2, (
            worker.log_tail()
        )
        assert log.count(b"in a row): read again from") == 2, worker.log_tail()
        assert worker.metric_by("hito_lane_batch_failures_total", "agent") == {"ingest": 2.0}
        failing = worker.metric_by("hito_lane_partitions_failing", "agent")
        assert failing == {"ingest": 0.0, "aggregate": 0.0}
        assert worker.alive() and worker.crashes() == 0, worker.log_tail()
    finally:
        worker.stop()
    assert_exact(settings, exp, isolated_runtime.policy.version)
