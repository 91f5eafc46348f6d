"""Fixtures shared by every tier."""

from __future__ import annotations

import pytest

from hito.devices import DeviceRegistry
from hito.runtime import Runtime, load_runtime
from hito.settings import HitoSettings


@pytest.fixture(scope="session")
def settings() -> HitoSettings:
    return HitoSettings()


@pytest.fixture(scope="session")
def runtime(settings: HitoSettings) -> Runtime:
    return load_runtime(settings)


@pytest.fixture(scope="session")
def registry(runtime: Runtime) -> DeviceRegistry:
    return runtime.registry
