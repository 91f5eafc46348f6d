"""Fixtures shared by every tier."""

from __future__ import annotations

import os

import pytest

# The tests are the development profile: the public development secrets of infra/dev/ are
# allowed (streams/settings.py). Set before any settings object is made; processes the tests
# start inherit it. A test of the production profile removes it for itself.
os.environ.setdefault("HITO_PROFILE", "development")

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
