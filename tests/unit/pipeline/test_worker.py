"""The worker's assembly refuses test fault hooks outside the development profile."""

from __future__ import annotations

import dataclasses
import os

import pytest

from hito.pipeline.worker import build_worker, refuse_fault_hooks
from hito.runtime import Runtime
from hito.settings import HitoSettings, SettingsError


def _production(settings: HitoSettings) -> HitoSettings:
    return settings.model_copy(update={"profile": "production"})


def test_a_fault_hook_outside_the_development_profile_stops_the_worker_from_starting(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITO_TEST_KILL_AFTER_PUBLISH", "3")
    monkeypatch.setenv("HITO_TEST_FAIL_INGEST_BATCH", "20")
    production = dataclasses.replace(runtime, settings=_production(runtime.settings))
    with pytest.raises(SettingsError) as refused:
        build_worker(production, app_id="hito-refuse-test")
    message = str(refused.value)
    assert "HITO_TEST_FAIL_INGEST_BATCH, HITO_TEST_KILL_AFTER_PUBLISH" in message
    assert "20" not in message and "3)" not in message  # names, never values


def test_fault_hooks_run_in_the_development_profile_and_nothing_is_refused_without_them(
    settings: HitoSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("HITO_TEST_")]:
        monkeypatch.delenv(name)
    refuse_fault_hooks(_production(settings))  # none set: fine in production
    monkeypatch.setenv("HITO_TEST_FETCH_WAIT_S", "10")
    assert settings.profile == "development"
    refuse_fault_hooks(settings)  # the tests' profile
