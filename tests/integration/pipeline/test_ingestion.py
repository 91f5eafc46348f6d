"""Simulated fleet -> real Kafka -> ingest worker: every event accounted for, exactly."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime

from kafka import KafkaProducer

from hito.credentials import client_config
from hito.device.simulate.fleet import DUPLICATE, INJECTABLE, VALID, Fleet, FleetPlan
from hito.device.simulate.runner import send_messages
from hito.ops.dlq import read_all, read_originals
from hito.runtime import Runtime
from hito.settings import HitoSettings
from tests.integration.pipeline.conftest import query_points, running_worker, wait_until

N = 3000


def test_valid_dlq_and_duplicates_add_up_to_what_was_sent(isolated_runtime: Runtime) -> None:
    isolated, registry = isolated_runtime.settings, isolated_runtime.registry
    plan = FleetPlan(
        count=N,
        seed=11,
        bad_fraction=0.12,
        duplicate_fraction=0.06,
        out_of_order_fraction=0.03,
        raw_topics=dict(isolated.pipeline.raw_topics),
    )
    messages = list(Fleet(registry, plan, datetime.now(UTC)).messages())
    expected = Counter(m.expected for m in messages)
    assert set(expected) == {VALID, DUPLICATE, *(r.value for r in INJECTABLE)}
    # The `pipeline` measurement in InfluxDB: every event under its stage and outcome.
    expected_pipeline = {
        ("anonymise", "published"): expected[VALID],
        ("aggregate", "counted"): expected[VALID],
        ("dedup", "duplicate"): expected[DUPLICATE],
        **{("validate", r.value): expected[r.value] for r in INJECTABLE},
    }

    async def scenario() -> tuple[dict[str, float], dict[str, float]]:
        async with running_worker(isolated_runtime) as worker:
            await asyncio.to_thread(
                send_messages,
                messages,
                producer_config=client_config(isolated.kafka, "device"),
                total=N,
            )
            await wait_until(lambda: worker.metrics.total_events() >= N, 120, "the run to drain")
            await asyncio.sleep(1)  # anything beyond N would be double counting
            await wait_until(
                lambda: pipeline_totals(isolated) == expected_pipeline,
                30,
                f"the pipeline measurement to reach {expected_pipeline}",
            )
            return worker.metrics.events_by_outcome(), worker.metrics.dlq_by_reason()

    outcomes, dlq = asyncio.run(scenario())
    bad = {r.value: expected[r.value] for r in INJECTABLE}
    assert outcomes == {
        "accepted": expected[VALID],
        "duplicate": expected[DUPLICATE],
        "rejected": sum(bad.values()),
    }
    assert dlq == bad
    assert sum(outcomes.values()) == N

    # The DLQ topic holds one record per bad event, with its reason; the raw zone's originals
    # topic holds its exact bytes.
    records = list(read_all(isolated))
    assert Counter(e.record.reason.value for e in records) == Counter(bad)
    assert all(e.record.stage == "validate" for e in records)
    originals = [e.record for e in read_originals(isolated)]
    sent_bad = Counter((m.expected, m.value) for m in messages if m.expected in bad)
    assert Counter((o.reason.value, o.original) for o in originals) == sent_bad
    assert {(e.record.source_offset, e.record.rejection_id) for e in records} == {
        (o.source_offset, o.rejection_id) for o in originals
    }
    assert None not in {e.record.rejection_id for e in records}


def pipeline_totals(settings: HitoSettings) -> dict[tuple[str, str], int]:
    """Sum of the `pipeline` measurement's counts over windows and partitions."""
    sums: Counter[tuple[str, str]] = Counter()
    for point in query_points(settings, "pipeline"):
        sums[(point["stage"], point["outcome"])] += point["count"]
    return dict(sums)


def test_worker_keeps_running_through_garbage(isolated_runtime: Runtime) -> None:
    isolated, registry = isolated_runtime.settings, isolated_runtime.registry
    rng = random.Random(5)
    garbage = [rng.randbytes(rng.randint(0, 3000)) for _ in range(400)]
    garbage += [b"", b"{}", b"[]", b"null", b'{"schema": {}}', b"\x00" * 100, b"{" * 5000]
    valid = list(
        Fleet(
            registry,
            FleetPlan(count=50, seed=3, raw_topics=dict(isolated.pipeline.raw_topics)),
            datetime.now(UTC),
        ).messages()
    )
    topic = isolated.pipeline.raw_topics["sensor"]

    async def scenario() -> dict[str, float]:
        async with running_worker(isolated_runtime) as worker:
            producer = KafkaProducer(**client_config(isolated.kafka, "device"), acks="all")
            for i, junk in enumerate(garbage):
                producer.send(topic, key=f"junk-{i % 7}".encode(), value=junk)
            producer.flush()
            producer.close()
            await asyncio.to_thread(
                send_messages,
                valid,
                producer_config=client_config(isolated.kafka, "device"),
                total=len(valid),
            )
            total = len(garbage) + len(valid)
            await wait_until(lambda: worker.metrics.total_events() >= total, 120, "drain")
            return worker.metrics.events_by_outcome()

    outcomes = asyncio.run(scenario())
    assert outcomes == {"rejected": len(garbage), "accepted": len(valid)}
