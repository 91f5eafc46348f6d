"""`hito devices import` on real files: the settings' YAML or a CSV in, a 0600 registry file
out that a worker's settings can name (no keys file then), and no key printed. `hito devices
seq` on what the changelog holds (read for real in tests/integration/pipeline/test_changelog.py):
the seq a silenced device's SDK must start from."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hito.cli import app
from hito.devices import DeviceRegistry
from hito.ops import compacted
from hito.ops.compacted import Latest
from hito.pipeline.stages.dedup import observe
from hito.schemas.envelope import MAX_SEQ
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


def _seq(monkeypatch: pytest.MonkeyPatch, found: list[Latest], *args: str) -> tuple[int, str]:
    """`hito devices seq` over changelog contents ``found``; checks what it asked to read."""
    asked: list[tuple[str, list[str], Any]] = []

    def read_latest(settings: object, topic: str, keys: list[str], **kw: Any) -> list[Latest]:
        asked.append((topic, list(keys), kw["role"]))
        return found

    monkeypatch.setattr(compacted, "read_latest", read_latest)
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal must not cut the number
    result = CliRunner().invoke(app, ["devices", "seq", *args])
    assert asked == [("hito-x-dedup-seq-changelog", [a for a in args if a[0] != "-"][:-1], "admin")]
    return result.exit_code, result.output


AT = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def test_devices_seq_shows_a_silenced_device_the_seq_to_start_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A device that once sent 2^40 (a corrupt counter): nothing below it is new any more. In
    two partitions (two partitioners), the higher mark decides."""
    state = None
    for seq in (0, 1, 2, 5, 2**40):
        state, _ = observe(state, seq, 4096)
    assert state is not None
    found = [
        Latest("ck-0123456789-long-device-id", "17:1:0:0", AT, 1),
        Latest("ck-0123456789-long-device-id", state.to_json(), AT, 3),
        Latest("ck-09"),
    ]
    code, shown = _seq(
        monkeypatch, found, "ck-0123456789-long-device-id", "ck-09", "--app-id", "hito-x"
    )
    assert code == 0, shown
    assert shown.splitlines() == [
        f"ck-0123456789-long-device-id: min_seq {2**40 + 1} (state written "
        "2026-12-05T09:00:00+00:00, partition 1, 3)",
        "ck-09: min_seq 0: no state (no event of it accepted yet, or not this id)",
    ]


def test_devices_seq_says_when_no_seq_is_left_or_the_state_is_unreadable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = [Latest("ck-01", f"{MAX_SEQ}:1:0:0", AT, 0), Latest("ck-02", "garbage", AT, 2)]
    code, shown = _seq(monkeypatch, found, "ck-01", "ck-02", "--app-id", "hito-x", "--json")
    assert code == 0, shown
    marks = json.loads(shown)
    assert [m["min_seq"] for m in marks] == [None, 0]
    assert "only send again under a new device id" in marks[0]["summary"]
    assert "unreadable in partition [2]" in marks[1]["summary"]
