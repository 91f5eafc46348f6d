"""The registry the workers validate against, re-read when its files change."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from hito.devices.registry import DeviceRegistry, RegistryError
from hito.files import SecretFileError

log = logging.getLogger(__name__)


class RegistryWatcher:
    """A revocation (``status: revoked``) or a new device takes effect within ``interval_s``,
    without restarting workers, whichever the registry's format. Files that fail to load
    (half-written, inconsistent, a registry file truncated or corrupted) keep the last good
    registry, with an error in the log: a bad edit must not open or close the border.
    """

    def __init__(
        self,
        registry: DeviceRegistry,
        devices_file: Path,
        keys_file: Path | None,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._devices_file = devices_file
        self._keys_file = keys_file
        self._interval_s = interval_s
        self._clock = clock
        self._stamp = self._stat()
        self._next_check = clock() + interval_s

    def _stat(self) -> tuple[tuple[int, int, int, int] | None, ...]:
        # Inode and ctime too: an atomic replace, or a copy that keeps the old mtime (cp -p,
        # rsync -a), still counts as a change.
        out: list[tuple[int, int, int, int] | None] = []
        for path in (self._devices_file, self._keys_file):
            try:
                st = path.stat() if path is not None else None
            except OSError:
                st = None
            out.append(st and (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
        return tuple(out)

    def current(self) -> DeviceRegistry:
        now = self._clock()
        if now < self._next_check:
            return self._registry
        self._next_check = now + self._interval_s
        stamp = self._stat()
        if stamp == self._stamp:
            return self._registry
        try:
            fresh = DeviceRegistry.load(self._devices_file, self._keys_file)
        except OSError as exc:  # e.g. mid-permission change: try again at the next check
            log.error("device registry not readable, keeping the last good one: %s", exc)
            return self._registry
        except (RegistryError, SecretFileError, ValueError, yaml.YAMLError) as exc:
            self._stamp = stamp  # a broken edit is reported once, not on every check
            log.error("device registry not reloaded, keeping the last good one: %s", exc)
            return self._registry
        self._stamp = stamp
        revoked = fresh.revoked_count()
        log.info("device registry reloaded: %d devices, %d revoked", len(fresh), revoked)
        self._registry = fresh
        return fresh
