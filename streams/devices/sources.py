"""Where registries are written by people: the YAML registry with its keys file, and CSV.

Both are validated the same way (ids and sites well-formed, a known kind and status, a hex key
of at least 128 bits for every device and no key without a device) and give ``Device``s in
file order. The YAML pair is for development and small fleets (PyYAML and pydantic need
gigabytes for a million devices); a CSV streams, one row at a time. Keys are secrets: no
message here quotes one (``hito.files.read_secret_yaml``; CSV errors name the line and the
column).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hito.devices.registry import KIND_INDEX, MIN_KEY_BYTES, Device, RegistryError, valid_site
from hito.files import read_secret_yaml
from hito.schemas.envelope import DEVICE_ID_PATTERN, SITE_PATTERN
from hito.schemas.registry import Source

CSV_COLUMNS = ("device_id", "site", "kind", "status", "key")


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


def from_yaml(devices_file: Path, keys_file: Path) -> Iterator[Device]:
    """The YAML registry's devices with their keys (checked as a whole first: a device
    without a key, or a key without a device, fails before any device is given)."""
    # Not a secret, but read as one: a secret file named here by mistake (the keys file, a
    # token file) must not be quoted in the error. Its device ids may be: they say which
    # entry is wrong (a key of the keys file, which may look like one, is never echoed).
    entries = read_secret_yaml(devices_file, _RegistryFile, also_named=_is_device_id).devices
    keys = read_secret_yaml(keys_file, _KeysFile).keys
    bad_ids = [d for d in entries if not re.fullmatch(DEVICE_ID_PATTERN, d)]
    if bad_ids:
        raise RegistryError(f"device ids not matching {DEVICE_ID_PATTERN}: {bad_ids}")
    missing = sorted(set(entries) - set(keys))
    extra = sorted(set(keys) - set(entries))
    if missing or extra:
        raise RegistryError(f"devices without keys: {missing}; keys without devices: {extra}")
    for device_id, entry in entries.items():
        key = _key(keys[device_id], f"key of {device_id}")
        yield Device(device_id, entry.site, entry.kind, key, entry.status == "revoked")


def _is_device_id(name: str) -> bool:
    return re.fullmatch(DEVICE_ID_PATTERN, name) is not None


def from_csv(path: Path) -> Iterator[Device]:
    """Devices of a CSV with the header ``device_id,site,kind,status,key`` (status
    ``active`` or ``revoked``; key in hex), one row each."""
    with path.open(newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
            raise RegistryError(f"{path}: the first line must be {','.join(CSV_COLUMNS)}")
        for row in rows:
            line = rows.line_num
            if not row:
                continue
            if len(row) != len(CSV_COLUMNS):
                # The row's content is not repeated: it may hold a key.
                raise RegistryError(f"{path}: line {line}: {len(row)} fields, expected 5")
            device_id, site, kind, status, key = row
            if not re.fullmatch(DEVICE_ID_PATTERN, device_id):
                raise RegistryError(
                    f"{path}: line {line}: device id not matching {DEVICE_ID_PATTERN}: "
                    f"{device_id!r}"
                )
            if not valid_site(site):
                raise RegistryError(f"{path}: line {line}: site not matching {SITE_PATTERN}")
            if kind not in KIND_INDEX:
                raise RegistryError(f"{path}: line {line}: kind {kind!r} is not one of "
                                    f"{', '.join(KIND_INDEX)}")  # fmt: skip
            if status not in ("active", "revoked"):
                raise RegistryError(f"{path}: line {line}: status must be active or revoked")
            yield Device(
                device_id,
                site,
                kind,  # a Source: checked against KIND_INDEX above
                _key(key, f"{path}: line {line}: key of {device_id}"),
                status == "revoked",
            )


def _key(text: str, what: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise RegistryError(f"{what} is not hex") from None
    if len(key) < MIN_KEY_BYTES:
        raise RegistryError(f"{what} is shorter than 128 bits")
    return key
