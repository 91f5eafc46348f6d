"""A checkpoint terminal's uplink cut, on the real stack (#17): two hours of its crossings
(a compressed outage: their times spread over the two hours before it reconnects) reach the
worker late, and every minute of those hours ends exact in InfluxDB, suppressed on the final
counts, with the revised minutes marked. Meanwhile the worker is killed with kill -9 once
during the outage, and its successor kills itself in the middle of the backfill (after
counting and publishing revisions, before their changelog records: the fault hook
HITO_TEST_KILL_MID_BACKFILL); the third one finishes. DeviceSilent pages for the terminal
during the outage, across the restart, and resolves when it is back; the burst of
backfilled crossings never pages CheckpointSurge.

One scenario of about seven minutes (the DeviceSilent rule needs the terminal silent 120 s,
then for 1 m) shared by the tests below; the workers are real processes that Prometheus
discovers from their target files.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from hito.credentials import client_config
from hito.device.simulate.fleet import VALID, Fleet, FleetPlan, SimMessage
from hito.device.simulate.runner import send_messages
from hito.runtime import Runtime
from hito.settings import HitoSettings
from hito.stack.worker_process import WorkerProcess, free_port
from tests.integration.pipeline.conftest import make_isolated, query_points
from tests.integration.pipeline.test_aggregation import (
    assert_exact,
    expected_from,
    expected_totals,
    totals,
)
from tests.integration.pipeline.test_alerts_end_to_end import (
    _pages_since,
    _wait_for,
    _write_history,
)

pytestmark = pytest.mark.timeout(900)

RATE = 40.0  # messages per second, the whole fleet (the history's rate: no surge anywhere)
OFFLINE_AFTER_S, OFFLINE_FOR_S = 30.0, 270.0
AFTER_S = 120.0  # the fleet goes on this long after the terminal is back
OUTAGE_SPAN_S = 7200.0  # the backlog's event times: the two hours before it reconnects
# A different terminal each run: Alertmanager remembers what it notified per alert (see
# test_alerts_end_to_end.py).
TERMINAL = random.SystemRandom().choice(
    [f"pe-santarosa-ckpt-0{i}" for i in (1, 2, 3)] + [f"cl-chacalluta-ckpt-0{i}" for i in (3, 4)]
)


@dataclass
class Run:
    settings: HitoSettings
    policy: str
    started: datetime
    sent: list[SimMessage] = field(default_factory=list)
    pages: list[dict[str, Any]] = field(default_factory=list)
    killed_mid_backfill: bool = False
    backfilled_by_last: float = 0.0


@pytest.fixture(scope="module")
def run(
    stack: HitoSettings, runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    settings = make_isolated(stack)
    runtime = dataclasses.replace(runtime, settings=settings)
    now = datetime.now(UTC)
    # The history of a fleet without the daily rhythm, as below: with it, CI at 23:00 in
    # Arica scored the flat fleet 7-14 (CheckpointSurge paged for both sites).
    _write_history(runtime, now, daily_rhythm=False)
    logs: Path = tmp_path_factory.mktemp("backfill")
    app_id = f"hito-backfill-{uuid.uuid4().hex[:6]}"

    def worker(n: int, **env: str) -> WorkerProcess:
        w = WorkerProcess.start(settings, app_id, free_port(), logs / f"worker-{n}.log", env=env)
        w.wait_ready(120)
        return w

    first = worker(1)
    workers = [first]
    result = Run(settings, runtime.policy.version, datetime.now(UTC))
    try:
        plan = FleetPlan(
            count=int(RATE * (OFFLINE_AFTER_S + OFFLINE_FOR_S + AFTER_S)),
            seed=23,
            daily_rhythm=False,
            offline_devices=frozenset({TERMINAL}),
            offline_after_s=OFFLINE_AFTER_S,
            offline_for_s=OFFLINE_FOR_S,
            offline_span_s=OUTAGE_SPAN_S,
            raw_topics=dict(settings.pipeline.raw_topics),
        )
        fleet = Fleet(runtime.registry, plan, now, clock=lambda: datetime.now(UTC))

        def recorded() -> Iterator[SimMessage]:
            for message in fleet.messages():
                result.sent.append(message)
                yield message

        sender = threading.Thread(
            target=send_messages,
            args=(recorded(),),
            kwargs={
                "producer_config": client_config(settings.kafka, "device"),
                "total": plan.count,
                "rate": RATE,
            },
            daemon=True,
        )
        sender.start()
        # Mid-outage, before DeviceSilent could fire: kill -9, and a successor that will
        # kill itself in the middle of the backfill.
        time.sleep(OFFLINE_AFTER_S + 60)
        first.kill9()
        # Its target file would keep Prometheus scraping a dead address, and WorkerDown
        # firing into the modules after this one.
        first.forget()
        second = worker(2, HITO_TEST_KILL_MID_BACKFILL="1")
        workers.append(second)

        def silent_page() -> bool:
            return any(
                p["alertname"] == "DeviceSilent"
                and p["status"] == "firing"
                and p["labels"].get("device_id") == TERMINAL
                for p in _pages_since(settings, result.started)
            )

        _wait_for("DeviceSilent for the terminal", OFFLINE_FOR_S + 60, silent_page)
        _wait_for("the backfill's kill", OFFLINE_FOR_S + 60, lambda: not second.alive())
        result.killed_mid_backfill = b"killed mid-backfill" in second.log_path.read_bytes()
        second.forget()
        third = worker(3)
        workers.append(third)
        sender.join(timeout=AFTER_S + 120)
        assert not sender.is_alive(), "the fleet did not finish sending"
        exp = expected_from(result.sent, settings.pipeline.window_s)
        _wait_for(
            "InfluxDB to hold every crossing, reading and fix",
            120,
            lambda: totals(settings) == expected_totals(exp),
        )

        def resolved() -> bool:
            return any(
                p["alertname"] == "DeviceSilent"
                and p["status"] == "resolved"
                and p["labels"].get("device_id") == TERMINAL
                for p in _pages_since(settings, result.started)
            )

        _wait_for("DeviceSilent to resolve", 240, resolved)
        result.pages = _pages_since(settings, result.started)
        result.backfilled_by_last = third.metric("hito_backfill_events_total")
        yield result
    finally:
        for w in workers:
            w.stop()


def test_the_worker_died_in_the_middle_of_the_backfill(run: Run) -> None:
    assert run.killed_mid_backfill
    assert run.backfilled_by_last > 0  # its successor counted the rest again


def test_every_minute_of_the_outage_is_exact_and_suppressed(run: Run) -> None:
    backlog = [m for m in run.sent if m.buffered and m.device_id == TERMINAL]
    assert len(backlog) > 100
    assert_exact(run.settings, expected_from(run.sent, run.settings.pipeline.window_s), run.policy)


def test_the_revised_minutes_are_marked(run: Run) -> None:
    backlog = Counter(
        _window(orjson.loads(m.value)["event_time"])
        for m in run.sent
        if m.buffered and m.expected == VALID
    )
    revised = {p["_time"]: p for p in query_points(run.settings, "revisions")}
    assert {p["source"] for p in revised.values()} == {"checkpoint"}
    assert set(revised) <= set(backlog)  # only the terminal's minutes were revised
    # Its minutes older than half an hour had closed long before it came back: every one of
    # them revised, by exactly its backlog, at a time during this run.
    reconnected = run.started + timedelta(seconds=OFFLINE_AFTER_S + OFFLINE_FOR_S)
    old = {m: n for m, n in backlog.items() if m < reconnected - timedelta(minutes=30)}
    assert len(old) >= 60
    assert {m: int(revised[m]["events"]) for m in old} == old
    assert all(int(p["revised_at"]) >= int(run.started.timestamp()) for p in revised.values())


def _window(event_time: str) -> datetime:
    ts = int(datetime.fromisoformat(event_time).timestamp())
    return datetime.fromtimestamp(ts - ts % 60, tz=UTC)


def test_device_silent_paged_and_resolved_and_no_surge(run: Run) -> None:
    mine = [p for p in run.pages if p["labels"].get("device_id") == TERMINAL]
    assert [p["status"] for p in mine if p["alertname"] == "DeviceSilent"][:1] == ["firing"]
    assert "resolved" in [p["status"] for p in mine if p["alertname"] == "DeviceSilent"]
    assert [p for p in run.pages if p["alertname"] == "CheckpointSurge"] == []
    # The pipeline's own verdict, in this run's bucket: live minutes were scored, none high.
    scores = [float(p["score"]) for p in query_points(run.settings, "surge")]
    assert scores and max(scores) < 4
