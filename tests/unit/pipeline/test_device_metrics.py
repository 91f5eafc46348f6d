"""Device liveness as counts per site plus a bounded set of per-device series: every device of
a small fleet, only the silent ones of a large one, none of partitions the worker gave up."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry

from hito.devices import Device, DeviceRegistry
from hito.pipeline.device_metrics import DeviceActivity

NOW = 1_800_000_000.0


def _registry(n: int) -> DeviceRegistry:
    return DeviceRegistry(
        Device(f"dev-{i:03d}", ("north", "south")[i % 2], "sensor", b"k" * 16) for i in range(n)
    )


def _samples(registry: CollectorRegistry) -> dict[str, dict[tuple[str, ...], float]]:
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in registry.collect():
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(s.labels.values())] = s.value
    return out


def _activity(n: int, series_max: int = 100) -> tuple[CollectorRegistry, DeviceActivity]:
    prometheus = CollectorRegistry()
    activity = DeviceActivity(prometheus, series_max=series_max, clock=lambda: NOW)
    activity.follow(_registry(n))
    return prometheus, activity


def test_a_small_fleet_exports_every_device_and_counts_the_silent() -> None:
    prometheus, activity = _activity(6)
    for i in range(5):  # dev-005 never sends
        silent = i in (1, 2)
        activity.seen(i, "raw", i % 2, NOW - (300 if silent else 10))
    activity.seen(0, "raw", 0, NOW - 50)  # a late event is no sign of life now
    got = _samples(prometheus)
    assert got["hito_devices_seen"] == {("north",): 2.0, ("south",): 1.0}
    assert got["hito_devices_silent"] == {("north",): 1.0, ("south",): 1.0}
    assert got["hito_device_last_seen_seconds"] == {
        ("north", "dev-000"): NOW - 10,
        ("south", "dev-001"): NOW - 300,
        ("north", "dev-002"): NOW - 300,
        ("south", "dev-003"): NOW - 10,
        ("north", "dev-004"): NOW - 10,
    }


def test_a_large_fleet_exports_only_silent_devices_at_most_series_max() -> None:
    prometheus, activity = _activity(1000, series_max=10)
    for i in range(1000):
        activity.seen(i, "raw", 0, NOW - (500 if i % 50 == 0 else 1))  # 20 silent
    got = _samples(prometheus)
    assert got["hito_devices_silent"] == {("north",): 20.0, ("south",): 0.0}
    assert got["hito_devices_seen"] == {("north",): 480.0, ("south",): 500.0}
    assert set(got["hito_device_last_seen_seconds"]) == {
        ("north", f"dev-{i:03d}") for i in range(0, 500, 50)
    }


def test_devices_of_partitions_given_up_are_not_reported() -> None:
    prometheus, activity = _activity(4)
    for i in range(4):
        activity.seen(i, "raw", i, NOW - 500)
    activity.owned = lambda: {("raw", 0), ("raw", 3)}
    got = _samples(prometheus)
    assert set(got["hito_device_last_seen_seconds"]) == {("north", "dev-000"), ("south", "dev-003")}
    assert got["hito_devices_silent"] == {("north",): 1.0, ("south",): 1.0}


def test_losses_per_site_and_for_the_reported_devices() -> None:
    prometheus, activity = _activity(4, series_max=2)
    activity.seen(0, "raw", 0, NOW - 500)
    activity.seen(1, "raw", 0, NOW - 500)
    activity.seen(2, "raw", 0, NOW - 1)
    activity.losses = lambda: np.array([3, 0, 7, 1], dtype=np.int64)
    got = _samples(prometheus)
    assert got["hito_seq_missing"] == {("north",): 10.0, ("south",): 1.0}
    assert got["hito_device_seq_missing"] == {("north", "dev-000"): 3.0}


def test_what_was_seen_follows_the_registry() -> None:
    prometheus, activity = _activity(3)
    activity.seen(2, "raw", 0, NOW - 1)
    activity.follow(
        DeviceRegistry(
            [
                Device("dev-002", "north", "sensor", b"k" * 16),
                Device("new-1", "east", "drone", b"k" * 16),
            ]
        )
    )
    assert _samples(prometheus)["hito_device_last_seen_seconds"] == {("north", "dev-002"): NOW - 1}


def test_a_worker_without_a_consumer_yet_reports_counts_and_no_device() -> None:
    prometheus, activity = _activity(2)
    activity.seen(0, "raw", 0, NOW - 1)

    def no_consumer() -> set[tuple[str, int]]:
        raise RuntimeError("consumer not started")

    activity.owned = no_consumer
    got = _samples(prometheus)
    assert got["hito_devices_seen"] == {("north",): 0.0, ("south",): 0.0}
    assert "hito_device_last_seen_seconds" not in got
