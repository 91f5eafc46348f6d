"""`hito up` refuses a port another stack answers on, and names whose it is (no real services:
a plain listening process stands in for the other stack's service)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hito.settings import HitoSettings
from hito.stack import manager, ports, process
from hito.stack.services import SERVICES

# Listens on a free loopback port, prints it, and waits to be killed.
LISTENER = (
    "import socket, sys, time\n"
    "s = socket.socket()\n"
    "s.bind(('127.0.0.1', 0))\n"
    "s.listen()\n"
    "print(s.getsockname()[1], flush=True)\n"
    "time.sleep(120)\n"
)
PAGER = next(s for s in SERVICES if s.name == "pager")

Listen = Callable[[Path], tuple[int, int]]


@pytest.fixture
def listen() -> Iterator[Listen]:
    """Start a listener working in ``cwd``: (its pid, its port)."""
    started: list[subprocess.Popen[str]] = []

    def start(cwd: Path) -> tuple[int, int]:
        cwd.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-c", LISTENER], cwd=cwd, stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        assert proc.stdout is not None
        return proc.pid, int(proc.stdout.readline())

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def _no_install(argv: list[str], log_path: Path, label: str) -> None:
    raise AssertionError(f"hito up installed {label} for a stack it refused")


def _refused(settings: HitoSettings) -> list[str]:
    """The lines of `hito up`'s refusal to start the pager of ``settings``."""
    with pytest.raises(manager.StackError) as refused:
        manager.up(settings, _no_install, only=["pager"])
    return str(refused.value).splitlines()


def test_the_holder_of_a_port_is_found_and_gone_once_it_stops(
    listen: Listen, tmp_path: Path
) -> None:
    pid, port = listen(tmp_path / "somewhere")
    assert ports.accepts("127.0.0.1", port)
    assert ports.holders(port) == [
        ports.Holder(pid=pid, command=Path(sys.executable).name, cwd=tmp_path / "somewhere")
    ]
    os.kill(pid, signal.SIGKILL)  # its sockets close as it exits (a zombie holds none)
    deadline = time.monotonic() + 10
    while ports.accepts("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ports.accepts("127.0.0.1", port)
    assert ports.holders(port) == []


def test_up_refuses_another_stacks_service_and_names_that_stack(
    listen: Listen, tmp_path: Path
) -> None:
    tmp_path = tmp_path.resolve()  # as the kernel names a working directory
    other = tmp_path / "other-state"
    pid, port = listen(other / "pager")  # how hito up starts a service: in its data dir
    (other / "run").mkdir()
    (other / "run" / "pager.pid").write_text(f"{pid}\n")  # that stack knows its service
    mine = HitoSettings(state_dir=tmp_path / "mine", pager_port=port)

    command = Path(sys.executable).name
    assert _refused(mine) == [
        f"another stack answers on this stack's ports (state directory {tmp_path / 'mine'}); "
        "nothing was started:",
        f"  pager: port {port}, pid {pid} ({command}): the pager of the stack in {other}",
        f"Stop that stack: `HITO_STATE_DIR={other} hito down`.",
        'Then run `hito up` again, or give this stack other ports (README.md, "The local stack").',
    ]
    assert not (tmp_path / "mine" / "run").exists()  # nothing started, no pid file written


@pytest.mark.parametrize(
    ("works_in", "says", "advice"),
    [
        # Another stack's service without its pid file: `hito down` there would stop nothing.
        (
            "other-state/pager",
            "the pager of the stack in {tmp}/other-state, whose pid file "
            "{tmp}/other-state/run/pager.pid is gone",
            "Stop it: `kill {pid}`.",
        ),
        # This state directory's own service, its pid file lost.
        (
            "mine/pager",
            "this state directory's pager, whose pid file {tmp}/mine/run/pager.pid is gone",
            "Stop it: `kill {pid}`.",
        ),
        # Another stack's service of another name: a cluster's node 2 on this pager's port.
        (
            "other-state/kafka-2",
            "the kafka-2 of the stack in {tmp}/other-state, whose pid file "
            "{tmp}/other-state/run/kafka-2.pid is gone",
            "Stop it: `kill {pid}`.",
        ),
        # Not a Hito service at all.
        ("elsewhere", "", "Stop pid {pid}."),
    ],
)
def test_up_names_who_holds_the_port_and_what_stops_it(
    listen: Listen, tmp_path: Path, works_in: str, says: str, advice: str
) -> None:
    tmp_path = tmp_path.resolve()  # as the kernel names a working directory
    pid, port = listen(tmp_path / works_in)
    settings = HitoSettings(state_dir=tmp_path / "mine", pager_port=port)
    holder = f"pid {pid} ({Path(sys.executable).name})"
    whose = f"{holder}: {says}" if says else f"{holder}, working directory {tmp_path / works_in}"
    assert _refused(settings)[1:3] == [
        f"  pager: port {port}, " + whose.format(tmp=tmp_path, pid=pid),
        advice.format(pid=pid),
    ]


def test_a_port_held_by_another_process_than_the_pid_files_is_foreign(
    listen: Listen, tmp_path: Path
) -> None:
    tmp_path = tmp_path.resolve()  # as the kernel names a working directory
    settings = HitoSettings(state_dir=tmp_path / "mine")
    files = PAGER.files(settings)
    # This stack's pager runs (its pid file is right) but does not listen; another does.
    process.start([sys.executable, "-c", "import time; time.sleep(60)"], files, cwd=tmp_path)
    try:
        pid, port = listen(tmp_path / "elsewhere")
        settings = settings.model_copy(update={"pager_port": port})
        assert [(t.service, t.port, t.whose) for t in manager.foreign(settings, [PAGER])] == [
            (
                "pager",
                port,
                f"pid {pid} ({Path(sys.executable).name}), working directory "
                f"{tmp_path / 'elsewhere'}",
            )
        ]
    finally:
        process.stop(files, timeout_s=5)


def test_a_service_that_dies_at_start_while_another_answers_is_not_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `hito up` of different state directories at once: both find the port free, the
    other's pager binds it, this one's dies on "address already in use". The other's answers
    must not make this one's start look healthy."""
    settings = HitoSettings(state_dir=tmp_path / "mine", pager_port=_free_port())
    answering: list[subprocess.Popen[str]] = []
    real_start = process.start

    def start_racing(argv: list[str], files: process.ProcessFiles, **kwargs: object) -> int:
        answering.append(_health_server(settings.pager_port, tmp_path / "other" / "pager"))
        # This stack's pager, as it ends when its port is taken.
        return real_start([sys.executable, "-c", "raise SystemExit(1)"], files, cwd=tmp_path)

    monkeypatch.setattr(process, "start", start_racing)
    try:
        # Found dead, or found alive while the other answers: either way not healthy.
        with pytest.raises(
            manager.StackError,
            match=r"pager exited during start-up|its pager was started, but another process",
        ):
            manager.up(settings, _no_install, only=["pager"], timeout_s=20)
    finally:
        for proc in answering:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HEALTH = (
    "import http.server, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200)\n"
    "        self.end_headers()\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "s = http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H)\n"
    "print('ready', flush=True)\n"
    "s.serve_forever()\n"
)


def _health_server(port: int, cwd: Path) -> subprocess.Popen[str]:
    """Another stack's pager: answers 200 to every GET on ``port``."""
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", HEALTH, str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    assert (line := proc.stdout.readline()) == "ready\n", line + proc.stdout.read()
    return proc


def test_a_running_service_of_this_state_directory_is_not_foreign(
    listen: Listen, tmp_path: Path
) -> None:
    settings = HitoSettings(state_dir=tmp_path / "mine")
    files = PAGER.files(settings)
    # Started as hito up starts a service: its pid file says it is this stack's.
    process.start([sys.executable, "-c", LISTENER], files, cwd=tmp_path)
    try:
        port = _printed_port(files.log_path)
        settings = settings.model_copy(update={"pager_port": port})
        assert manager.foreign(settings, [PAGER]) == []
        other = HitoSettings(state_dir=tmp_path / "other", pager_port=port)
        assert len(manager.foreign(other, [PAGER])) == 1
    finally:
        process.stop(files, timeout_s=5)


def _printed_port(log_path: Path) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = log_path.read_text() if log_path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        time.sleep(0.05)
    raise AssertionError(f"the listener printed no port in {log_path}")


def test_holders_and_holds_read_the_proc_tree(tmp_path: Path) -> None:
    """On a /proc tree made for the test: the listening socket is told from a connection on
    the same port, and a process of another pid namespace is a container's."""
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
    rows = [
        # 127.0.0.1:19092 (0x4A94) listening (0A), socket inode 111
        "   0: 0100007F:4A94 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0  0 111 1",
        # a connection to that port (01, established), socket inode 222
        "   1: 0100007F:4A94 0100007F:D431 01 00000000:00000000 00:00000000 00000000  0  0 222 1",
    ]
    (proc / "net" / "tcp").write_text(header + "\n".join(rows) + "\n")
    (proc / "net" / "tcp6").write_text(header)
    (proc / "self" / "ns").mkdir(parents=True)
    (proc / "self" / "ns" / "pid").symlink_to("pid:[4026531836]")

    def process_entry(pid: int, argv0: str, cwd: str, ns: str, fds: list[str]) -> None:
        entry = proc / str(pid)
        (entry / "fd").mkdir(parents=True)
        (entry / "ns").mkdir()
        (entry / "cmdline").write_bytes(argv0.encode() + b"\0kafka.Kafka\0")
        (entry / "cwd").symlink_to(cwd)
        (entry / "ns" / "pid").symlink_to(ns)
        for fd, target in enumerate(fds):
            (entry / "fd" / str(fd)).symlink_to(target)

    # A client of the broker (a worker), in this namespace: not the listener.
    process_entry(40, "/usr/bin/python3", "/srv/hito", "pid:[4026531836]", ["socket:[222]"])
    # The compose stack's broker: host network, its own pid namespace.
    process_entry(
        41, "/usr/bin/java", "/opt/kafka", "pid:[4026532201]", ["/dev/null", "socket:[111]"]
    )

    assert ports.holders(19092, proc) == [
        ports.Holder(pid=41, command="java", cwd=Path("/opt/kafka"), container=True)
    ]
    assert ports.holds(41, 19092, proc) is True
    assert ports.holds(40, 19092, proc) is False
    assert ports.holds(99, 19092, proc) is None  # no such process: cannot tell
    assert ports.holders(19093, proc) == []
    whose, advice = manager._whose(
        HitoSettings(state_dir=tmp_path / "mine"), ports.holders(19092, proc)[0]
    )
    assert (whose, advice) == (
        "pid 41 (java), in a container",
        "Stop it (`docker compose down` for the compose stack)",
    )


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("kafka://127.0.0.1:19092", ("127.0.0.1", 19092)),
        ("http://[::1]:19090", ("::1", 19090)),
        ("kafka://::1:19092", ("::1", 19092)),  # KafkaNode.url: host:port, unbracketed
        ("http://localhost", None),  # no port: nothing to check
    ],
)
def test_a_services_address_is_read_from_its_url(url: str, address: tuple[str, int] | None) -> None:
    assert manager._address(url) == address
