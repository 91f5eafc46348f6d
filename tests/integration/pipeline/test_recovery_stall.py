"""A table recovery that loses changelog records reads them again (recovery_watch.py).

The handover soak of 2026-12-04 (run 21 of 30) caught a worker that took over its peer's
partitions and never finished recovering its tables: five changelog partitions delivered
nothing for two minutes, the worker never took its input, and InfluxDB stayed at half the
crossings. The fault hook HITO_TEST_LOSE_CHANGELOG_S makes the same stall at will: what the
restarted worker's recovery fetches in its first seconds is not delivered (the changelogs here
are small: one fetch holds each whole). Faust's recovery would wait for those records forever;
the watch reads them again, and the state comes back whole."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from hito.credentials import client_config
from hito.device.simulate.fleet import SimMessage
from hito.device.simulate.runner import send_messages
from hito.runtime import Runtime
from hito.settings import HitoSettings
from hito.stack.worker_process import WorkerProcess
from tests.integration.pipeline.test_aggregation import assert_exact
from tests.integration.pipeline.test_faults import PORTS, _fleet, _wait_for_influx

LOSE_S = 5.0  # the restarted worker's recovery loses what it fetches in this time


def assert_state_whole(
    worker: WorkerProcess, settings: HitoSettings, messages: list[SimMessage], exp: dict[str, Any]
) -> None:
    """The worker's recovered state is whole: every event sent again is a duplicate (a device
    whose dedup state were missing would be counted twice; a window missing records,
    under-counted), and InfluxDB stays exact."""
    before = worker.metric("hito_events_total")
    producer = client_config(settings.kafka, "device")
    send_messages(messages, producer_config=producer, total=len(messages), rate=2000)
    deadline = time.monotonic() + 60
    while worker.metric("hito_events_total") - before < len(messages):
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)
    time.sleep(2 * settings.pipeline.flush_interval_s)
    _wait_for_influx(settings, exp, timeout_s=60)
    assert worker.alive() and worker.crashes() == 0, worker.log_tail()


def test_a_recovery_that_loses_changelog_records_reads_them_again_and_stays_exact(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings = isolated_runtime.settings
    messages, exp = _fleet(isolated_runtime, 2000, seed=43)
    producer = client_config(settings.kafka, "device")
    app_id = f"hito-stall-{uuid.uuid4().hex[:6]}"
    first = WorkerProcess.start(settings, app_id, PORTS[0], tmp_path / "first.log")
    second = None
    try:
        first.wait_ready()
        send_messages(messages, producer_config=producer, total=len(messages), rate=2000)
        _wait_for_influx(settings, exp, timeout_s=120)
        first.stop()
        hook = {"HITO_TEST_LOSE_CHANGELOG_S": str(LOSE_S)}
        second = WorkerProcess.start(settings, app_id, PORTS[1], tmp_path / "second.log", env=hook)
        # Without the watch it never gets here: Faust waits for the lost records for good.
        second.wait_ready(timeout_s=150)
        assert b"reading it again from" in second.log_path.read_bytes(), second.log_tail()
        assert second.metric("hito_consumer_rewinds_total") >= 1
        assert_state_whole(second, settings, messages, exp)
    finally:
        first.stop()
        if second:
            second.stop()
    assert_exact(settings, exp, isolated_runtime.policy.version)
