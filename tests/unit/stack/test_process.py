from __future__ import annotations

import sys
import time
from pathlib import Path

from hito.stack import process
from hito.stack.process import ProcessFiles


def _files(tmp_path: Path) -> ProcessFiles:
    return ProcessFiles(
        pid_path=tmp_path / "run" / "svc.pid", log_path=tmp_path / "logs" / "svc.log"
    )


def test_start_logs_output_and_stop_ends_the_process(tmp_path: Path) -> None:
    files = _files(tmp_path)
    script = "import sys, time; print('ready', flush=True); time.sleep(60)"
    pid = process.start([sys.executable, "-c", script], files, cwd=tmp_path)
    assert process.read_pid(files) == pid
    deadline = time.monotonic() + 10
    while b"ready" not in files.log_path.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert files.log_path.read_bytes() == b"ready\n"
    assert process.stop(files, timeout_s=5) is True
    assert process.read_pid(files) is None
    assert not files.pid_path.exists()
    assert process.stop(files) is False  # stopping twice is harmless


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    files = _files(tmp_path)
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "print('ready', flush=True); time.sleep(60)"
    )
    process.start([sys.executable, "-c", script], files, cwd=tmp_path)
    deadline = time.monotonic() + 10
    while b"ready" not in files.log_path.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    assert process.stop(files, timeout_s=1) is True
    assert time.monotonic() - started < 5
    assert process.read_pid(files) is None


def test_stale_pid_file_is_not_a_running_service(tmp_path: Path) -> None:
    files = _files(tmp_path)
    files.pid_path.parent.mkdir(parents=True)
    # A pid that cannot exist (above the kernel's pid_max) stands for a long-gone process.
    files.pid_path.write_text(f"{2**22 + 1}\n")
    assert process.read_pid(files) is None
    assert not files.pid_path.exists()
    files.pid_path.write_text("not a pid\n")
    assert process.read_pid(files) is None
