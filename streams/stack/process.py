"""Detached service processes tracked by pid files under the state directory.

A pid file holds the pid, then the process's start time and the boot id: after a power loss
the pid may belong to an unrelated process by now, and only these tell the two apart (a
live pid is not proof: `hito up` would skip the service, `hito down` would signal a
stranger's process group).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from hito.files import exclusive_lock, write_private

__all__ = [
    "ProcessFiles",
    "ProcessIdentity",
    "exclusive_lock",
    "identity",
    "pid_namespace",
    "read_pid",
    "running",
    "start",
    "stop",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessFiles:
    """Where one service keeps its pid and its log."""

    pid_path: Path
    log_path: Path


_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class ProcessIdentity:
    """What tells a process from a later one given the same pid: its start time (clock ticks
    after boot, field 22 of /proc/<pid>/stat) and the boot it started in."""

    start_time: str
    boot_id: str

    def lines(self) -> str:
        return f"start_time={self.start_time}\nboot_id={self.boot_id}\n"


def pid_namespace(pid: int | str = "self", proc: Path = Path("/proc")) -> str | None:
    """The pid namespace of ``pid`` ("pid:[4026531836]"; each container has its own), or None
    when it cannot be read (gone, or another user's)."""
    try:
        return str((proc / str(pid) / "ns" / "pid").readlink())
    except OSError:
        return None


def identity(pid: int) -> ProcessIdentity | None:
    """The identity of the running ``pid``, or None when it cannot be read (gone, or hidden)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot_id = _BOOT_ID.read_text().strip()
    except OSError:
        return None
    # The command name (field 2, in parentheses) may itself hold spaces and ")": the fields
    # after the last ")" start at field 3, so the start time (22) is the 20th of them.
    fields = stat.rsplit(")", 1)[1].split()
    return ProcessIdentity(start_time=fields[19], boot_id=boot_id) if len(fields) > 19 else None


def _parse(text: str) -> tuple[int, ProcessIdentity | None] | None:
    """(pid, recorded identity) of a pid file's text; identity None for a pid-only file (an
    older version's); None if unreadable."""
    lines = text.split()
    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        return None
    fields = {key: value for key, _, value in (line.partition("=") for line in lines[1:])}
    if not fields:
        return pid, None
    if not fields.get("start_time") or not fields.get("boot_id"):
        return None
    return pid, ProcessIdentity(start_time=fields["start_time"], boot_id=fields["boot_id"])


def read_pid(files: ProcessFiles) -> int | None:
    """The pid of the running service, or None when it is not running (stale files removed).

    A pid whose process started at another time, or in another boot, than the file records
    is another process: stale. A pid-only file (written before identities were recorded) is
    trusted while the pid is alive, so a stack running across the upgrade is still seen.
    """
    try:
        parsed = _parse(files.pid_path.read_text())
    except FileNotFoundError:
        return None
    if parsed is None:
        return None
    pid, recorded = parsed
    if not running(pid, recorded):
        files.pid_path.unlink(missing_ok=True)
        return None
    return pid


def running(pid: int, recorded: ProcessIdentity | None) -> bool:
    """``pid`` is alive and, when an identity is recorded, still the process recorded."""
    if not _alive(pid):
        return False
    return recorded is None or identity(pid) == recorded


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
    # Read now, before anything can reap the child: a zombie's /proc entry still has it.
    known = identity(proc.pid)
    # Atomic: a reader (`hito status`, a concurrent `hito down`) never sees half a file.
    write_private(files.pid_path, f"{proc.pid}\n{known.lines() if known else ''}")
    log.info("started %s as pid %d", argv[0], proc.pid)
    return proc.pid


def stop(files: ProcessFiles, *, timeout_s: float = 30.0) -> bool:
    """Stop the service gracefully (SIGTERM), then SIGKILL its group. True if it was running."""
    pid = read_pid(files)
    if pid is None:
        return False
    recorded = identity(pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # Compared with the identity too: the pid may be reused once the service has exited.
        if not running(pid, recorded):
            break
        time.sleep(0.2)
    else:
        log.warning("pid %d ignored SIGTERM for %.0f s; killing it", pid, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        # Gone before its pid file goes: until then it still holds its port, and a `hito up`
        # right after would take it for another stack's service.
        deadline = time.monotonic() + 10.0
        while running(pid, recorded) and time.monotonic() < deadline:
            time.sleep(0.1)
    files.pid_path.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def stop_on_term() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) inside this block instead of ending the process at once,
    so the ``finally`` and ``except BaseException`` blocks of a command that started processes
    run and stop them. ``hito bench`` stopped with TERM had left its Hito worker running (its
    contenders run in sessions of their own: a signal to the command reaches none of them);
    ``hito demo`` would also have lost its fleet's next seq numbers. The handler before is put
    back on the way out."""

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
