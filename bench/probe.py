"""What InfluxDB shows, and what a process costs: the harness's two instruments.

Totals are the events whose contribution is visible in a bucket:

- ``hito``: sum of ``crossings.count`` + ``sensor.readings`` + ``drone.fixes`` (one per
  counted event; small-count suppression merges cells but never loses a count, and the worker
  deletes a window's stale series, so the sum is exact);
- ``windows``: sum of the peer's ``bench_window.events`` (one point per window);
- ``events``: number of per-event points (the naive pipeline writes one per event).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from influxdb_client import InfluxDBClient

from hito.bench.cpu import tree_cpu_s
from hito.settings import HitoSettings

TotalKind = Literal["hito", "windows", "events"]
_FILTERS: dict[TotalKind, str] = {
    "hito": (
        '(r._measurement == "crossings" and r._field == "count") or '
        '(r._measurement == "sensor" and r._field == "readings") or '
        '(r._measurement == "drone" and r._field == "fixes")'
    ),
    "windows": 'r._measurement == "bench_window" and r._field == "events"',
    "events": 'r._field == "n"',
}


class InfluxTotal:
    """Polls one bucket's total (admin token: the bench reads what the contender wrote)."""

    def __init__(self, settings: HitoSettings, kind: TotalKind) -> None:
        i = settings.influxdb
        self._client = InfluxDBClient(
            url=i.url, token=i.admin_token().get_secret_value(), org=i.org, timeout=10_000
        )
        fn = "count" if kind == "events" else "sum"
        self._flux = (
            f'from(bucket: "{i.bucket}") |> range(start: -30d, stop: 30d) '
            f"|> filter(fn: (r) => {_FILTERS[kind]}) "
            f'|> group() |> {fn}(column: "_value")'
        )

    def total(self) -> int:
        tables = self._client.query_api().query(self._flux)
        values = (r.values.get("_value") for t in tables for r in t.records)
        return sum(int(v or 0) for v in values)

    def wait_for(
        self,
        expected: int,
        timeout_s: float,
        alive: Callable[[], bool] = lambda: True,
        interval_s: float = 0.2,
    ) -> float:
        """Wall time (seconds since the epoch) of the first answer showing ``expected``,
        taken when the answer arrived (never earlier than the data was visible)."""
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self.total()
            if seen >= expected:
                return time.time()
            if not alive():
                raise RuntimeError(f"the contender died; InfluxDB shows {seen} of {expected}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"InfluxDB shows {seen} of {expected} after {timeout_s} s")
            time.sleep(interval_s)

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # user + system of the process tree (hito.bench.cpu)
    rss_mb: float
    peak_rss_mb: float  # VmHWM: the high-water mark since the process started


def proc_sample(pid: int) -> ProcSample:
    cpu = tree_cpu_s(pid)
    status = {
        k: v.split()[0]
        for k, v in (
            ln.split(":", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        if k in ("VmRSS", "VmHWM")
    }
    return ProcSample(cpu, int(status["VmRSS"]) / 1024, int(status["VmHWM"]) / 1024)
