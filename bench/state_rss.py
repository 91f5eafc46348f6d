"""Memory of the worker's per-device state for N devices and M identities (a model, measured).

A million devices cannot be simulated through the dev registry, so this process builds, with
the worker's own types and stages, the structures a worker holds per device once every device
has sent one event in the current window, and measures its RSS after each step:

- the device registry (``Device`` with a 32-byte key, in ``DeviceRegistry``);
- the dedup table value per device (``SeqState.to_json()`` after its first event);
- ``hito_device_last_seen_seconds{site,device_id}`` (the worker's ``PerDeviceGauge``: one
  float per device, keyed by the registry's own device_id string);
- the aggregate window's ``seen`` ranges (one ``[seq, seq]`` per device);
- M distinct identities crossing once today: pseudonymised for ``repeat_crossings``
  (``hito.pipeline.pseudonyms``) and recorded in that purpose's per-person day state (the
  ``repeat-days`` table value the aggregate agent writes), the only state that grows with
  identities; it is deleted once the day is published.

It also sizes (``sys.getsizeof``) the dedup table value of a device after its first event and
of a "mature" device whose mask is full (``dedup_window`` events seen: a hex mask of
``dedup_window / 4`` characters), to scale the figure to devices that have sent a lot.

Runs as ``python -m bench.state_rss DEVICES IDENTITIES OUT_JSON``.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SITES = ("chacalluta", "santa-rosa", "sector-concordia", "sector-escritos")


def _rss_mb() -> tuple[float, float]:
    status = dict(
        ln.split(":", 1) for ln in Path("/proc/self/status").read_text().splitlines() if ":" in ln
    )
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def build(devices: int, identities: int) -> dict[str, Any]:
    import hito.pipeline.worker  # noqa: F401 - the worker's modules, as a worker imports them
    from hito.devices import Device, DeviceRegistry
    from hito.pipeline.metrics import PipelineMetrics
    from hito.pipeline.pseudonyms import epoch_of, pseudonym
    from hito.pipeline.stages import aggregate, dedup, repeat
    from hito.pipeline.state import repeat_days
    from hito.settings import PipelineSettings

    steps: list[dict[str, Any]] = []
    started = time.monotonic()

    def step(name: str) -> None:
        gc.collect()
        rss, hwm = _rss_mb()
        steps.append({"step": name, "rss_mb": round(rss, 1), "peak_rss_mb": round(hwm, 1)})

    step("imports")
    ids = [f"dev-{i:07d}" for i in range(devices)]
    registry = DeviceRegistry(
        Device(d, _SITES[i % 4], "checkpoint", i.to_bytes(32, "big")) for i, d in enumerate(ids)
    )
    step("registry")
    seq_table = {d: dedup.observe(None, i % 1000, 64)[0].to_json() for i, d in enumerate(ids)}
    step("dedup table")
    metrics = PipelineMetrics()
    now = time.time()
    for i, d in enumerate(ids):
        metrics.device_last_seen.set(_SITES[i % 4], d, now + i)  # a float object per device
    step("last-seen gauge")
    start = _window_start()
    windows = {site: aggregate.new_state(site, start) for site in _SITES}
    for state in windows.values():  # a mark per raw partition, whatever the number of devices
        state["hw"] = {
            f"hito.raw.{s}|{p}": 10**9 for s in ("checkpoint", "sensor", "drone") for p in range(4)
        }
    step("window raw-offset marks")
    epoch = epoch_of(start, 86400)
    repeat_table: dict[str, Any] = {}
    for i in range(identities):
        person = pseudonym(bytes(32), "repeat_crossings", "document_number", f"P{i:09d}", epoch)
        device = ids[i % devices] if devices else "dev-0"
        seen = repeat.Sighting(_SITES[i % 4], epoch, person, f"entry|{device}|{i}")
        crossings = repeat.record(None, seen.crossing) or []
        repeat_table[f"{i % 4}|{seen.name}"] = repeat_days.pack(crossings, "2026-12-03.1")
    step("identities pseudonymised and recorded for the day")

    window = PipelineSettings().dedup_window
    fresh_bytes = _deep_bytes(dedup.observe(None, 0, window)[0].to_json())
    mature_bytes = _deep_bytes(dedup.SeqState(high=window + 10, mask=(1 << window) - 1).to_json())
    assert len(registry) == len(seq_table) == len(metrics.device_last_seen) == devices
    growth = steps[-1]["rss_mb"] - steps[0]["rss_mb"]
    return {
        "devices": devices,
        "identities": identities,
        "steps": steps,
        "state_growth_mb": round(growth, 1),
        "identities_growth_mb": round(steps[-1]["rss_mb"] - steps[-2]["rss_mb"], 1),
        "model_process_peak_rss_mb": steps[-1]["peak_rss_mb"],
        "dedup_value_bytes_first_event": round(fresh_bytes),
        "dedup_value_bytes_mature": round(mature_bytes),
        "dedup_window": window,
        "seconds": round(time.monotonic() - started, 1),
    }


def _deep_bytes(value: str) -> int:
    """Bytes of one dedup table value (a string, streams/stages/dedup.py)."""
    return sys.getsizeof(value)


def _window_start() -> datetime:
    from hito.pipeline.stages.windows import window_start

    return window_start(datetime.now(UTC), 60)


def main() -> None:
    devices, identities, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    out.write_text(json.dumps(build(devices, identities)))


if __name__ == "__main__":
    main()
