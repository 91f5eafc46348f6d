"""A fetch in flight across a table recovery's seek: its changelog records are read again.

A recovery seeks its changelog partitions, then resumes flow. A fetch that was waiting when the
rebalance began can return records from the recovery's new position before flow is resumed;
Faust's getmany drops them and seeks only partitions with a committed offset, which changelogs
never have: the recovery then waited for them for good (docs/aggregation.md, "A table recovery
that never ends"). Two fault hooks make the race certain instead of rare: the first worker's
fetches wait up to FETCH_WAIT_S for records (one is in flight when a rebalance begins), and its
recovery comes back RECOVERY_PAUSE_S late from each seek. It takes over the second worker's
partitions, whose changelogs it must read from the start: the consumer must put them back
where the dropped records began (GaplessConsumer._keep_changelog_positions), so the recovery
ends without the recovery watch, and the state stays whole.

The hooks make the race likely, not certain: in CI r59 the first takeover's recovery read its
changelogs with no record fetched across its seek (KEPT absent, the recovery done in 0.13 s,
no re-read by the watch), after passing in every CI run before. A takeover that did not
provoke the race shows nothing either way, so the second worker joins and stops again, up to
TAKEOVERS times, until one does; every takeover's recovery must end without the watch."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from hito.credentials import client_config
from hito.device.simulate.runner import send_messages
from hito.runtime import Runtime
from hito.stack.worker_process import WorkerProcess
from tests.integration.pipeline.test_aggregation import assert_exact
from tests.integration.pipeline.test_faults import PORTS, _fleet, _wait_for_influx
from tests.integration.pipeline.test_recovery_stall import assert_state_whole

FETCH_WAIT_S = 10.0
RECOVERY_PAUSE_S = 2.0
KEPT = b"came back while flow was stopped: read again"
READY = b"Recovery]: Worker ready"  # logged at the end of every rebalance
TAKEOVERS = 3  # at most, until one provokes the race


def _wait_for_log(worker: WorkerProcess, line: bytes, times: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while worker.log_path.read_bytes().count(line) < times:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.3)


def test_changelog_records_fetched_across_a_recovery_seek_are_read_again(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings = isolated_runtime.settings
    messages, exp = _fleet(isolated_runtime, 2000, seed=47)
    producer = client_config(settings.kafka, "device")
    app_id = f"hito-race-{uuid.uuid4().hex[:6]}"
    hooks = {
        "HITO_TEST_FETCH_WAIT_S": str(FETCH_WAIT_S),
        "HITO_TEST_RECOVERY_SEEK_PAUSE_S": str(RECOVERY_PAUSE_S),
    }
    first = WorkerProcess.start(settings, app_id, PORTS[0], tmp_path / "first.log", env=hooks)
    second = None
    try:
        first.wait_ready()
        for takeover in range(TAKEOVERS):
            # Each join and each stop of the second worker is one rebalance of the first.
            second_log = tmp_path / f"second-{takeover}.log"
            second = WorkerProcess.start(settings, app_id, PORTS[1], second_log)
            second.wait_ready(timeout_s=90)
            _wait_for_log(first, READY, 2 + 2 * takeover)
            if takeover == 0:
                send_messages(messages, producer_config=producer, total=len(messages), rate=2000)
                _wait_for_influx(settings, exp, timeout_s=120)
                # The second worker's changelogs hold state, read again at every takeover.
                assert second.metric("hito_events_total") > 0
            # The first takes the second's partitions over: its recovery reads their
            # changelogs from the start, with a fetch in flight.
            second.stop()
            _wait_for_log(first, READY, 3 + 2 * takeover)
            if KEPT in first.log_path.read_bytes():
                break
        log = first.log_path.read_bytes()
        assert KEPT in log, first.log_tail()  # the race happened (its fix is what is tested)
        assert b"reading it again from" not in log, first.log_tail()  # the watch was not needed
        assert_state_whole(first, settings, messages, exp)
    finally:
        first.stop()
        if second:
            second.stop()
    assert_exact(settings, exp, isolated_runtime.policy.version)
