"""The native prototype against Hito's Python stages, on the same events (README.md).

Python: what the ingest agent does per event without Kafka (validate, the key check, dedup,
anonymise, encode, the raw-origin header), called as the agent calls it. Native: one call per
lane-sized batch (500 records of one topic), the same header made in Python. The clean events
both make must be equal to the byte, or the script stops. CPU by ``time.process_time``, the
median of ROUNDS alternating rounds. Run by measure.sh (which builds the module).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import hito_native_proto

from hito.device.simulate.fleet import Fleet, FleetPlan
from hito.pipeline.raw_origin import raw_origin_header
from hito.pipeline.stages import anonymise, dedup, validate
from hito.pipeline.stages.outcomes import Accepted
from hito.pipeline.state import dedup_compact
from hito.runtime import load_runtime
from hito.settings import load_settings

SOURCES = ["checkpoint", "sensor", "drone"]
BATCH = 500
DEDUP_WINDOW = 64
NEW = dedup.SeqOutcome.NEW
Clean = tuple[str, str, bytes]  # (source, site, clean event)


def lane_batches(messages: list[Any]) -> list[tuple[str, list[Any]]]:
    by_topic: dict[str, list[Any]] = {}
    for m in messages:
        by_topic.setdefault(m.topic, []).append(m)
    return [
        (topic, ms[i : i + BATCH])
        for topic, ms in by_topic.items()
        for i in range(0, len(ms), BATCH)
    ]


def python_loop(rt: Any, batches: list[tuple[str, list[Any]]], now: datetime) -> list[Clean]:
    registry, policy, limits, keys = rt.registry, rt.policy, rt.limits, rt.key_store.lookup
    states: dict[int, Any] = {}
    out: list[Clean] = []
    for topic, batch in batches:
        expected = topic.rsplit(".", 1)[-1]
        for offset, m in enumerate(batch):
            result = validate.validate(
                m.value, registry=registry, limits=limits, now=now, expected_source=expected
            )
            if not isinstance(result, Accepted) or m.key != result.event.device_id.encode():
                continue
            index = result.device.index
            state, seen = dedup_compact.observe(states.get(index), result.event.seq, DEDUP_WINDOW)
            if seen is not NEW:
                continue
            states[index] = state
            ev = result.event
            made = anonymise.anonymise(ev, policy, keys, timestamp=ev.event_time.timestamp())
            body = anonymise.encode(made)
            raw_origin_header(topic, 0, offset)
            out.append((made.source, made.site, body))
    return out


def native_loop(rt: Any, batches: list[tuple[str, list[Any]]], now: datetime) -> list[Clean]:
    policy, limits = rt.policy, rt.limits
    devices = sorted(rt.registry.devices.values(), key=lambda d: d.index)
    purposes = policy.pseudonym_purposes("checkpoint.crossing/1")["document_number"]
    keys = {}
    for p in purposes:
        epoch = int(now.timestamp()) // p.epoch_s
        for e in (epoch - 1, epoch):
            key = rt.key_store.lookup(p.name, e)
            if key is not None:
                keys[(p.name, e)] = key
    native = hito_native_proto.NativeIngest(
        [(d.device_id, d.key, d.site, SOURCES.index(d.kind), d.revoked) for d in devices],
        limits.max_event_bytes,
        limits.max_future_skew_s,
        limits.max_event_age_s,
        policy.version,
        policy.event_time_resolution_s,
        sorted(policy.rules["checkpoint.crossing/1"]["nationality"].vocabulary),
        6,
        [(p.name, p.epoch_s) for p in purposes],
        keys,
    )
    at = now.timestamp()
    out: list[Clean] = []
    for topic, batch in batches:
        expected = SOURCES.index(topic.rsplit(".", 1)[-1])
        _outcomes, clean = native.batch([m.value for m in batch], at, expected)
        for offset, (kind, site, body) in enumerate(clean):
            raw_origin_header(topic, 0, offset)  # the same header work as the Python loop
            out.append((SOURCES[kind], site, body))
    return out


def cpu_us_per_event(run: Callable[[], object], events: int) -> float:
    started = time.process_time()
    run()
    return (time.process_time() - started) / events * 1e6


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    now = datetime.now(UTC)
    rt = load_runtime(load_settings())
    plan = FleetPlan(
        count=events, seed=3, bad_fraction=0.0, duplicate_fraction=0.02, daily_rhythm=False
    )
    messages = list(Fleet(rt.registry, plan, now).messages())
    batches = lane_batches(messages)
    py_out, na_out = python_loop(rt, batches, now), native_loop(rt, batches, now)
    same = sum(a == b for a, b in zip(py_out, na_out, strict=False))
    print(
        f"{len(messages)} events; clean: Python {len(py_out)}, native {len(na_out)}, equal {same}"
    )
    if same != len(py_out) or len(py_out) != len(na_out):
        diff = next((a, b) for a, b in zip(py_out, na_out, strict=False) if a != b)
        sys.exit(f"the native prototype differs:\n{diff[0]!r}\n{diff[1]!r}")
    py_us, na_us = [], []
    for _ in range(rounds):
        py_us.append(cpu_us_per_event(lambda: python_loop(rt, batches, now), len(messages)))
        na_us.append(cpu_us_per_event(lambda: native_loop(rt, batches, now), len(messages)))
    py_med, na_med = statistics.median(py_us), statistics.median(na_us)
    print("Python CPU µs/event:", ", ".join(f"{x:.1f}" for x in py_us), f"(median {py_med:.1f})")
    print("native CPU µs/event:", ", ".join(f"{x:.2f}" for x in na_us), f"(median {na_med:.2f})")
    print(f"saved per event: {py_med - na_med:.1f} µs ({py_med / na_med:.1f}x less CPU)")


if __name__ == "__main__":
    main()
