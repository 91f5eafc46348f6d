"""How Prometheus finds the workers: file service discovery.

Each `hito worker` writes one target file, ``<worker_targets_dir>/worker-<host>-<port>.json``,
when its metrics endpoint is up, and removes it when it stops cleanly. Prometheus watches the
directory (``file_sd_configs`` of job ``hito-worker``) and scrapes whatever is listed, so a
worker started anywhere, on any port, is scraped within seconds without a config change.

A worker that dies (kill -9, a crash, a lost host) leaves its file: Prometheus keeps scraping
the dead address, ``up`` is 0, and ``WorkerDown`` pages. A worker stopped cleanly takes its
file away: it is no longer a target, so its stop is not an alert (scaling down is planned);
if it was the last worker, ``WorkerDown`` (critical: no worker at all) still pages.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from hito.files import write_private
from hito.settings import HitoSettings
from hito.stack import process


def worker_targets_dir(settings: HitoSettings) -> Path:
    """The directory of the workers' scrape target files."""
    configured = settings.prometheus.worker_targets_dir
    return configured or settings.state_dir / "prometheus" / "targets" / "workers"


def target_file(settings: HitoSettings, address: str) -> Path:
    host, _, port = address.rpartition(":")
    return worker_targets_dir(settings) / f"worker-{host}-{port}.json"


def register(settings: HitoSettings, address: str, labels: dict[str, str]) -> Path:
    """Write the target file of a worker serving metrics at ``address`` (host:port).

    Atomic: written under a name Prometheus' ``*.json`` pattern does not match, then renamed,
    so Prometheus never reads half a file (a malformed file would keep its old targets)."""
    path = target_file(settings, address)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps([{"targets": [address], "labels": labels}]) + "\n")
    tmp.replace(path)
    return path


def unregister(path: Path) -> None:
    path.unlink(missing_ok=True)


def registered(settings: HitoSettings) -> list[str]:
    """Every address listed in the target directory (dead workers' too)."""
    out: list[str] = []
    for path in sorted(worker_targets_dir(settings).glob("*.json")):
        try:
            groups = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out += [t for group in groups for t in group.get("targets", [])]
    return out


def local_marker(settings: HitoSettings, address: str, pid: int | None = None) -> Path:
    """Where a worker notes its metrics address for `hito probe --worker` on the same host.

    Named by host, pid *and* port: in compose every replica has the host's name (host
    network) and pid 1, so a name of host and pid was one file for all of them — each
    healthcheck probed whichever replica wrote last, and one replica's clean stop removed
    the file the others' healthchecks needed (unhealthy for good)."""
    port = address.rsplit(":", 1)[-1]
    name = f"worker-{socket.gethostname()}-{pid or os.getpid()}-{port}.address"
    return settings.state_dir / "run" / name


def mark_local(settings: HitoSettings, address: str) -> Path:
    """The marker holds the address, then who wrote it: the pid namespace (a container's own)
    and the process's identity (start time, boot), so a probe takes only its own worker's."""
    path = local_marker(settings, address)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = process.identity(os.getpid())
    write_private(
        path, f"{address}\npid_ns={process.pid_namespace() or ''}\n{me.lines() if me else ''}"
    )
    return path


def local_workers(settings: HitoSettings) -> list[str]:
    """Metrics addresses of this host's running workers, as seen from this process: markers
    of another pid namespace (another container's replica) are skipped, and those of this
    namespace naming a dead pid, or a pid now naming another process, are removed."""
    out = []
    pattern = f"worker-{socket.gethostname()}-*.address"
    here = process.pid_namespace() or ""
    for path in sorted((settings.state_dir / "run").glob(pattern)):
        try:
            lines = path.read_text().split()
            pid = int(path.name.removesuffix(".address").rsplit("-", 2)[1])
        except (OSError, ValueError, IndexError):
            continue
        fields = dict(line.partition("=")[::2] for line in lines[1:])
        if fields.get("pid_ns") != here:
            # Another container's replica, or a marker of an older version (named by host and
            # pid only: a host name ending in digits would be read as the pid).
            continue
        recorded = (
            process.ProcessIdentity(fields["start_time"], fields["boot_id"])
            if "start_time" in fields and "boot_id" in fields
            else None
        )
        if lines and process.running(pid, recorded):
            out.append(lines[0])
        else:
            # This namespace's worker that did not stop cleanly (kill -9, a crash, a power
            # cut): nothing else removes its marker, and a host whose worker restarts after
            # every crash gathered one file per crash (177 on a soak machine).
            _remove_if_unchanged(path, "\n".join(lines))
    return out


def _remove_if_unchanged(path: Path, read: str) -> None:
    """Remove a stale marker unless a worker rewrote it since it was read (a new replica with
    the same name); a marker that cannot be removed stays, and the probe goes on."""
    try:
        if "\n".join(path.read_text().split()) == read:
            path.unlink()
    except OSError:
        pass
