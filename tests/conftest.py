"""Fixtures shared by every tier."""

from __future__ import annotations

import pytest

from streams.devices import DeviceRegistry
from streams.runtime import Runtime, load_runtime
from streams.settings import HitoSettings


@pytest.fixture(scope="session")
def settings() -> HitoSettings:
    return HitoSettings()


@pytest.fixture(scope="session")
def runtime(settings: HitoSettings) -> Runtime:
    return load_runtime(settings)


@pytest.fixture(scope="session")
def registry(runtime: Runtime) -> DeviceRegistry:
    return runtime.registry
