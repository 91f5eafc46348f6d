"""Detached service processes tracked by pid files under the state directory."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hito.files import exclusive_lock

__all__ = ["ProcessFiles", "exclusive_lock", "read_pid", "start", "stop"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessFiles:
    """Where one service keeps its pid and its log."""

    pid_path: Path
    log_path: Path


def read_pid(files: ProcessFiles) -> int | None:
    """The pid of the running service, or None when it is not running (stale files removed)."""
    try:
        pid = int(files.pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not _alive(pid):
        files.pid_path.unlink(missing_ok=True)
        return None
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by us) is not a running service.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start(
    argv: Sequence[str], files: ProcessFiles, *, cwd: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start argv in its own session (it outlives this command), appending to its log."""
    files.pid_path.parent.mkdir(parents=True, exist_ok=True)
    files.log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with files.log_path.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    files.pid_path.write_text(f"{proc.pid}\n")
    log.info("started %s as pid %d", argv[0], proc.pid)
    return proc.pid


def stop(files: ProcessFiles, *, timeout_s: float = 30.0) -> bool:
    """Stop the service gracefully (SIGTERM), then SIGKILL its group. True if it was running."""
    pid = read_pid(files)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.2)
    else:
        log.warning("pid %d ignored SIGTERM for %.0f s; killing it", pid, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    files.pid_path.unlink(missing_ok=True)
    return True
