"""The device registry: which devices may publish, for which site and source, with which key.

The registry file (YAML, path from settings) lists devices; keys come from a separate secrets
file so the registry itself can be reviewed and shared. Both are checked at start-up: a device
without a key, or a key without a device, fails fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import DEVICE_ID_PATTERN, SITE_PATTERN
from schemas.registry import Source


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


@dataclass(frozen=True)
class Device:
    device_id: str
    site: str
    kind: Source
    key: bytes = field(repr=False)  # a secret: never in logs or test output
    revoked: bool = False


class RegistryError(ValueError):
    """The registry or key file is inconsistent; raised at start-up."""


@dataclass(frozen=True)
class DeviceRegistry:
    devices: dict[str, Device]

    def get(self, device_id: str) -> Device | None:
        return self.devices.get(device_id)

    def __len__(self) -> int:
        return len(self.devices)

    @classmethod
    def load(cls, devices_file: Path, keys_file: Path) -> DeviceRegistry:
        entries = _RegistryFile.model_validate(yaml.safe_load(devices_file.read_text())).devices
        keys = _KeysFile.model_validate(yaml.safe_load(keys_file.read_text())).keys
        bad_ids = [d for d in entries if not re.fullmatch(DEVICE_ID_PATTERN, d)]
        if bad_ids:
            raise RegistryError(f"device ids not matching {DEVICE_ID_PATTERN}: {bad_ids}")
        missing = sorted(set(entries) - set(keys))
        extra = sorted(set(keys) - set(entries))
        if missing or extra:
            raise RegistryError(f"devices without keys: {missing}; keys without devices: {extra}")
        devices = {}
        for device_id, entry in entries.items():
            try:
                key = bytes.fromhex(keys[device_id])
            except ValueError as exc:
                raise RegistryError(f"key of {device_id} is not hex") from exc
            if len(key) < 16:
                raise RegistryError(f"key of {device_id} is shorter than 128 bits")
            devices[device_id] = Device(
                device_id, entry.site, entry.kind, key, entry.status == "revoked"
            )
        return cls(devices)
