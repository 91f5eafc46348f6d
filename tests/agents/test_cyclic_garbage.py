"""The worker's common path makes no cyclic garbage: ingest, aggregate (windows evicted as
they age) and publisher flushes of windows, counts and surge scores, round after round, free
what they made by reference counting alone.

Why it matters: the worker freezes its heap after start-up (``hito.pipeline.heap``), so full
collections come minutes apart, and anything a cycle holds stays until then. CI r49's soak
found one such cycle (the sink's narrowing was a closure that called itself, and kept each
flush's lines): the RSS grew by 5-11 MB after warm-up, depending on when the first full
collection came. Kafka and InfluxDB are stand-ins here (``hito.pipeline.offline``); the
failure paths (a send that fails or is refused, a batch the producer could not send, a write
InfluxDB refuses) have tests of their own next to their code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.agents.garbage_child import EVENTS, ROUNDS

ROOT = Path(__file__).resolve().parents[2]


def test_rounds_of_ingest_aggregate_and_flush_leave_no_cyclic_garbage() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.agents.garbage_child"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    # Every round did the whole path: each raw event handled, clean events counted, a flush
    # that wrote the windows.
    handled = report["handled"]
    assert len(handled) == ROUNDS + 1
    assert all(raw == EVENTS and counted > 300 and lines > 0 for raw, counted, lines in handled)
    assert report["garbage"] == {}
