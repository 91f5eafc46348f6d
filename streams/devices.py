"""The device registry: which devices may publish, for which site and source, with which key.

The registry file (YAML, path from settings) lists devices; keys come from a separate secrets
file so the registry itself can be reviewed and shared. Both are checked at start-up: a device
without a key, or a key without a device, fails fast. Workers re-read both when they change
(RegistryWatcher), so revoking a device needs no restart.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field

from hito.files import SecretFileError, read_secret_yaml
from hito.schemas.envelope import DEVICE_ID_PATTERN, SITE_PATTERN
from hito.schemas.registry import Source

log = logging.getLogger(__name__)


class _DeviceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    site: str = Field(pattern=SITE_PATTERN)
    kind: Source
    status: Literal["active", "revoked"] = "active"


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    devices: dict[str, _DeviceEntry]


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: dict[str, str]


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    site: str
    kind: Source
    key: bytes = field(repr=False)  # a secret: never in logs or test output
    revoked: bool = False


class RegistryError(ValueError):
    """The registry or key file is inconsistent; raised at start-up."""


_KINDS: tuple[Source, ...] = get_args(Source)
_KIND_INDEX = {kind: i for i, kind in enumerate(_KINDS)}


class DeviceRegistry:
    """Registered devices by id, packed: a worker holds every device of the deployment, and at
    a million devices a ``Device`` object per entry was the largest part of its memory. Each
    entry is one ``bytes`` (site index: 2 bytes, kind, revoked, then the key); :meth:`get`
    builds the ``Device``. Ids are interned, so the ``device_id`` of what :meth:`get` returns
    is the one string object every per-device structure of the worker keys on."""

    __slots__ = ("_packed", "_sites")

    def __init__(self, devices: Mapping[str, Device] | Iterable[Device]) -> None:
        """From ``{device_id: Device}``, or from Devices one by one (a large registry need not
        exist twice in memory while it is packed)."""
        self._sites: list[str] = []
        self._packed: dict[str, bytes] = {}
        site_index: dict[str, int] = {}
        if isinstance(devices, Mapping):
            for device_id, d in devices.items():
                if device_id != d.device_id:
                    raise RegistryError(f"entry {device_id!r} holds device {d.device_id!r}")
            devices = devices.values()
        valid_id = re.compile(DEVICE_ID_PATTERN).fullmatch
        for d in devices:
            # An invariant the validator relies on: every registered id is a well-formed one.
            if not valid_id(d.device_id):
                raise RegistryError(f"device id not matching {DEVICE_ID_PATTERN}: {d.device_id!r}")
            i = site_index.get(d.site)
            if i is None:
                if len(self._sites) > 0xFFFF:
                    raise RegistryError("more than 65,536 sites")
                i = site_index[d.site] = len(self._sites)
                self._sites.append(sys.intern(d.site))
            header = bytes((i >> 8, i & 0xFF, _KIND_INDEX[d.kind], d.revoked))
            self._packed[sys.intern(d.device_id)] = header + d.key

    def get(self, device_id: str) -> Device | None:
        packed = self._packed.get(device_id)
        if packed is None:
            return None
        return Device(
            # Registered, so interned at load: this returns that same string object.
            sys.intern(device_id),
            self._sites[(packed[0] << 8) | packed[1]],
            _KINDS[packed[2]],
            packed[4:],
            bool(packed[3]),
        )

    @property
    def devices(self) -> dict[str, Device]:
        """Every device (built on each call: for tools and tests, not the hot path)."""
        out = {}
        for device_id in self._packed:
            device = self.get(device_id)
            assert device is not None
            out[device_id] = device
        return out

    def __len__(self) -> int:
        return len(self._packed)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._packed

    def revoked_count(self) -> int:
        return sum(packed[3] for packed in self._packed.values())

    @classmethod
    def load(cls, devices_file: Path, keys_file: Path) -> DeviceRegistry:
        entries = _RegistryFile.model_validate(yaml.safe_load(devices_file.read_text())).devices
        keys = read_secret_yaml(keys_file, _KeysFile).keys
        bad_ids = [d for d in entries if not re.fullmatch(DEVICE_ID_PATTERN, d)]
        if bad_ids:
            raise RegistryError(f"device ids not matching {DEVICE_ID_PATTERN}: {bad_ids}")
        missing = sorted(set(entries) - set(keys))
        extra = sorted(set(keys) - set(entries))
        if missing or extra:
            raise RegistryError(f"devices without keys: {missing}; keys without devices: {extra}")
        return cls(_devices(entries, keys))


def _devices(entries: dict[str, _DeviceEntry], keys: dict[str, str]) -> Iterator[Device]:
    for device_id, entry in entries.items():
        try:
            key = bytes.fromhex(keys[device_id])
        except ValueError as exc:
            raise RegistryError(f"key of {device_id} is not hex") from exc
        if len(key) < 16:
            raise RegistryError(f"key of {device_id} is shorter than 128 bits")
        yield Device(device_id, entry.site, entry.kind, key, entry.status == "revoked")


class RegistryWatcher:
    """The registry the workers validate against, re-read when its files change.

    A revocation (``status: revoked``) or a new device takes effect within ``interval_s``,
    without restarting workers. Files that fail to load (half-written, inconsistent) keep the
    last good registry, with an error in the log: a bad edit must not open or close the border.
    """

    def __init__(
        self,
        registry: DeviceRegistry,
        devices_file: Path,
        keys_file: Path,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._files = (devices_file, keys_file)
        self._interval_s = interval_s
        self._clock = clock
        self._stamp = self._stat()
        self._next_check = clock() + interval_s

    def _stat(self) -> tuple[tuple[int, int, int, int] | None, ...]:
        # Inode and ctime too: an atomic replace, or a copy that keeps the old mtime (cp -p,
        # rsync -a), still counts as a change.
        out: list[tuple[int, int, int, int] | None] = []
        for path in self._files:
            try:
                st = path.stat()
            except OSError:
                out.append(None)
            else:
                out.append((st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
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
            fresh = DeviceRegistry.load(*self._files)
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
