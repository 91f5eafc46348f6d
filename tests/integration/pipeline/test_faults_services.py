"""Faults of the services around the worker (issue #7's fault suite): a Kafka broker restart
mid-run and Prometheus down, each ending in exact InfluxDB values and conservation
(in = accepted + DLQ + duplicates), with the worker alive and never crashed."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from hito.credentials import client_config
from hito.device.simulate.runner import send_messages
from hito.runtime import Runtime
from hito.stack import manager, process
from hito.stack.services import SERVICES
from hito.stack.worker_process import WorkerProcess
from tests.integration.pipeline.test_aggregation import assert_exact
from tests.integration.pipeline.test_faults import (
    PORTS,
    _fleet,
    _wait_for_influx,
    make_runner_quiet,
)


def _conserved(worker: WorkerProcess, sent: int, timeout_s: float = 60) -> None:
    """Every message sent is accepted, rejected or a duplicate — counted once."""
    deadline = time.monotonic() + timeout_s
    while worker.metric("hito_events_total") < sent and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    assert worker.metric("hito_events_total") == sent


def test_kafka_broker_restart_mid_run_is_exact(isolated_runtime: Runtime, tmp_path: Path) -> None:
    settings = isolated_runtime.settings
    messages, exp = _fleet(isolated_runtime, 4000, seed=37)
    kafka = next(s for s in SERVICES if s.name == "kafka")
    worker = WorkerProcess.start(
        settings, f"hito-brokerfault-{uuid.uuid4().hex[:6]}", PORTS[0], tmp_path / "w.log"
    )
    try:
        worker.wait_ready()
        half = len(messages) // 2
        # The first half flat out, so the worker is still busy when the broker goes away.
        send_messages(
            messages[:half], producer_config=client_config(settings.kafka, "device"), total=half
        )
        assert worker.metric("hito_events_total") < half, "worker drained before the fault"
        assert process.stop(kafka.files(settings)), "Kafka was not running"
        time.sleep(10)
        manager.up(settings, make_runner_quiet())
        send_messages(
            messages[half:],
            producer_config=client_config(settings.kafka, "device"),
            total=len(messages) - half,
        )
        _wait_for_influx(settings, exp, timeout_s=180)
        _conserved(worker, len(messages))
        assert worker.alive() and worker.crashes() == 0, worker.log_tail()
    finally:
        worker.stop()
        manager.up(settings, make_runner_quiet())
    assert_exact(settings, exp, isolated_runtime.policy.version)


def test_prometheus_down_leaves_the_pipeline_unaffected(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    settings = isolated_runtime.settings
    messages, exp = _fleet(isolated_runtime, 2000, seed=43)
    prometheus = next(s for s in SERVICES if s.name == "prometheus")
    worker = WorkerProcess.start(
        settings, f"hito-promfault-{uuid.uuid4().hex[:6]}", PORTS[0], tmp_path / "w.log"
    )
    try:
        worker.wait_ready()
        assert process.stop(prometheus.files(settings)), "Prometheus was not running"
        send_messages(
            messages,
            producer_config=client_config(settings.kafka, "device"),
            total=len(messages),
            rate=200,
        )
        _wait_for_influx(settings, exp, timeout_s=120)
        _conserved(worker, len(messages))
        assert worker.alive() and worker.crashes() == 0, worker.log_tail()
    finally:
        worker.stop()
        manager.up(settings, make_runner_quiet())
    assert_exact(settings, exp, isolated_runtime.policy.version)
