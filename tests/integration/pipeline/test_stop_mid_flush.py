"""A worker stopped between a flush's deletes and its writes leaves InfluxDB exact.

A worker that takes windows over clears the site's points at each window's time before it
writes them again (agents/publish.py). The three-broker test once stopped its last worker
0.4 s into such a takeover and InfluxDB held no crossing at all. The fault hook
HITO_TEST_PAUSE_AFTER_CLEAR_S holds the flush there for a few seconds; the test stops the
worker inside that pause, and the stop must wait for the writes (worker.py).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from hito.runtime import Runtime
from hito.stack.worker_process import WorkerProcess, free_port
from tests.integration.pipeline.test_aggregation import assert_exact, expected_totals, totals
from tests.integration.pipeline.test_faults import _fleet, _send_in_background, _wait_for_influx

PAUSE_S = 5
HOOK_LINE = b"test hook: "


def test_a_stop_inside_a_takeover_flush_waits_for_its_writes(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings = isolated_runtime.settings
    messages, exp = _fleet(isolated_runtime, 3000, seed=71)
    app_id = f"hito-stopflush-{uuid.uuid4().hex[:6]}"
    first = WorkerProcess.start(settings, app_id, free_port(), tmp_path / "first.log")
    try:
        first.wait_ready()
        sender = _send_in_background(settings, messages, rate=1500)
        sender.join(timeout=60)
        _wait_for_influx(settings, exp, timeout_s=120)
    finally:
        first.stop()
    # The second worker restores the windows from the changelog; its first flush clears each
    # site's points at their times, then pauses before writing them again.
    hook = {"HITO_TEST_PAUSE_AFTER_CLEAR_S": str(PAUSE_S)}
    log = tmp_path / "second.log"
    second = WorkerProcess.start(settings, app_id, free_port(), log, env=hook)
    try:
        second.wait_ready()
        deadline = time.monotonic() + 60
        while HOOK_LINE not in log.read_bytes():
            assert time.monotonic() < deadline, second.log_tail()
            time.sleep(0.05)
        # Inside the pause: the points are gone from InfluxDB, the writes are still to come.
        assert totals(settings)[0] < expected_totals(exp)[0]
        stop_began = time.monotonic()
        second.stop()
        waited = time.monotonic() - stop_began
    finally:
        second.stop()
    assert totals(settings) == expected_totals(exp)
    assert second.crashes() == 0, second.log_tail()
    assert b"waiting for the flush in progress before stopping" in log.read_bytes()
    assert waited < 30  # stopped by SIGTERM, not killed after WorkerProcess's 30 s
    assert_exact(settings, exp, isolated_runtime.policy.version)
