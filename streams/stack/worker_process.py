"""`hito worker` as a child process with the given settings' topics and bucket: used by the
demo and by the tests that kill, restart and scale workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from hito.settings import HitoSettings
from hito.stack import discovery


def free_port() -> int:
    """A loopback port nobody listens on now (the OS's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    metrics_port: int
    log_path: Path
    target_file: Path | None  # its file for Prometheus' discovery (None: not registered)

    @classmethod
    def start(
        cls,
        settings: HitoSettings,
        app_id: str,
        metrics_port: int,
        log_path: Path,
        *,
        register: bool = True,
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        """``register``: list it for the Prometheus of ``settings`` (file discovery); a
        measured or throw-away worker may stay out of it. ``env``: more variables (a test's
        fault hook)."""
        prometheus = settings.prometheus.model_copy(
            update={"worker_targets_dir": discovery.worker_targets_dir(settings)}
        )
        # These sections go whole, as JSON: a variable for one of their fields in this
        # process's environment (HITO_KAFKA__PORT=…) would override the JSON's value.
        whole = ("HITO_KAFKA__", "HITO_PIPELINE__", "HITO_PROMETHEUS__")
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(whole)},
            # The state directory holds the bucket's scoped InfluxDB token (tokens.json).
            "HITO_STATE_DIR": str(settings.state_dir),
            "HITO_PIPELINE": settings.pipeline.model_dump_json(),
            "HITO_KAFKA": settings.kafka.model_dump_json(),
            "HITO_PROMETHEUS": prometheus.model_dump_json(),
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
                    "--register" if register else "--no-register",
                ],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        target = discovery.target_file(settings, f"127.0.0.1:{metrics_port}") if register else None
        return cls(proc, metrics_port, log_path, target)

    @property
    def address(self) -> str:
        """Its metrics endpoint, host:port: Prometheus' ``instance`` label for it."""
        return f"127.0.0.1:{self.metrics_port}"

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

    def forget(self) -> None:
        """Remove the target file a killed worker left (a test cleaning up after itself)."""
        if self.target_file is not None and not self.alive():
            discovery.unregister(self.target_file)

    def crashes(self) -> int:
        return self.log_path.read_bytes().count(b"Crashed reason=")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_bytes().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])
