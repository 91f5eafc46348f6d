"""Memory of the worker's per-device state for N devices and M identities (a model, measured).

A million devices cannot be simulated through the dev registry, so this process builds, with
the worker's own types and stages, the structures a worker holds per device once every device
has sent one event in the current window, and measures its RSS after each step:

- the device registry, loaded as a worker loads it at scale: from the registry file of
  ``hito devices import`` (written from a CSV by a child process, whose time is reported as
  the import's; the load is timed here);
- the dedup state of every device (``DedupArrays``, the ``dedup-seq`` table's store: arrays by
  registry entry) after its first event;
- what ``hito.pipeline.device_metrics`` keeps per device (newest event time, partition) and
  the cost of one scrape when 1 % of the devices are silent;
- the aggregate windows' raw-offset marks (a mark per raw partition, whatever the devices);
- the backfill's windows (docs/aggregation.md, "Backfill"): the live windows of 50 sites and
  ``REVISING_MAX`` windows held for revisions, each a busy minute of a checkpoint site with
  sensors and a drone (the worker holds no more, whatever the horizon), and the size of the
  window archive InfluxDB keeps for 50 sites x 7 days (every window's full state as JSON);
- M distinct identities crossing once today: pseudonymised for ``repeat_crossings``
  (``hito.pipeline.pseudonyms``) and recorded in that purpose's per-person day state (the
  ``repeat-days`` table's value the aggregate agent writes, into the table's store,
  ``PersonDays``: a person who crossed once is an array row), the only state that grows with
  identities; it is deleted once the day is published.

The dedup state is the same 30 bytes a device however much it has sent; the model also gives
the size of the changelog value of a device after its first event and of a "mature" one
(``dedup_window`` events seen: a hex mask of ``dedup_window / 4`` characters), which is what
the changelog carries, not what the worker holds.

Runs as ``python -m hito.bench.state_rss DEVICES IDENTITIES OUT_JSON``.
"""

from __future__ import annotations

import csv
import gc
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

_SITES = ("chacalluta", "santa-rosa", "sector-concordia", "sector-escritos")
_KINDS = ("checkpoint", "sensor", "sensor", "drone")


def _rss_mb() -> tuple[float, float]:
    status = dict(
        ln.split(":", 1) for ln in Path("/proc/self/status").read_text().splitlines() if ":" in ln
    )
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def write_registry(devices: int, path: Path) -> dict[str, Any]:
    """A CSV of ``devices`` devices, then the registry file ``hito devices import`` writes
    from it (in this process: the caller is a child, so its memory is not the model's)."""
    from hito.devices import binary, sources
    from hito.devices.registry import Columns

    source = path.with_suffix(".csv")
    with source.open("w", newline="") as fh:
        rows = csv.writer(fh)
        rows.writerow(["device_id", "site", "kind", "status", "key"])
        for i in range(devices):
            key = i.to_bytes(32, "big").hex()  # a model: not a secret
            rows.writerow([f"dev-{i:07d}", _SITES[i % 4], _KINDS[i % 4], "active", key])
    started = time.monotonic()
    size = binary.write(path, Columns.of(sources.from_csv(source)))
    seconds = time.monotonic() - started
    source.unlink()
    return {"registry_file_mb": round(size / 1e6, 1), "registry_import_s": round(seconds, 2)}


def build(devices: int, identities: int) -> dict[str, Any]:
    import hito.pipeline.worker  # noqa: F401 - the worker's modules, as a worker imports them
    from hito.devices import DeviceRegistry
    from hito.pipeline.metrics import PipelineMetrics
    from hito.pipeline.pseudonyms import epoch_of, pseudonym
    from hito.pipeline.stages import aggregate, dedup, repeat
    from hito.pipeline.state import dedup_compact, repeat_days
    from hito.pipeline.state.dedup_arrays import DedupArrays
    from hito.pipeline.state.person_days import PersonDays
    from hito.settings.sections import PipelineSettings

    steps: list[dict[str, Any]] = []
    started = time.monotonic()
    window = PipelineSettings().dedup_window

    def step(name: str) -> None:
        gc.collect()
        rss, hwm = _rss_mb()
        steps.append({"step": name, "rss_mb": round(rss, 1), "peak_rss_mb": round(hwm, 1)})

    step("imports")
    with tempfile.TemporaryDirectory(prefix="hito-state-rss-") as tmp:
        path = Path(tmp) / "registry.bin"
        child = subprocess.run(
            [sys.executable, "-m", "hito.bench.state_rss", "--registry", str(devices), str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        imported: dict[str, Any] = json.loads(child.stdout)
        loading = time.monotonic()
        registry = DeviceRegistry.load(path)
        load_s = time.monotonic() - loading
    step("registry (loaded from its file)")
    seqs = DedupArrays(window, registry)
    for i in range(devices):
        seqs.put(i, dedup_compact.observe(None, i % 1000, window)[0], i % 4)
    step("dedup state")
    metrics = PipelineMetrics()
    activity = metrics.devices
    activity.follow(registry)
    activity.losses = seqs.missing
    now = time.time()
    for i in range(devices):
        silent = i % 100 == 0  # 1 %: exported one by one
        activity.seen(i, "hito.raw.checkpoint", i % 4, now - (600 if silent else i % 60))
    step("device activity")
    scraping = time.monotonic()
    series = sum(len(family.samples) for family in metrics.registry.collect())
    scrape_s = time.monotonic() - scraping
    start = _window_start()
    windows = {site: aggregate.new_state(site, start) for site in _SITES}
    for state in windows.values():  # a mark per raw partition, whatever the number of devices
        state["hw"] = {
            f"hito.raw.{s}|{p}": 10**9 for s in ("checkpoint", "sensor", "drone") for p in range(4)
        }
    step("window raw-offset marks")
    from hito.pipeline.sinks.lines import archive_line
    from hito.pipeline.state.archive import REVISING_MAX

    busy = busy_window(start)
    live = ARCHIVE_SITES * (1 + 2 * 300 // 60 + 1)  # every site's last 12 minutes
    held = {f"{i}": json.loads(json.dumps(busy)) for i in range(live + REVISING_MAX)}
    step(f"backfill: {live} live windows and {REVISING_MAX} held for revisions")
    archive_bytes = len(archive_line(busy).encode())
    archived = ARCHIVE_SITES * ARCHIVE_DAYS * 1440
    epoch = epoch_of(start, 86400)
    # The repeat-days table's store data (hito.pipeline.state.stores).
    repeat_table = PersonDays(lambda: registry)
    for i in range(identities):
        person = pseudonym(bytes(32), "repeat_crossings", "document_number", f"P{i:09d}", epoch)
        device = registry.device_id(i % devices) if devices else "dev-0"
        seen = repeat.Sighting(_SITES[i % 4], epoch, person, f"entry|{device}|{i}")
        crossings = repeat.record(None, seen.crossing) or []
        repeat_table[f"{i % 4}|{seen.name}"] = repeat_days.pack(crossings, "2026-12-03.1")
    step("identities pseudonymised and recorded for the day")

    fresh = dedup.observe(None, 0, window)[0].to_json()
    mature = dedup.SeqState(high=window + 10, mask=(1 << window) - 1).to_json()
    assert len(registry) == len(seqs) == devices
    growth = steps[-1]["rss_mb"] - steps[0]["rss_mb"]
    return {
        "devices": devices,
        "identities": identities,
        "steps": steps,
        "state_growth_mb": round(growth, 1),
        "identities_growth_mb": round(steps[-1]["rss_mb"] - steps[-2]["rss_mb"], 1),
        "model_process_peak_rss_mb": steps[-1]["peak_rss_mb"],
        **imported,
        "registry_load_s": round(load_s, 3),
        "device_metrics_scrape_ms": round(scrape_s * 1000, 1),
        "device_metrics_series": series,
        "dedup_bytes_per_device": 30,
        "dedup_changelog_value_chars_first_event": len(fresh),
        "dedup_changelog_value_chars_mature": len(mature),
        "dedup_window": window,
        "backfill": {
            "windows_held": len(held),
            "revising_max": REVISING_MAX,
            "window_state_json_bytes": len(json.dumps(busy)),
            "held_mb": next(
                round(b["rss_mb"] - a["rss_mb"], 1)
                for a, b in pairwise(steps)
                if b["step"].startswith("backfill")
            ),
            "archive_sites": ARCHIVE_SITES,
            "archive_days": ARCHIVE_DAYS,
            "archive_windows": archived,
            "archive_line_bytes": archive_bytes,
            "archive_mb_uncompressed": round(archived * archive_bytes / 1e6, 1),
        },
        "seconds": round(time.monotonic() - started, 1),
    }


ARCHIVE_SITES, ARCHIVE_DAYS = 50, 7


def busy_window(start: datetime) -> dict[str, Any]:
    """A busy minute's full state: a checkpoint site's cells (both directions, three modes,
    three outcomes, six nationality groups, wait histograms), twenty sensors, a drone's ten
    cells and a mark per raw partition (12)."""
    from hito.pipeline.stages import aggregate

    state = aggregate.new_state("chacalluta", start)
    state["version"] = 480
    state["policy"] = "2026-12-03.2"
    state["hw"] = {
        f"hito.raw.{s}|{p}": 10**9 for s in ("checkpoint", "sensor", "drone") for p in range(4)
    }
    for d in ("entry", "exit"):
        for m in ("pedestrian", "car", "bus"):
            state["wait"][f"{d}|{m}"] = {
                "n": 40,
                "max": 412.5,
                "b": [2] * len(aggregate.WAIT_EDGES),
            }
            for o in ("admitted", "refused", "secondary"):
                state["crossings"][f"{d}|{m}|{o}"] = 13
        for n in ("CHL", "PER", "BOL", "ARG", "VEN", "other"):
            state["nationality"][f"{d}|{n}"] = 20
    for i in range(20):
        state["sensor"][f"ground|6mk4b{i:x}"] = {
            "detections": 3,
            "readings": 12,
            "value_sum": 14.5,
            "values": 12,
        }
    for i in range(10):
        state["drone"][f"6mk4c{i:x}"] = {
            "detections": 1,
            "fixes": 12,
            "alt_sum": 1440.0,
            "battery_min": 61.0,
        }
    return state


def _window_start() -> datetime:
    from hito.pipeline.stages.windows import window_start

    return window_start(datetime.now(UTC), 60)


def main() -> None:
    if sys.argv[1] == "--registry":
        sys.stdout.write(json.dumps(write_registry(int(sys.argv[2]), Path(sys.argv[3]))))
        return
    devices, identities, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    out.write_text(json.dumps(build(devices, identities)))


if __name__ == "__main__":
    main()
