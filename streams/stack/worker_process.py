"""`hito worker` as a child process with the given settings' topics and bucket: used by the
demo and by the tests that kill, restart and scale workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from hito.settings import HitoSettings


def free_metrics_port(ports: tuple[int, ...]) -> int:
    """The first of the worker metrics ports (the ones Prometheus scrapes) nobody listens on."""
    for port in ports:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"all worker metrics ports {ports} are taken")


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    metrics_port: int
    log_path: Path

    @classmethod
    def start(
        cls,
        settings: HitoSettings,
        app_id: str,
        metrics_port: int,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> WorkerProcess:
        """``env``: more environment for the worker (e.g. a test's fault hook)."""
        child_env = {
            **os.environ,
            "HITO_PIPELINE": settings.pipeline.model_dump_json(),
            "HITO_INFLUXDB__BUCKET": settings.influxdb.bucket,
            **(env or {}),
        }
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hito.cli",
                    "worker",
                    "--app-id",
                    app_id,
                    "--metrics-port",
                    str(metrics_port),
                ],
                env=child_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(proc, metrics_port, log_path)

    def metric(self, name: str) -> float:
        """Sum of a metric's samples (0 when the worker does not answer yet)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return 0.0
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")
        )

    def metric_by(self, name: str, label: str) -> dict[str, float]:
        """A metric's samples summed per value of one label ({} when the worker is silent)."""
        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return {}
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and label in s.labels:
                    out[s.labels[label]] = out.get(s.labels[label], 0.0) + s.value
        return out

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Until the worker has joined its group and recovered its tables."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if b"Worker]: Ready" in self.log_path.read_bytes():
                return
            if not self.alive():
                raise RuntimeError("worker exited before it was ready:\n" + self.log_tail())
            time.sleep(0.3)
        raise RuntimeError("worker not ready:\n" + self.log_tail())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def crashes(self) -> int:
        return self.log_path.read_bytes().count(b"Crashed reason=")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_bytes().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])
