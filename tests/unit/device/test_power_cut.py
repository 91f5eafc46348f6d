"""Power cut: the device process killed (SIGKILL) between taking a seq and the broker's
acknowledgement, then its disk reduced to what fsync made durable (tests/unit/device/powercut.py);
after the restart no seq is re-used (the pipeline would drop a *new* event as a duplicate) and
every event ``send`` accepted reaches the broker.

The same test against the SDK before the outbox (``--sdk legacy``) finds the re-use: it is the
test that fails on that SDK.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from tests.unit.device.powercut import power_cut

ROOT = Path(__file__).resolve().parents[3]


class Device:
    def __init__(self, tmp: Path, sdk: str) -> None:
        self.state, self.image, self.broker = tmp / "state", tmp / "image", tmp / "broker.jsonl"
        self.state.mkdir()
        self.sdk = sdk
        self.accepted: list[tuple[int, str]] = []
        self.lines: list[str] = []

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "tests.unit.device.powercut_child"]
        cmd += ["--state", str(self.state), "--image", str(self.image)]
        cmd += ["--broker", str(self.broker), "--sdk", self.sdk, *args]
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        # A thread reads the lines as they come (select() on a buffered pipe would miss lines
        # already read into the buffer).
        self.queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(proc, self.queue), daemon=True).start()
        return proc

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(None)  # end of output

    def read_until(self, marker: str, timeout: float) -> bool:
        """Collect output lines until ``marker`` (True), the end of output or the timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                return False
            if line is None:
                return False
            self.lines.append(line)
            if line.startswith("ACCEPTED"):
                _, seq, event_id = line.split()
                self.accepted.append((int(seq), event_id))
            if line == marker:
                return True
        return False

    def at_broker(self) -> dict[int, set[str]]:
        by_seq: dict[int, set[str]] = defaultdict(set)
        for line in self.broker.read_bytes().splitlines():
            event = orjson.loads(line)
            by_seq[event["seq"]].add(event["event_id"])
        return by_seq


def crash_then_restart(
    tmp: Path, sdk: str, *, first: list[str], env: dict[str, str], hang: str, torn: float = 0.0
) -> Device:
    device = Device(tmp, sdk)
    proc = device.run(*first, env=env)
    try:
        assert device.read_until(hang, timeout=60), device.lines
        device.read_until("SENT-ALL", timeout=1.0)  # the outbox SDK is not blocked
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    power_cut(device.state, device.image, torn_fraction=torn)
    again = device.run("--send", "4", "--drain")
    try:
        assert device.read_until("SENT-ALL", timeout=60), device.lines
        assert again.wait(timeout=30) == 0
    finally:
        again.kill()
    return device


def reused(device: Device) -> dict[int, set[str]]:
    return {seq: ids for seq, ids in device.at_broker().items() if len(ids) > 1}


@pytest.mark.parametrize("sdk", ["outbox", "legacy"])
def test_killed_before_the_broker_answered_then_power_cut(tmp_path: Path, sdk: str) -> None:
    # The broker acknowledges 3 events, then stops answering; the device keeps sending.
    device = crash_then_restart(
        tmp_path,
        sdk,
        first=["--send", "6", "--broker-hangs-after", "3"],
        env={},
        hang="BROKER-HANG",
    )
    if sdk == "legacy":
        # Its seq file was never fsync'd: after the power cut the device starts at seq 0 again
        # and the pipeline would drop the new events 0, 1, 2 as duplicates.
        assert sorted(reused(device)) == [0, 1, 2]
        return
    assert reused(device) == {}
    at_broker = device.at_broker()
    # Every event send() accepted reached the broker, the six before the cut and four after.
    assert sorted(seq for seq, _ in device.accepted) == list(range(10))
    assert all(event_id in at_broker[seq] for seq, event_id in device.accepted)


def test_power_cut_during_an_append_leaves_a_torn_record_that_is_cut(tmp_path: Path) -> None:
    # The 4th append's fsync never completes: its bytes are half on the disk after the cut.
    device = crash_then_restart(
        tmp_path,
        "outbox",
        first=["--send", "6"],
        env={"HITO_POWERCUT_HANG_AT_SEG_FSYNC": "4"},
        hang="POWERCUT-HANG",
        torn=0.5,
    )
    problems = [line for line in device.lines if line.startswith("PROBLEM")]
    assert len(problems) == 1 and "torn tail" in problems[0]
    # Three events were accepted before the cut; the torn 4th was never accepted nor sent, so
    # its seq (3) is taken by the first event after the restart, and nothing is re-used.
    assert reused(device) == {}
    assert [seq for seq, _ in device.accepted] == [0, 1, 2, 3, 4, 5, 6]
    at_broker = device.at_broker()
    assert sorted(at_broker) == list(range(7))
    assert all(event_id in at_broker[seq] for seq, event_id in device.accepted)


def test_power_cut_during_a_batch_append_sends_none_of_the_batch(tmp_path: Path) -> None:
    """send_many is all or none across a power cut: the disk kept two whole records of the
    second batch (and a piece of the third), and none of them reaches the broker; the SDK
    before the batch flag sent those two, events the device never heard were stored."""
    device = crash_then_restart(
        tmp_path,
        "outbox",
        first=["--send", "9", "--batch", "3"],
        env={"HITO_POWERCUT_HANG_AT_SEG_FSYNC": "2"},
        hang="POWERCUT-HANG",
        torn=0.7,
    )
    problems = [line for line in device.lines if line.startswith("PROBLEM")]
    assert len(problems) == 1 and "an unfinished append of 2 whole records" in problems[0]
    # The first batch (0-2) was accepted before the cut; the second never returned, so its
    # seqs are free for the four events sent after the restart.
    assert [seq for seq, _ in device.accepted] == [0, 1, 2, 3, 4, 5, 6]
    at_broker = device.at_broker()
    assert reused(device) == {}
    assert sorted(at_broker) == list(range(7))
    assert {seq: ids for seq, ids in at_broker.items()} == {
        seq: {event_id} for seq, event_id in device.accepted
    }
