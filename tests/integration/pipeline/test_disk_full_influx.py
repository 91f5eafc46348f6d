"""InfluxDB's disk nearly full mid-run: a clear error, nothing lost, nothing corrupted.

A second, real InfluxDB (the project's build) runs with its data on a small tmpfs. The disk is
filled until InfluxDB refuses writes; the worker must treat that as an outage (back off, keep
every window, stay alive). Found here: InfluxDB 2.9.1 does not reopen a shard whose opening
failed for lack of space until it restarts ("not attempting to open shard ... previously
failed"), so the recovery is the runbook's: free space, restart InfluxDB. After that the values
in InfluxDB must be exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

from hito.access.influx_tokens import ensure_bucket_tokens
from hito.credentials import client_config
from hito.device.simulate.fleet import Fleet, FleetPlan
from hito.device.simulate.runner import send_messages
from hito.runtime import Runtime
from hito.settings import HitoSettings
from hito.stack.services import SERVICES, InfluxDB
from tests.integration.pipeline.conftest import free_port, running_worker, wait_until
from tests.integration.pipeline.test_aggregation import (
    assert_exact,
    expected_from,
    expected_totals,
    totals,
)

DISK_MB = 96


@contextlib.contextmanager
def _small_disk(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class _Influxd:
    """A second InfluxDB on a free port with its data under ``data``, set up like the stack's."""

    def __init__(self, settings: HitoSettings, data: Path, log: Path) -> None:
        self.service = next(s for s in SERVICES if isinstance(s, InfluxDB))
        influx = settings.influxdb.model_copy(update={"port": free_port()})
        self.settings = settings.model_copy(update={"influxdb": influx})
        self.data, self.log = data, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        data, settings = self.data, self.settings
        argv = [
            str(self.service.binary(settings)),
            f"--bolt-path={data / 'influxd.bolt'}",
            f"--engine-path={data / 'engine'}",
            f"--sqlite-path={data / 'influxd.sqlite'}",
            f"--http-bind-address=127.0.0.1:{settings.influxdb.port}",
            "--reporting-disabled",
            "--log-level=info",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self.service.healthy(settings):
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            assert time.monotonic() < deadline, "second InfluxDB not healthy in 60 s"
            time.sleep(0.3)
        url = settings.influxdb.url
        if httpx.get(f"{url}/api/v2/setup", timeout=5).json().get("allowed"):
            self.service._setup(settings)  # org, bucket, admin token: as `hito up` does

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@contextlib.contextmanager
def _influxd(settings: HitoSettings, data: Path, log: Path) -> Iterator[_Influxd]:
    server = _Influxd(settings, data, log)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _fill(disk: Path, leave_bytes: int) -> Path:
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    subprocess.run(["fallocate", "-l", str(max(0, free - leave_bytes)), str(filler)], check=True)
    return filler


def test_influxdb_disk_full_mid_run_then_freed_is_exact(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    base = isolated_runtime.settings
    with (
        _small_disk(tmp_path / "disk") as disk,
        _influxd(base, disk, tmp_path / "influxd.log") as server,
    ):
        s = server.settings
        tokens = ensure_bucket_tokens(s.influxdb, tmp_path / "tokens.json")
        settings = s.model_copy(
            update={
                "influxdb": s.influxdb.model_copy(update={"pipeline_token": tokens["pipeline"]})
            }
        )
        plan = FleetPlan(count=3000, seed=31, bad_fraction=0.03, duplicate_fraction=0.04,
                         raw_topics=dict(settings.pipeline.raw_topics))  # fmt: skip
        messages = list(Fleet(isolated_runtime.registry, plan, datetime.now(UTC)).messages())
        exp = expected_from(messages, settings.pipeline.window_s)
        runtime = isolated_runtime.__class__(
            settings=settings,
            registry=isolated_runtime.registry,
            policy=isolated_runtime.policy,
            key_store=isolated_runtime.key_store,
        )
        filler = _fill(disk, leave_bytes=64 * 1024)

        async def scenario() -> tuple[float, bool]:
            async with running_worker(runtime) as worker:
                await asyncio.to_thread(
                    send_messages,
                    messages,
                    producer_config=client_config(settings.kafka, "device"),
                    total=len(messages),
                )

                def errors() -> float:
                    r = worker.metrics.registry
                    return r.get_sample_value("hito_sink_errors_total", {"kind": "retryable"}) or 0

                await wait_until(lambda: errors() >= 3, 120, "InfluxDB to refuse writes")
                # (consumption pauses while the sink backs off: back-pressure, not loss)
                refused = errors()
                # The operator's recovery (docs/runbooks/SinkFailing.md): free space, restart.
                filler.unlink()
                await asyncio.to_thread(server.stop)
                await asyncio.to_thread(server.start)
                target = expected_totals(exp)
                await wait_until(lambda: totals(settings) == target, 120, f"totals {target}")
                await asyncio.sleep(3)  # and they stay there
                return refused, worker.sink.healthy

        refused, healthy = asyncio.run(scenario())
        assert refused >= 3 and healthy
        assert totals(settings) == expected_totals(exp)
        assert_exact(settings, exp, isolated_runtime.policy.version)
        # InfluxDB said why, and is still healthy (no corruption of its files).
        log = (tmp_path / "influxd.log").read_text()
        assert "no space left on device" in log
        assert httpx.get(f"{settings.influxdb.url}/health", timeout=5).json()["status"] == "pass"
