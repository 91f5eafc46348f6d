"""The worker's assembly: it refuses test fault hooks outside the development profile, and a
scrape of its metrics (another thread) never reaches into Faust."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading

import pytest
from faust.types import TP

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


def test_a_scrape_before_the_app_made_its_consumer_makes_none_and_sees_the_assignment(
    runtime: Runtime,
) -> None:
    """Faust makes ``app.consumer`` on first use. A scrape that asked it for the assignment
    before the app had made it built the consumer in the metrics server's thread, on that
    thread's event loop, and the worker exited at start-up (2 of 50 handover-soak runs,
    2026-12-05). The scrape now reads what the event loop last saw assigned."""
    worker = build_worker(runtime, app_id="hito-scrape-test")
    scrape = threading.Thread(target=lambda: list(worker.metrics.registry.collect()))
    scrape.start()
    scrape.join(timeout=30)
    assert not scrape.is_alive()
    assert worker.app._consumer is None  # Faust's own slot
    owned = worker.metrics.devices.owned
    assert owned is not None and set(owned()) == set()
    raw = runtime.settings.pipeline.topics.raw["checkpoint"]

    async def rebalance(assigned: set[TP]) -> None:
        await worker.app.on_partitions_revoked.send(set())
        assert set(owned()) == set()
        await worker.app.on_partitions_assigned.send(assigned)

    asyncio.run(rebalance({TP(raw, 1), TP(raw, 3)}))
    assert set(owned()) == {TP(raw, 1), TP(raw, 3)}
    asyncio.run(rebalance({TP(raw, 2)}))
    assert set(owned()) == {TP(raw, 2)}
    assert worker.app._consumer is None
