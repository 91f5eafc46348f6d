"""What every local service has in common: where its files live, and the install step's runner.

Subclasses (hito.stack.kafka, hito.stack.monitoring, hito.stack.services) fill in how each is
installed, prepared, started and checked.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hito.settings import HitoSettings
from hito.stack.process import ProcessFiles

Runner = Callable[[list[str], Path, str], None]
"""Runs an install command, logging to a file and showing progress: (argv, log_path, label)."""


@dataclass(frozen=True)
class Service:
    """One local service. Subclasses fill in the details; all methods take the settings."""

    name: str
    purpose: str

    def files(self, settings: HitoSettings) -> ProcessFiles:
        return ProcessFiles(
            pid_path=settings.state_dir / "run" / f"{self.name}.pid",
            log_path=settings.state_dir / "logs" / f"{self.name}.log",
        )

    def data_dir(self, settings: HitoSettings) -> Path:
        return settings.state_dir / self.name

    def install(self, settings: HitoSettings, run: Runner) -> None:
        """Fetch or build what is missing (idempotent; a no-op when cached)."""

    def prepare(self, settings: HitoSettings) -> None:
        """Create data directories and one-time state before the first start."""
        self.data_dir(settings).mkdir(parents=True, exist_ok=True)

    def argv(self, settings: HitoSettings) -> list[str]:
        raise NotImplementedError

    def env(self, settings: HitoSettings) -> dict[str, str]:
        """Variables added to the environment the service starts in."""
        return {}

    def url(self, settings: HitoSettings) -> str:
        raise NotImplementedError

    def healthy(self, settings: HitoSettings) -> bool:
        raise NotImplementedError

    def after_start(self, settings: HitoSettings) -> None:
        """One-time initialisation once the service is healthy (idempotent)."""

    def versions(self, settings: HitoSettings) -> tuple[str, str] | None:
        """(configured version, the running instance's version), for services that say."""
        return None


def http_json(url: str) -> object:
    """The JSON an HTTP GET answers, or None when there is no readable answer."""
    try:
        r = httpx.get(url, timeout=2.0)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def prometheus_query(prometheus_url: str, promql: str, timeout_s: float = 5.0) -> list[Any]:
    """An instant query's result (one item per series). Raises httpx.HTTPError when Prometheus
    does not answer 200, KeyError or ValueError when the answer is not Prometheus's."""
    r = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=timeout_s)
    r.raise_for_status()
    result: list[Any] = r.json()["data"]["result"]
    return result


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def require_command(name: str, settings: HitoSettings, run: Runner) -> str:
    """The path of a Debian-packaged command, installing the packages when it is missing."""
    found = shutil.which(name)
    if found is None:
        script = settings.infra_dir / "install-debian.sh"
        run(["bash", str(script)], settings.cache_dir / "logs" / "debian.log", "Debian packages")
        found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is still missing after {settings.infra_dir}/install-debian.sh")
    return found


def require_toolchain(name: str, why: str) -> str:
    """A build toolchain the machine provides itself (Go, Rust): never installed by Hito."""
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"`{name}` is not on PATH; it is needed to build {why} (README.md)")
    return found


def cached_binary(settings: HitoSettings, name: str, version: str) -> Path:
    """A binary built once into the cache: ``<cache_dir>/bin/<name>-v<version>``."""
    return settings.cache_dir / "bin" / f"{name}-v{version.lstrip('v')}"
