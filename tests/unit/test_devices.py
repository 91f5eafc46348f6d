"""Device revocation: rejected from the moment the registry says so, without a restart."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from hito.devices import DeviceRegistry, RegistryWatcher
from hito.pipeline.stages.validate import Accepted, Rejected, validate
from hito.runtime import limits_of
from hito.schemas.reasons import Reason
from hito.schemas.signing import sign
from hito.settings import HitoSettings

NOW = datetime(2026, 11, 28, 18, 30, tzinfo=UTC)
KEY = "ab" * 32


def _files(tmp_path: Path, status: str = "active") -> tuple[Path, Path]:
    devices, keys = tmp_path / "devices.yaml", tmp_path / "keys.yaml"
    devices.write_text(
        f"devices:\n  sensor-test-01: {{site: sector-test, kind: sensor, status: {status}}}\n"
    )
    keys.write_text(f"keys:\n  sensor-test-01: {KEY}\n")
    return devices, keys


def _event(seq: int) -> bytes:
    env = {
        "event_id": f"0b6f4c9e-6a43-4a53-9d34-7b8f0d3c2a{seq:02d}",
        "schema": "sensor.reading/1",
        "device_id": "sensor-test-01",
        "site": "sector-test",
        "seq": seq,
        "event_time": (NOW - timedelta(seconds=2)).isoformat(),
        "payload": {"sensor_type": "ground", "lat": -18.35, "lon": -70.33, "detections": 1,
                    "battery_pct": 80.0},
    }  # fmt: skip
    env["sig"] = sign(env, bytes.fromhex(KEY))
    return orjson.dumps(env)


def _validate(raw: bytes, registry: DeviceRegistry, settings: HitoSettings) -> object:
    return validate(raw, registry=registry, limits=limits_of(settings.pipeline), now=NOW)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_revoked_device_is_rejected_even_with_a_valid_signature(
    tmp_path: Path, settings: HitoSettings
) -> None:
    active = DeviceRegistry.load(*_files(tmp_path))
    assert isinstance(_validate(_event(1), active, settings), Accepted)
    revoked = DeviceRegistry.load(*_files(tmp_path, "revoked"))
    result = _validate(_event(2), revoked, settings)
    assert isinstance(result, Rejected)
    assert (result.reason, result.detail, result.device_id) == (
        Reason.UNKNOWN_DEVICE,
        "device_id: key revoked",
        "sensor-test-01",
    )


def test_watcher_applies_a_revocation_within_its_interval(
    tmp_path: Path, settings: HitoSettings
) -> None:
    devices, keys = _files(tmp_path)
    clock = FakeClock()
    watcher = RegistryWatcher(
        DeviceRegistry.load(devices, keys), devices, keys, interval_s=5.0, clock=clock
    )
    assert isinstance(_validate(_event(1), watcher.current(), settings), Accepted)
    _files(tmp_path, "revoked")
    clock.now = 4.9  # not yet looked at
    assert isinstance(_validate(_event(2), watcher.current(), settings), Accepted)
    clock.now = 5.0
    result = _validate(_event(3), watcher.current(), settings)
    assert isinstance(result, Rejected) and result.reason is Reason.UNKNOWN_DEVICE
    # And back: reinstated the same way.
    _files(tmp_path, "active")
    clock.now = 10.0
    assert isinstance(_validate(_event(4), watcher.current(), settings), Accepted)


def test_a_broken_registry_edit_keeps_the_last_good_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    devices, keys = _files(tmp_path)
    clock = FakeClock()
    first = DeviceRegistry.load(devices, keys)
    watcher = RegistryWatcher(first, devices, keys, interval_s=1.0, clock=clock)
    devices.write_text("devices:\n  sensor-test-01: {site: sector-test, kind: sens")  # torn
    clock.now = 1.0
    with caplog.at_level(logging.ERROR, logger="hito.devices"):
        assert watcher.current() is first
        clock.now = 2.0
        assert watcher.current() is first
    assert caplog.text.count("device registry not reloaded") == 1  # reported once
    keys.write_text(f"keys:\n  sensor-test-01: {KEY}\n  sensor-test-02: {KEY}\n")
    devices.write_text(
        "devices:\n"
        "  sensor-test-01: {site: sector-test, kind: sensor, status: active}\n"
        "  sensor-test-02: {site: sector-test, kind: sensor, status: active}\n"
    )
    clock.now = 3.0
    assert len(watcher.current()) == 2
