"""`hito simulate` run twice on the same topics: the second run's devices go on from the seq
numbers the first left, as real devices do. From 0 again, each of its events was a replay to
the pipeline's dedup (dropped as duplicate or stale) while the command called it valid."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson

from hito.ops.read_to_end import read_to_end
from hito.settings import HitoSettings
from tests.integration.pipeline.conftest import isolated_env

COUNT = 60


def _simulate(settings: HitoSettings, state_dir: Path) -> None:
    env = isolated_env(settings, HITO_STATE_DIR=str(state_dir))
    done = subprocess.run(
        [sys.executable, "-m", "hito.cli", "simulate", "--count", str(COUNT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_second_run_goes_on_from_the_seq_numbers_of_the_first(
    isolated: HitoSettings, tmp_path: Path
) -> None:
    _simulate(isolated, tmp_path / "state")
    _simulate(isolated, tmp_path / "state")
    sent: Counter[tuple[str, int]] = Counter()
    for topic in isolated.pipeline.raw_topics.values():
        for msg in read_to_end(isolated, topic, "admin", timeout_s=60):
            event = orjson.loads(msg.value)
            sent[(event["device_id"], event["seq"])] += 1
    assert sum(sent.values()) == 2 * COUNT
    assert [key for key, n in sent.items() if n > 1] == []  # no seq of a device used twice
