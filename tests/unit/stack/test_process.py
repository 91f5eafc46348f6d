from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hito.stack import ports, process
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
        "import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen();"
        "print(s.getsockname()[1], flush=True); time.sleep(60)"
    )
    process.start([sys.executable, "-c", script], files, cwd=tmp_path)
    deadline = time.monotonic() + 10
    while not files.log_path.read_bytes().endswith(b"\n") and time.monotonic() < deadline:
        time.sleep(0.05)
    port = int(files.log_path.read_bytes())
    started = time.monotonic()
    assert process.stop(files, timeout_s=1) is True
    assert time.monotonic() - started < 5
    assert process.read_pid(files) is None
    # Gone when stop returns, its port with it: a `hito up` right after must not find the
    # port held by the service it just stopped (hito.stack.manager.foreign).
    assert not ports.accepts("127.0.0.1", port)


def test_stale_pid_file_is_not_a_running_service(tmp_path: Path) -> None:
    files = _files(tmp_path)
    files.pid_path.parent.mkdir(parents=True)
    # A pid that cannot exist (above the kernel's pid_max) stands for a long-gone process.
    files.pid_path.write_text(f"{2**22 + 1}\n")
    assert process.read_pid(files) is None
    assert not files.pid_path.exists()
    files.pid_path.write_text("not a pid\n")
    assert process.read_pid(files) is None


def _start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat, read here independently of the code under test."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def _running(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _end(pid: int) -> None:
    """Kill and reap a sleep this test started (it is its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@pytest.fixture
def unrelated() -> Iterator[subprocess.Popen[bytes]]:
    """A process that is not the service: what a reused pid names after a power loss. Its
    own session, as a service's, so a wrongly sent killpg would reach it."""
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_start_records_the_start_time_and_boot_of_the_process(tmp_path: Path) -> None:
    files = _files(tmp_path)
    pid = process.start(["sleep", "30"], files, cwd=tmp_path)
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        assert files.pid_path.read_text().split() == [
            str(pid),
            f"start_time={_start_time(pid)}",
            f"boot_id={boot_id}",
        ]
        assert process.read_pid(files) == pid
    finally:
        _end(pid)


def test_a_pid_now_naming_another_process_is_stale_and_never_signalled(
    tmp_path: Path, unrelated: subprocess.Popen[bytes]
) -> None:
    files = _files(tmp_path)
    time.sleep(0.1)  # the service starts clock ticks after the unrelated process
    service = process.start(["sleep", "30"], files, cwd=tmp_path)
    assert _start_time(service) != _start_time(unrelated.pid)
    _end(service)
    # The file start() wrote, its pid now belonging to the unrelated process (reused after
    # a power loss): the start time recorded is the service's, not that process's.
    recorded = files.pid_path.read_text()
    files.pid_path.write_text(recorded.replace(str(service), str(unrelated.pid), 1))

    assert process.read_pid(files) is None
    assert not files.pid_path.exists()
    files.pid_path.write_text(recorded.replace(str(service), str(unrelated.pid), 1))
    assert process.stop(files, timeout_s=1) is False
    time.sleep(0.2)
    assert unrelated.poll() is None and _running(unrelated.pid)


def test_a_pid_file_from_another_boot_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _files(tmp_path)
    pid = process.start(["sleep", "30"], files, cwd=tmp_path)
    try:
        assert process.read_pid(files) == pid
        other_boot = tmp_path / "boot_id"
        other_boot.write_text("00000000-0000-0000-0000-000000000000\n")
        # raising=False: the outcome below, not the attribute, is what the test checks.
        monkeypatch.setattr(process, "_BOOT_ID", other_boot, raising=False)
        assert process.read_pid(files) is None
        assert not files.pid_path.exists()
        assert _running(pid)
    finally:
        _end(pid)


def test_a_pid_only_file_of_an_older_version_is_still_trusted(
    tmp_path: Path, unrelated: subprocess.Popen[bytes]
) -> None:
    # Written before identities were recorded: a stack running across the upgrade is seen.
    files = _files(tmp_path)
    files.pid_path.parent.mkdir(parents=True)
    files.pid_path.write_text(f"{unrelated.pid}\n")
    assert process.read_pid(files) == unrelated.pid


# A command that started a process in a session of its own (as `hito bench` its contenders)
# and stops it in a finally block, then waits; the test sends it SIGTERM.
_COMMAND = """
import contextlib, subprocess, sys, time
from hito.stack.process import stop_on_term
started = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
)
guard = stop_on_term() if sys.argv[2] == "1" else contextlib.nullcontext()
with guard:
    try:
        open(sys.argv[1], "w").write(str(started.pid))
        time.sleep(60)
    finally:
        started.kill()
        started.wait()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("guarded", [True, False])
def test_a_terminated_command_stops_what_it_started_only_under_stop_on_term(
    tmp_path: Path, guarded: bool
) -> None:
    pid_file = tmp_path / "started.pid"
    command = subprocess.Popen(
        [sys.executable, "-c", _COMMAND, str(pid_file), "1" if guarded else "0"]
    )
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the command never started its process"
        time.sleep(0.05)
    started = int(pid_file.read_text())
    command.send_signal(signal.SIGTERM)
    try:
        assert command.wait(timeout=10) == (143 if guarded else -signal.SIGTERM)
        time.sleep(0.2)  # an orphan is reparented, not gone
        # Unguarded, TERM ends the command at once: its finally never runs (the defect).
        assert _alive(started) is not guarded
    finally:
        if _alive(started):
            os.kill(started, signal.SIGKILL)
