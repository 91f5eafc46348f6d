"""Who answers on a loopback port: `hito up` must not take another stack's service for its own.

A service answering on its port while this state directory has no process for it belongs to
someone else: a stack under another ``HITO_STATE_DIR`` (a CI run's, a second checkout's), the
docker compose stack, or an unrelated program. `hito up` used to call it "already healthy" and
leave it alone, and then reported "started: nothing (all were running)" for a stack it did not
run: tests ran against a CI run's services, and `hito down` could not stop them.

Linux only, like the pid files' identities (hito.stack.process): the listening socket is found
in ``/proc/net/tcp{,6}`` and its process by the descriptors under ``/proc/<pid>/fd``, which this
user can read for its own processes only. psutil would do the same; one error message does not
justify a new dependency in the worker's image.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from hito.stack import process

_LISTEN = "0A"  # the socket state "listen" in /proc/net/tcp


def accepts(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Something accepts a TCP connection at ``host:port``."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Holder:
    """The process listening on a port: its pid, command and working directory (None when it
    cannot be read; a container's is a path inside the container), and whether it runs in
    another pid namespace than this process (a container: compose's services share the
    host's network, so their ports are the stack's)."""

    pid: int
    command: str
    cwd: Path | None
    container: bool = False


def holds(pid: int, port: int, proc: Path = Path("/proc")) -> bool | None:
    """Whether process ``pid`` holds the socket listening on TCP ``port``; None when that
    cannot be told (its descriptors are not readable, or no listening socket is listed). A
    look at one process: `hito up` asks it of every running service."""
    sockets = _listening_sockets(port, proc)
    if not sockets:
        return None
    try:
        fds = list((proc / str(pid) / "fd").iterdir())
    except OSError:
        return None
    return any(_link(fd) in sockets for fd in fds)


def _link(fd: Path) -> str | None:
    try:
        return str(fd.readlink())
    except OSError:
        return None


def holders(port: int, proc: Path = Path("/proc")) -> list[Holder]:
    """The processes of this user holding a socket that listens on TCP ``port`` (any
    address: one on 127.0.0.1 and another on ::1 are both listed), in pid order; empty when
    there is none this user can see (another user's, a container's, or no /proc)."""
    sockets = _listening_sockets(port, proc)
    if not sockets:
        return []
    out = []
    for entry in sorted((e for e in proc.iterdir() if e.name.isdigit()), key=lambda e: int(e.name)):
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:  # another user's process, or gone
            continue
        if any(_link(fd) in sockets for fd in fds):
            out.append(_describe(entry))
    return out


def _listening_sockets(port: int, proc: Path) -> set[str]:
    """What a descriptor of a socket listening on ``port`` links to: ``socket:[<inode>]``."""
    sockets = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            fields = row.split()
            if len(fields) > 9 and fields[3] == _LISTEN:
                local_port = fields[1].rpartition(":")[2]
                if int(local_port, 16) == port:
                    sockets.add(f"socket:[{fields[9]}]")
    return sockets


def _describe(entry: Path) -> Holder:
    try:
        argv = (entry / "cmdline").read_bytes().split(b"\0")
        command = Path(argv[0].decode(errors="replace")).name
    except OSError:
        command = "?"
    try:
        cwd: Path | None = (entry / "cwd").readlink()
    except OSError:
        cwd = None
    own = process.pid_namespace("self", entry.parent)
    theirs = process.pid_namespace(entry.name, entry.parent)
    container = own is not None and theirs is not None and own != theirs
    return Holder(pid=int(entry.name), command=command, cwd=cwd, container=container)
