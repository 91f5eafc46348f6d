"""The validator keeps the devices it looked up, per registry: the same verdicts as looking
each one up, a reloaded registry's entries as soon as it is in use, bounded memory."""

from __future__ import annotations

import dataclasses

import orjson

from hito.devices import Device, DeviceRegistry
from hito.pipeline.stages import validate as validate_module
from hito.pipeline.stages.outcomes import Limits
from hito.pipeline.stages.validate import Accepted, Rejected, _KnownDevices, validate
from hito.schemas.reasons import Reason
from tests.unit.pipeline.stages.test_validate import DEVICE, NOW, _event

KEY = b"\x07" * 32


def _registry(*devices: Device) -> DeviceRegistry:
    return DeviceRegistry(list(devices))


def test_a_kept_device_is_the_registry_entry() -> None:
    devices = [Device(f"dev-{i:03d}", "site-a", "sensor", KEY) for i in range(10)]
    registry = _registry(*devices)
    known = _KnownDevices()
    for _ in range(2):  # looked up, then kept
        for i, d in enumerate(devices):
            got = known.get(registry, d.device_id)
            assert got == d and got is not None and got.index == i
    assert known.get(registry, "dev-999") is None
    assert known.get(registry, "dev-999") is None  # not kept: still not registered


def test_a_reloaded_registry_is_used_at_once() -> None:
    before = _registry(Device("dev-001", "site-a", "sensor", KEY))
    after = _registry(
        Device("dev-000", "site-b", "drone", KEY),
        Device("dev-001", "site-b", "drone", KEY, revoked=True),
    )
    known = _KnownDevices()
    first = known.get(before, "dev-001")
    assert first is not None and (first.site, first.index, first.revoked) == ("site-a", 0, False)
    second = known.get(after, "dev-001")
    assert second is not None and (second.site, second.index, second.revoked) == (
        "site-b",
        1,
        True,
    )
    assert known.get(_registry(Device("dev-002", "site-a", "sensor", KEY)), "dev-001") is None


def test_kept_devices_are_bounded() -> None:
    count = _KnownDevices.MAX_KNOWN + 10
    registry = _registry(*(Device(f"dev-{i:05d}", "site-a", "sensor", KEY) for i in range(count)))
    known = _KnownDevices()
    for i in range(count):
        device = known.get(registry, f"dev-{i:05d}")
        assert device is not None and device.index == i
    assert len(known._state[1]) == 10  # started over once it held MAX_KNOWN


def test_revoking_a_device_in_a_new_registry_rejects_its_next_event(
    registry: DeviceRegistry,
) -> None:
    raw = orjson.dumps(_event(registry))
    assert isinstance(validate(raw, registry=registry, limits=Limits(), now=NOW), Accepted)
    devices = [
        dataclasses.replace(d, revoked=True) if d.device_id == DEVICE else d
        for d in registry.devices.values()
    ]
    revoked = DeviceRegistry(devices)
    result = validate(raw, registry=revoked, limits=Limits(), now=NOW)
    assert isinstance(result, Rejected)
    assert (result.reason, result.detail) == (Reason.UNKNOWN_DEVICE, "device_id: key revoked")
    assert validate_module._devices._state[0] is revoked
