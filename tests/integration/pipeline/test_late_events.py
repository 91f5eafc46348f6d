"""Late events on the real stack: within the allowed lateness they correct their window;
beyond it, within the backfill horizon, they revise it (marked in ``revisions``); beyond the
horizon they go to the DLQ as ``late_beyond_window`` and change nothing else."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from kafka import KafkaProducer

from hito.credentials import client_config
from hito.device.sdk import build_event, encode
from hito.ops.dlq import read_all, read_originals
from hito.runtime import Runtime
from tests.integration.pipeline.conftest import query_points, running_worker, wait_until

DEVICE = "pe-santarosa-ckpt-02"
PAYLOAD = {
    "direction": "exit",
    "mode": "car",
    "lane": "L2",
    "document_type": "national_id",
    "document_number": "X12345678",
    "nationality": "PER",
    "birth_year": 1990,
    "outcome": "admitted",
    "processing_seconds": 33.0,
}


def test_late_events_correct_revise_or_go_to_the_dlq(
    isolated_runtime: Runtime,
) -> None:
    settings = isolated_runtime.settings
    settings = settings.model_copy(
        update={
            "pipeline": settings.pipeline.model_copy(
                update={"window_s": 60, "allowed_lateness_s": 180, "backfill_horizon_s": 600}
            )
        }
    )
    runtime = dataclasses.replace(isolated_runtime, settings=settings)
    device = runtime.registry.get(DEVICE)
    assert device is not None
    now = datetime.now(UTC)
    # A past window, closed 30-90 s ago: open for late events for 90-150 s more.
    late_ok = now - timedelta(seconds=90)
    revised = now - timedelta(seconds=400)  # closed 340-400 s ago: beyond 180 s, within 600
    too_old = now - timedelta(seconds=900)  # beyond the 600 s horizon
    ok_window = datetime.fromtimestamp(int(late_ok.timestamp()) // 60 * 60, tz=UTC)
    revised_window = datetime.fromtimestamp(int(revised.timestamp()) // 60 * 60, tz=UTC)
    seq = iter(range(1000))

    def send(at: datetime, n: int) -> None:
        producer = KafkaProducer(**client_config(settings.kafka, "device"), acks="all")
        for _ in range(n):
            ev = build_event(
                schema="checkpoint.crossing/1",
                device_id=DEVICE,
                site=device.site,
                seq=next(seq),
                event_time=at,
                payload=PAYLOAD,
                key=device.key,
            )
            producer.send(
                settings.pipeline.raw_topics["checkpoint"], key=DEVICE.encode(), value=encode(ev)
            )
        producer.flush()
        producer.close()

    def count_in(window: datetime) -> int:
        return sum(
            int(p["count"]) for p in query_points(settings, "crossings") if p["_time"] == window
        )

    async def scenario() -> None:
        async with running_worker(runtime):
            await asyncio.to_thread(send, late_ok, 6)
            await wait_until(lambda: count_in(ok_window) == 6, 30, "first 6 in the window")
            await asyncio.to_thread(send, late_ok, 5)
            await wait_until(lambda: count_in(ok_window) == 11, 60, "window rewritten with 11")
            await asyncio.to_thread(send, revised, 3)
            await wait_until(lambda: count_in(revised_window) == 3, 60, "3 revising their window")
            await asyncio.to_thread(send, too_old, 2)
            await wait_until(lambda: len(list(read_all(settings))) == 2, 60, "2 in the DLQ")
            await asyncio.sleep(2)

    asyncio.run(scenario())
    records = [e.record for e in read_all(settings)]
    assert [(r.reason.value, r.stage) for r in records] == [("late_beyond_window", "validate")] * 2
    crossings = query_points(settings, "crossings")
    assert sum(int(p["count"]) for p in crossings) == 14
    assert {p["_time"] for p in crossings} == {ok_window, revised_window}
    revisions = query_points(settings, "revisions")
    assert [(p["_time"], p["source"], p["events"]) for p in revisions] == [
        (revised_window, "checkpoint", 3)
    ]
    # The rejected events' bytes stay in the raw zone, for the admin only.
    originals = [e.record for e in read_originals(settings)]
    assert len(originals) == 2
