"""Fixtures shared by every tier."""

from __future__ import annotations

import pytest

from streams.devices import DeviceRegistry
from streams.settings import HitoSettings


@pytest.fixture(scope="session")
def settings() -> HitoSettings:
    return HitoSettings()


@pytest.fixture(scope="session")
def registry(settings: HitoSettings) -> DeviceRegistry:
    p = settings.pipeline
    return DeviceRegistry.load(p.devices_file, p.device_keys_file)
