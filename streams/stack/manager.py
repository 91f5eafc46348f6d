"""Bring the local stack up, report on it and take it down. Used by the CLI and by tests."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hito.settings import HitoSettings
from hito.stack import ports, process
from hito.stack.kafka import recorded_brokers
from hito.stack.services import SERVICES, Runner, Service, services

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A service could not be installed, started or made healthy."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    purpose: str
    pid: int | None
    healthy: bool
    url: str
    data_dir: str
    log_path: str


def stack_settings(settings: HitoSettings, *, strict: bool = True) -> HitoSettings:
    """The settings with the broker count the state directory's Kafka was formatted with
    (`hito up --brokers 3` records it), so `hito status` and `hito down` see every node.
    Raises StackError when the settings ask for another count explicitly (unless not
    ``strict``: stopping or wiping what is there): a cluster cannot be made from a single
    broker's data, nor the reverse."""
    recorded = recorded_brokers(settings)
    kafka = settings.kafka
    if recorded is None and (settings.state_dir / "kafka" / "data" / "meta.properties").exists():
        recorded = 1  # formatted before the count was recorded
    if recorded is None or recorded == kafka.brokers:
        return settings
    if strict and "brokers" in kafka.model_fields_set:
        raise StackError(
            f"{settings.state_dir} holds a Kafka of {recorded} broker(s), not {kafka.brokers}: "
            "use another HITO_STATE_DIR, or delete its Kafka data first (`hito down --wipe --only "
            "kafka`: the topics only; InfluxDB's aggregates and the pager's pages stay)"
        )
    return settings.model_copy(update={"kafka": kafka.model_copy(update={"brokers": recorded})})


def status(settings: HitoSettings) -> list[ServiceStatus]:
    """Health of every service, whoever started it."""
    out = []
    settings = stack_settings(settings)
    for svc in services(settings):
        files = svc.files(settings)
        out.append(
            ServiceStatus(
                name=svc.name,
                purpose=svc.purpose,
                pid=process.read_pid(files),
                healthy=svc.healthy(settings),
                url=svc.url(settings),
                data_dir=str(svc.data_dir(settings)),
                log_path=str(files.log_path),
            )
        )
    return out


def outdated(settings: HitoSettings) -> list[str]:
    """Services running another version than the settings name (a stack started by an older
    Hito: `hito up` leaves a healthy service alone), each with what to do about it."""
    settings = stack_settings(settings)
    out = []
    for svc in services(settings):
        found = svc.versions(settings)
        if found is not None and found[0] != found[1]:
            out.append(
                f"{svc.name} {found[1]} is running where {found[0]} is configured: "
                f"`hito down` and `hito up` start {found[0]}"
            )
    return out


def up(
    settings: HitoSettings,
    run: Runner,
    *,
    timeout_s: float = 180.0,
    only: list[str] | None = None,
) -> list[str]:
    """Install what is missing, start what is not running, wait until all are healthy.

    Idempotent: a healthy service of this state directory is left alone. Returns the names of
    the services it started. ``only`` limits it to the named services (a test's own Kafka
    cluster). Raises StackError when another process holds a chosen service's port
    (``foreign``): before installing or starting anything, or, when another stack took the
    port while this one started (two `hito up` at once), once that is seen.
    """
    started: list[str] = []
    settings = stack_settings(settings)
    chosen = [s for s in services(settings) if only is None or s.name in only]
    with process.exclusive_lock(settings.state_dir / "stack.lock"):
        taken = foreign(settings, chosen)
        if taken:
            raise StackError(_refusal(settings, taken, "nothing was started"))
        for svc in chosen:
            svc.install(settings, run)
        for svc in chosen:
            if svc.healthy(settings):
                log.info("%s already healthy at %s", svc.name, svc.url(settings))
                continue
            if process.read_pid(svc.files(settings)) is None:
                svc.prepare(settings)
                process.start(
                    svc.argv(settings),
                    svc.files(settings),
                    cwd=svc.data_dir(settings),
                    env=svc.env(settings),
                )
                started.append(svc.name)
        for svc in chosen:
            _wait_healthy(svc, settings, timeout_s)
            svc.after_start(settings)
    return started


@dataclass(frozen=True)
class Taken:
    """A chosen service's port held by another process than this state directory's service
    (it runs none, or not the one listening): whose it is, as far as this user can see, and
    what to do about it."""

    service: str
    port: int
    whose: str
    advice: str


def foreign(settings: HitoSettings, chosen: list[Service]) -> list[Taken]:
    """The services of ``chosen`` whose port another process holds: this state directory runs
    no process for the service, or the process listening is not the one its pid file names
    (when this user can see who listens; when not, the pid file is trusted).

    Only the port clients use (``url``) is checked; a Kafka controller port held by another
    program still shows as the broker's start-up error ("Address already in use" in its log).
    """
    out = []
    for svc in chosen:
        where = _address(svc.url(settings))
        if where is None or not ports.accepts(*where):
            continue
        pid = process.read_pid(svc.files(settings))
        if pid is not None and ports.holds(pid, where[1]) is not False:
            continue
        found = ports.holders(where[1])
        whose, advice = _whose(settings, found[0] if found else None)
        out.append(Taken(svc.name, where[1], whose, advice))
    return out


def _address(url: str) -> tuple[str, int] | None:
    """(host, port) of a service's URL; an IPv6 host with or without brackets."""
    host, _, port = urlsplit(url).netloc.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def _refusal(settings: HitoSettings, taken: list[Taken], done: str) -> str:
    """What ``hito up`` says when it meets ``taken`` ports; ``done``: what it started."""
    advice = dict.fromkeys(t.advice for t in taken)  # in order, each once
    return "\n".join(
        [
            f"another stack answers on this stack's ports (state directory "
            f"{settings.state_dir}); {done}:",
            *(f"  {t.service}: port {t.port}, {t.whose}" for t in taken),
            *(f"{line}." for line in advice),
            'Then run `hito up` again, or give this stack other ports (README.md, "The local '
            'stack").',
        ]
    )


# Every service's name, which is its data directory's: a cluster's nodes too (at most 5).
_SERVICE_NAMES = {svc.name for svc in SERVICES} | {f"kafka-{n}" for n in range(2, 6)}


def _whose(settings: HitoSettings, found: ports.Holder | None) -> tuple[str, str]:
    if found is None:
        return (
            "a process this user cannot see (another user's, or a container's)",
            "Stop it (`docker compose down` for the compose stack)",
        )
    name = f"pid {found.pid} ({found.command})"
    if found.container:
        return (f"{name}, in a container", "Stop it (`docker compose down` for the compose stack)")
    # hito up starts each service in its data directory, <state dir>/<service name>.
    if found.cwd is None or found.cwd.name not in _SERVICE_NAMES:
        return (f"{name}, working directory {found.cwd or '?'}", f"Stop pid {found.pid}")
    other, held_by = found.cwd.parent, Service(found.cwd.name, "")
    # A service its stack has lost track of: `hito down` there would not stop it.
    if other == settings.state_dir.resolve():
        pid_path = held_by.files(settings).pid_path
        lost = "is gone" if not pid_path.exists() else "names another process"
        return (
            f"{name}: this state directory's {held_by.name}, whose pid file {pid_path} {lost}",
            f"Stop it: `kill {found.pid}`",
        )
    theirs = held_by.files(settings.model_copy(update={"state_dir": other})).pid_path
    if not theirs.exists():
        return (
            f"{name}: the {held_by.name} of the stack in {other}, whose pid file {theirs} is gone",
            f"Stop it: `kill {found.pid}`",
        )
    return (
        f"{name}: the {held_by.name} of the stack in {other}",
        f"Stop that stack: `HITO_STATE_DIR={other} hito down`",
    )


def _wait_healthy(svc: Service, settings: HitoSettings, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    files = svc.files(settings)
    while time.monotonic() < deadline:
        # Whether it still runs first: a service that died on "address already in use" (another
        # stack's `hito up` took the port after this one looked) must not pass for healthy
        # through the other's answers.
        if process.read_pid(files) is None:
            raise StackError(
                f"{svc.name} exited during start-up; see {files.log_path}:\n"
                + _tail(files.log_path)
            )
        if svc.healthy(settings):
            taken = foreign(settings, [svc])
            if taken:
                done = f"its {svc.name} was started, but another process took the port first"
                raise StackError(_refusal(settings, taken, done))
            return
        time.sleep(0.5)
    raise StackError(
        f"{svc.name} not healthy after {timeout_s:.0f} s; see {files.log_path}:\n"
        + _tail(files.log_path)
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        with path.open("rb") as fh:
            text = fh.read()[-8000:].decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def down(settings: HitoSettings, *, wipe: bool = False, only: list[str] | None = None) -> list[str]:
    """Stop the services of this state directory (reverse start order); optionally wipe data.

    ``only`` limits it to the named services (a test session stops just what it started).
    """
    stopped = []
    settings = stack_settings(settings, strict=False)  # what the state directory holds
    with process.exclusive_lock(settings.state_dir / "stack.lock"):
        for svc in reversed(services(settings)):
            if only is not None and svc.name not in only:
                continue
            if process.stop(svc.files(settings)):
                stopped.append(svc.name)
            if wipe:
                shutil.rmtree(svc.data_dir(settings), ignore_errors=True)
    return stopped
