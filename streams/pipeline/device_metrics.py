"""Which devices are alive, silent or losing events: counts per site, and per-device series for
a bounded set of devices.

A million per-device series is an exposition problem (every scrape, every Prometheus sample),
whatever the worker's memory. So a worker exports, per site, how many of its devices sent an
accepted event within ``silent_after_s`` (``hito_devices_seen``), how many it saw before but
not since (``hito_devices_silent``) and how many sequence numbers are missing
(``hito_seq_missing``); and per device (``hito_device_last_seen_seconds``,
``hito_device_seq_missing``) only a bounded set: every device it tracks while they are at most
``series_max`` (a development or small fleet sees what it always saw), beyond that the silent
ones, at most ``series_max`` of them. DeviceSilent reads the per-device series: on-call learns
*which* device is silent.

"Its devices" are those whose last event came through a partition this worker still owns:
after a rebalance the new owner tracks a device from its next event, and the former owner no
longer reports it (its old value would otherwise say "silent" for a device alive elsewhere).
Like a restart, a handover therefore forgets a device that was already silent.

Per registry entry the worker keeps the newest event time (float64) and the partition it came
through (uint16, an index into the partitions seen): 10 bytes a device, no Python object. A
scrape is a few array passes: about 15 ms at a million devices, plus 5 µs per device series
(bench/state_rss.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hito.devices import DeviceRegistry

SILENT_AFTER_S = 120.0  # the DeviceSilent rule's threshold (infra/prometheus/rules/hito.yml)
SERIES_MAX = 10_000
TopicPartition = tuple[str, int]

_HELP = {
    "hito_devices_seen": "Devices of this worker's partitions with an accepted event in the "
    "last 120 s, per site",
    "hito_devices_silent": "Devices of this worker's partitions seen since it started, silent "
    "for 120 s or more, per site",
    "hito_seq_missing": "Sequence numbers skipped and not (yet) received, summed over the "
    "devices whose dedup state this worker holds: lost events, per site",
    "hito_device_last_seen_seconds": "Unix time of the newest accepted event of a device: every "
    "device of this worker's partitions while they are at most 10,000, else the silent ones",
    "hito_device_seq_missing": "Sequence numbers skipped and not (yet) received, per device of "
    "the hito_device_last_seen_seconds set that misses some",
}


class DeviceActivity(Collector):
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        silent_after_s: float = SILENT_AFTER_S,
        series_max: int = SERIES_MAX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.silent_after_s = silent_after_s
        self.series_max = series_max
        self._clock = clock
        # The partitions this worker owns now (None: all of them, e.g. in tests). Called in
        # the scrape's thread: it must read a snapshot, never call into Faust (worker.py).
        self.owned: Callable[[], Collection[TopicPartition]] | None = None
        # Per entry of the registry followed: events missing (the dedup state's view).
        self.losses: Callable[[], NDArray[np.int64] | None] | None = None
        self._tps: list[TopicPartition] = []
        self._tp_index: dict[TopicPartition, int] = {}
        self._set(DeviceRegistry([]), np.zeros(0), np.zeros(0, dtype=np.uint16))
        registry.register(self)

    def _set(
        self, devices: DeviceRegistry, last: NDArray[np.float64], tp: NDArray[np.uint16]
    ) -> None:
        # One attribute for the three: a scrape (another thread) takes them together.
        self._state = (devices, last, tp)
        self._last: Any = last.data  # float64 (typeshed's memoryview holds ints only)
        self._tp = tp.data

    def follow(self, devices: DeviceRegistry) -> None:
        """Index by ``devices`` from now on (what was seen moves with its device)."""
        old, last, tp = self._state
        if devices is old:
            return
        moved = old.moved_to(devices)
        kept = moved >= 0
        new_last = np.zeros(len(devices))
        new_tp = np.zeros(len(devices), dtype=np.uint16)
        new_last[moved[kept]] = last[kept]
        new_tp[moved[kept]] = tp[kept]
        self._set(devices, new_last, new_tp)

    def seen(self, index: int, topic: str, partition: int, at: float) -> None:
        """An accepted event of entry ``index``, with event time ``at``, read from ``topic``
        and ``partition`` (a late event is no sign of life now: only a newer time counts)."""
        if at > self._last[index]:
            self._last[index] = at
            tp = self._tp_index.get((topic, partition))
            if tp is None:
                tp = self._tp_index[(topic, partition)] = len(self._tps)
                self._tps.append((topic, partition))
            self._tp[index] = tp

    def describe(self) -> list[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[GaugeMetricFamily]:
        for name, text in _HELP.items():
            labels = ["site", "device_id"] if name.startswith("hito_device_") else ["site"]
            yield GaugeMetricFamily(name, text, labels=labels)

    def collect(self) -> Iterator[Metric]:
        devices, last, tp = self._state
        seen_f, silent_f, missing_f, last_f, dev_missing_f = self._families()
        sites, site_of = devices.sites, devices.columns.site_of
        mine = last > 0
        if self.owned is not None:
            try:
                assigned = set(self.owned())
            except Exception:  # an owner that cannot tell: it owns nothing to report
                assigned = set()
            tps = list(self._tps)  # the event loop appends
            owned = np.array([tp_ in assigned for tp_ in tps] + [False], dtype=bool)
            mine &= owned[np.minimum(tp, len(tps))]
        silent = mine & (last < self._clock() - self.silent_after_s)
        counts = (
            np.bincount(site_of[mine & ~silent], minlength=len(sites)),
            np.bincount(site_of[silent], minlength=len(sites)),
        )
        for i, site in enumerate(sites):
            seen_f.add_metric([site], float(counts[0][i]))
            silent_f.add_metric([site], float(counts[1][i]))
        chosen = np.flatnonzero(mine if np.count_nonzero(mine) <= self.series_max else silent)
        chosen = chosen[: self.series_max].tolist()
        for i in chosen:
            last_f.add_metric([sites[site_of[i]], devices.device_id(i)], float(last[i]))
        losses = self.losses() if self.losses is not None else None
        if losses is not None and len(losses) == len(devices):
            missing = np.bincount(site_of, weights=losses, minlength=len(sites))
            for i, site in enumerate(sites):
                missing_f.add_metric([site], float(missing[i]))
            for i in chosen:
                if losses[i] > 0:
                    dev_missing_f.add_metric(
                        [sites[site_of[i]], devices.device_id(i)], float(losses[i])
                    )
        yield from (seen_f, silent_f, missing_f, last_f, dev_missing_f)
