"""`hito devices import` on real files: the settings' YAML or a CSV in, a 0600 registry file
out that a worker's settings can name (no keys file then), and no key printed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hito.cli import app
from hito.devices import DeviceRegistry
from hito.settings import DEV_DIR, HitoSettings
from hito.settings.sections import MissingSecret

DEV_REGISTRY = (DEV_DIR / "devices.dev.yaml", DEV_DIR / "device-keys.dev.yaml")


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["devices", "import", *args])
    return result.exit_code, result.output + str(result.exception or "")


def test_the_settings_yaml_becomes_a_registry_file_the_settings_can_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "registry.bin"
    code, printed = _run(monkeypatch, "--out", str(out))
    assert code == 0, printed
    assert "17 devices (0 revoked) at 4 sites" in printed
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    yaml_devices = DeviceRegistry.load(*DEV_REGISTRY).devices
    assert DeviceRegistry.load(out).devices == yaml_devices
    keys = [d.key.hex() for d in yaml_devices.values()]
    assert not any(key[i : i + 8] in printed for key in keys for i in range(len(key) - 7))

    # Production: a registry file needs no keys file setting.
    monkeypatch.delenv("HITO_PROFILE")
    monkeypatch.delenv("HITO_PIPELINE__DEVICE_KEYS_FILE", raising=False)
    monkeypatch.setenv("HITO_PIPELINE__DEVICES_FILE", str(out))
    assert HitoSettings().pipeline.registry_files() == (out, None)
    monkeypatch.setenv("HITO_PIPELINE__DEVICES_FILE", str(tmp_path / "devices.yaml"))
    with pytest.raises(MissingSecret, match="HITO_PIPELINE__DEVICE_KEYS_FILE"):
        HitoSettings().pipeline.registry_files()


def test_a_csv_is_imported_and_a_bad_one_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    csv_file, out = tmp_path / "devices.csv", tmp_path / "registry.bin"
    key = "ab" * 32
    csv_file.write_text(
        "device_id,site,kind,status,key\n"
        f"dev-001,s1,sensor,active,{key}\ndev-002,s2,drone,revoked,{key}\n"
    )
    code, printed = _run(monkeypatch, "--csv", str(csv_file), "--out", str(out))
    assert code == 0, printed
    registry = DeviceRegistry.load(out)
    assert [(d.device_id, d.site, d.kind, d.revoked) for d in registry.devices.values()] == [
        ("dev-001", "s1", "sensor", False),
        ("dev-002", "s2", "drone", True),
    ]
    out.unlink()
    csv_file.write_text(f"device_id,site,kind,status,key\ndev-001,s1,sensor,active,{key}0\n")
    code, printed = _run(monkeypatch, "--csv", str(csv_file), "--out", str(out))
    assert code != 0 and "line 2: key of dev-001 is not hex" in printed
    assert key not in printed and not out.exists()
