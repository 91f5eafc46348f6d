"""Fixtures shared by every tier."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# The tests are the development profile: the public development secrets of infra/dev/ are
# allowed (streams/settings/). Set before any settings object is made; processes the tests
# start inherit it. A test of the production profile removes it for itself.
os.environ.setdefault("HITO_PROFILE", "development")
# A key store of the test session's own (the development profile creates it on first use):
# tests never read or ratchet the local stack's pseudonym keys. Processes the tests start
# inherit it.
if "HITO_PRIVACY__KEY_STORE_FILE" not in os.environ:
    _keys_dir = tempfile.mkdtemp(prefix="hito-test-keys-")
    atexit.register(shutil.rmtree, _keys_dir, ignore_errors=True)
    os.environ["HITO_PRIVACY__KEY_STORE_FILE"] = str(Path(_keys_dir) / "pseudonym-keys.json")

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
