"""The registry file (``hito devices import``): the same devices as the YAML it came from, a
file taken whole or refused, keys never printed, and the watcher keeping the last good one."""

from __future__ import annotations

import logging
import re
import secrets
import stat
from pathlib import Path

import pytest

from hito.devices import Device, DeviceRegistry, RegistryError, RegistryWatcher, binary, sources
from hito.devices.binary import RegistryFileError
from hito.devices.registry import Columns
from hito.files import SecretFileError
from hito.schemas.envelope import DEVICE_ID_PATTERN
from hito.schemas.registry import Source
from hito.settings import DEV_DIR

DEV_REGISTRY = (DEV_DIR / "devices.dev.yaml", DEV_DIR / "device-keys.dev.yaml")
# Two ids with the same CRC-32 (found by search): lookups must compare ids, not hashes.
COLLIDING = ("collide-fafae8", "collide-1001082")


def _registry_file(tmp_path: Path, devices: list[Device]) -> Path:
    path = tmp_path / "registry.bin"
    binary.write(path, Columns.of(devices))
    return path


def _devices(n: int = 40) -> list[Device]:
    kinds: tuple[Source, ...] = ("checkpoint", "sensor", "drone")
    return [
        Device(f"dev-{i:03d}", f"site-{i % 3}", kinds[i % 3], bytes([i]) * 32, i % 7 == 0)
        for i in range(n)
    ]


def test_yaml_to_registry_file_gives_the_same_devices_in_the_same_order(
    tmp_path: Path,
) -> None:
    from_yaml = DeviceRegistry.load(*DEV_REGISTRY)
    path = tmp_path / "registry.bin"
    binary.write(path, Columns.of(sources.from_yaml(*DEV_REGISTRY)))
    from_file = DeviceRegistry.load(path)  # no keys file: the registry file holds the keys
    assert list(from_file.devices.items()) == list(from_yaml.devices.items())
    assert [d.key for d in from_file.devices.values()] == [
        d.key for d in from_yaml.devices.values()
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds keys


def test_every_device_is_found_at_its_index_and_nothing_else_is(tmp_path: Path) -> None:
    devices = [*_devices(), *(Device(i, "site-x", "sensor", b"k" * 16) for i in COLLIDING)]
    registry = DeviceRegistry.load(_registry_file(tmp_path, devices))
    for i, device in enumerate(devices):
        found = registry.get(device.device_id)
        assert found == device and found is not None and found.index == i
        assert found.key == device.key and found.revoked == device.revoked
    assert registry.index_of(COLLIDING[1]) == len(devices) - 1
    for unknown in ("dev-999", "dev-00", "collide-0", "dev-0000", ""):
        assert registry.get(unknown) is None and unknown not in registry
    assert len(registry) == len(devices)
    assert registry.revoked_count() == sum(d.revoked for d in devices)


def test_keys_of_several_lengths_round_trip(tmp_path: Path) -> None:
    devices = [Device(f"dev-{i:03d}", "s1", "drone", bytes([i]) * (16 + i)) for i in range(5)]
    registry = DeviceRegistry.load(_registry_file(tmp_path, devices))
    assert registry.columns.key_width == 0
    assert [d.key for d in registry.devices.values()] == [d.key for d in devices]


def test_an_empty_registry_round_trips(tmp_path: Path) -> None:
    assert len(DeviceRegistry.load(_registry_file(tmp_path, []))) == 0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[:-1], "truncated"),
        (lambda data: data[:20], "truncated registry file (no complete header)"),
        (lambda data: data + b"\0", "has trailing bytes"),
        (lambda data: data[:-40] + bytes([data[-40] ^ 1]) + data[-39:], "corrupted"),
        (lambda data: data[:8] + b"\x02" + data[9:], "registry file version 2"),
    ],
)
def test_a_damaged_file_is_refused_with_the_reason(
    tmp_path: Path, damage: object, message: str
) -> None:
    path = _registry_file(tmp_path, _devices())
    assert callable(damage)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(RegistryFileError, match=re.escape(message)) as refused:
        DeviceRegistry.load(path)
    assert str(path) in str(refused.value)


def test_the_watcher_keeps_the_last_good_registry_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    devices = _devices()
    path = _registry_file(tmp_path, devices)
    first = DeviceRegistry.load(path)
    now = [0.0]
    watcher = RegistryWatcher(first, path, None, interval_s=1.0, clock=lambda: now[0])
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # a copy cut short
    now[0] = 1.0
    with caplog.at_level(logging.ERROR, logger="hito.devices"):
        assert watcher.current() is first
    assert "truncated" in caplog.text
    # A revocation, written as the import writes (atomically): taken at the next check.
    revoked = [Device(d.device_id, d.site, d.kind, d.key, True) for d in devices]
    binary.write(path, Columns.of(revoked))
    now[0] = 2.0
    fresh = watcher.current()
    assert fresh is not first and fresh.revoked_count() == len(devices)


def test_the_watcher_moves_from_yaml_to_a_registry_file(tmp_path: Path) -> None:
    """devices_file may point at either: what is read is decided by the content."""
    devices_file, keys_file = tmp_path / "devices.yaml", tmp_path / "keys.yaml"
    devices_file.write_text(DEV_REGISTRY[0].read_text())
    keys_file.write_text(DEV_REGISTRY[1].read_text())
    first = DeviceRegistry.load(devices_file, keys_file)
    now = [0.0]
    watcher = RegistryWatcher(first, devices_file, keys_file, interval_s=1.0, clock=lambda: now[0])
    binary.write(devices_file, Columns.of(_devices()))
    now[0] = 1.0
    assert list(watcher.current().devices) == [d.device_id for d in _devices()]


def test_the_id_check_of_registry_files_is_the_envelope_pattern() -> None:
    allowed = {chr(c) for c in range(128) if re.fullmatch(DEVICE_ID_PATTERN, chr(c) * 3)}
    assert allowed == set(binary._ID_BYTES.decode())
    assert binary._ID_LENGTHS == (3, 64)
    assert re.fullmatch(DEVICE_ID_PATTERN, "a" * 64) and not re.fullmatch(
        DEVICE_ID_PATTERN, "a" * 65
    )


def test_entries_carried_over_when_devices_are_appended_or_moved() -> None:
    old = DeviceRegistry(_devices(10))
    appended = DeviceRegistry(_devices(12))
    assert old.same_entries(appended) and not appended.same_entries(old)
    assert old.moved_to(appended).tolist() == list(range(10))
    shuffled = DeviceRegistry([*_devices(10)[5:], *_devices(10)[:3]])  # 3, 4 removed
    assert old.moved_to(shuffled).tolist() == [5, 6, 7, -1, -1, 0, 1, 2, 3, 4]
    # Ids sharing a hash are told apart by their bytes.
    a, b = (Device(i, "site-x", "sensor", b"k" * 16) for i in COLLIDING)
    assert DeviceRegistry([a, b]).moved_to(DeviceRegistry([b, a])).tolist() == [1, 0]
    assert DeviceRegistry([a, *_devices(3)]).moved_to(DeviceRegistry([b])).tolist() == [-1] * 4


def _csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "devices.csv"
    path.write_text("device_id,site,kind,status,key\n" + "".join(f"{r}\n" for r in rows))
    return path


def test_a_csv_gives_the_same_devices_as_the_yaml(tmp_path: Path) -> None:
    yaml_devices = list(sources.from_yaml(*DEV_REGISTRY))
    rows = [
        f"{d.device_id},{d.site},{d.kind},{'revoked' if d.revoked else 'active'},{d.key.hex()}"
        for d in yaml_devices
    ]
    assert list(sources.from_csv(_csv(tmp_path, *rows))) == yaml_devices


KEY = secrets.token_hex(32)  # fresh per run: it cannot be in any fixture text


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (f"Bad_Id,s1,sensor,active,{KEY}", "line 2: device id not matching"),
        (f"dev-1,s1,sensor,active,{KEY}Z", "line 2: key of dev-1 is not hex"),
        (f"dev-1,s1,sensor,active,{KEY[:30]}", "line 2: key of dev-1 is shorter than 128 bits"),
        (f"dev-1,s1,car,active,{KEY}", "line 2: kind 'car' is not one of"),
        (f"dev-1,s1,sensor,gone,{KEY}", "line 2: status must be active or revoked"),
        (f"dev-1,S 1,sensor,active,{KEY}", "line 2: site not matching"),
        (f"dev-1,s1,sensor,{KEY}", "line 2: 4 fields, expected 5"),
    ],
)
def test_a_bad_csv_row_is_refused_naming_the_line_never_the_key(
    tmp_path: Path, row: str, message: str
) -> None:
    with pytest.raises(RegistryError, match=re.escape(message)) as refused:
        Columns.of(sources.from_csv(_csv(tmp_path, row)))
    assert not any(KEY[i : i + 8] in str(refused.value) for i in range(len(KEY) - 7))


def test_a_device_twice_in_a_csv_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path, f"dev-1,s1,sensor,active,{KEY}", f"dev-1,s2,sensor,active,{KEY}")
    with pytest.raises(RegistryError, match="device dev-1 listed twice"):
        Columns.of(sources.from_csv(path))


def test_a_yaml_registry_without_its_keys_file_is_refused() -> None:
    with pytest.raises(RegistryError, match="needs its keys file"):
        DeviceRegistry.load(DEV_REGISTRY[0])


def test_a_yaml_registry_error_names_the_device_but_never_a_key(tmp_path: Path) -> None:
    """The registry is read as a secret file would be (a secret file named as it by mistake
    is never quoted), but its device ids are echoed: they say which entry is wrong."""
    devices = tmp_path / "devices.yaml"
    devices.write_text("devices:\n  cl-new-ckpt-09: {site: chacalluta, kind: checkpointt}\n")
    keys = tmp_path / "keys.yaml"
    key = "ab" * 32
    keys.write_text(f"keys:\n  cl-new-ckpt-09: {key}\n")
    with pytest.raises(SecretFileError, match=r"devices\.cl-new-ckpt-09\.kind: literal_error"):
        DeviceRegistry.load(devices, keys)
    # The keys file's own errors still echo no name it holds: a key may look like an id.
    keys.write_text(f"keys:\n  cl-new-ckpt-09: [{key}]\n")
    devices.write_text("devices:\n  cl-new-ckpt-09: {site: chacalluta, kind: checkpoint}\n")
    with pytest.raises(SecretFileError) as refused:
        DeviceRegistry.load(devices, keys)
    assert "keys.<unknown>: string_type" in str(refused.value) and key not in str(refused.value)
