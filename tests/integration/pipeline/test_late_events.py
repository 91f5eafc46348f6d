"""Late events within the allowed lateness correct their window; beyond it, the DLQ."""

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


def test_late_within_lateness_rewrites_the_window_and_beyond_goes_to_dlq(
    isolated_runtime: Runtime,
) -> None:
    settings = isolated_runtime.settings
    settings = settings.model_copy(
        update={
            "pipeline": settings.pipeline.model_copy(
                update={"window_s": 60, "allowed_lateness_s": 180}
            )
        }
    )
    runtime = dataclasses.replace(isolated_runtime, settings=settings)
    device = runtime.registry.get(DEVICE)
    assert device is not None
    now = datetime.now(UTC)
    # A past window, closed 30-90 s ago: open for late events for 90-150 s more.
    late_ok = now - timedelta(seconds=90)
    too_late = now - timedelta(seconds=400)  # closed 340-400 s ago: beyond 180 s
    ok_window = datetime.fromtimestamp(int(late_ok.timestamp()) // 60 * 60, tz=UTC)
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
            await asyncio.to_thread(send, too_late, 3)
            await wait_until(lambda: len(list(read_all(settings))) == 3, 60, "3 in the DLQ")
            await asyncio.sleep(2)

    asyncio.run(scenario())
    records = [e.record for e in read_all(settings)]
    assert [(r.reason.value, r.stage) for r in records] == [("late_beyond_window", "aggregate")] * 3
    assert sum(int(p["count"]) for p in query_points(settings, "crossings")) == 11
    originals = [e.record for e in read_originals(settings)]
    assert len(originals) == 3
    assert all(b"X12345678" not in o.original for o in originals)  # clean events: no raw ids
