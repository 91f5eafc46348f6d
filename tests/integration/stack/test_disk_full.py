"""Fault: the disk of the state directory fills up under a running `hito pager serve`.

A real, tiny filesystem (tmpfs, a few MB) is mounted as the state directory and filled by a
filler file; the real pager runs as `hito up` runs it (a subprocess of `streams.cli`), and gets
the webhook Alertmanager would send. Expected: a 5xx (Alertmanager retries: the page is not
lost), one clear error in the log, the `hito_pager_write_errors_total{reason="no_space"}`
metric, and a page log without a torn line; once space is freed, the retry is recorded whole.

Needs root for `mount` (CI runs as root): without it these tests fail, they never skip. They
do not use the session `stack` fixture: only the pager runs, on an ephemeral port.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hito.settings import REPO_ROOT

MB = 1024 * 1024
TMPFS_SIZE = 4 * MB


@contextlib.contextmanager
def tiny_tmpfs(mountpoint: Path, size: int = TMPFS_SIZE) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (CI runs as root); not skipped on purpose")
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "hito-disk-full", mountpoint],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"mount -t tmpfs on {mountpoint} failed: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", mountpoint], check=True)


def fill_leaving(directory: Path, free: int) -> Path:
    """A filler file taking all the space of ``directory``'s filesystem but ``free`` bytes."""
    filler = directory / "filler"
    chunk = b"\0" * MB
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC: the disk is full
        f.truncate(f.tell() - free)  # tell(): where the short write left the file's end
    return filler


def free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def free_port() -> int:
    # Ephemeral, so it never collides with the stack's fixed ports (19090-19103).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pager_argv(port: int, min_free_mb: float) -> list[str]:
    cli = [sys.executable, "-m", "hito.cli"]
    return [*cli, "pager", "serve", f"--port={port}", f"--min-free-mb={min_free_mb}"]


def pager_env(state_dir: Path) -> dict[str, str]:
    return os.environ | {"HITO_STATE_DIR": str(state_dir)}


@contextlib.contextmanager
def running_pager(state_dir: Path, log_file: Path, min_free_mb: float) -> Iterator[str]:
    """`hito pager serve` on an ephemeral port, stopped (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            pager_argv(port, min_free_mb),
            env=pager_env(state_dir),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"pager exited with {process.returncode}: {log_file.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"pager not healthy after 30 s: {log_file.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bearer(state_dir: Path) -> dict[str, str]:
    """The header Alertmanager sends: the token the pager created in its state directory."""
    token = (state_dir / "pager" / "token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def device_silent(n: int) -> dict[str, Any]:
    """Alertmanager 0.25's webhook body (receiver pager-low) for ``n`` sensors gone quiet at
    Chacalluta: grouped by alertname and site, so one notification carries all of them."""
    return {
        "version": "4",
        "groupKey": '{}/{severity!="critical"}:{alertname="DeviceSilent", site="chacalluta"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "pager-low",
        "groupLabels": {"alertname": "DeviceSilent", "site": "chacalluta"},
        "commonLabels": {"alertname": "DeviceSilent", "severity": "warning", "site": "chacalluta"},
        "commonAnnotations": {"runbook_url": "docs/runbooks/DeviceSilent.md"},
        "externalURL": "http://127.0.0.1:19093",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "DeviceSilent",
                    "severity": "warning",
                    "site": "chacalluta",
                    "device_id": f"chacalluta-lidar-{i:03d}",
                    "instance": "127.0.0.1:19100",
                    "job": "hito-worker",
                },
                "annotations": {
                    "summary": f"No event from chacalluta-lidar-{i:03d} for 2 minutes",
                    "runbook_url": "docs/runbooks/DeviceSilent.md",
                },
                "startsAt": "2026-11-28T04:01:05.123Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:19090/graph?g0.expr=hito_device_last_seen",
                "fingerprint": f"{i:016x}",
            }
            for i in range(n)
        ],
    }


def sample(metrics_text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def test_a_full_disk_refuses_the_page_cleanly_and_the_retry_records_it(tmp_path: Path) -> None:
    log_file = tmp_path / "pager.log"  # on the real disk: the tmpfs will be full
    with (
        tiny_tmpfs(tmp_path / "state") as state,
        running_pager(state, log_file, min_free_mb=1) as url,
    ):
        page_log = state / "pager" / "pages.jsonl"
        first = device_silent(1)
        r = httpx.post(
            f"{url}/alerts/low", content=orjson.dumps(first), headers=bearer(state), timeout=10
        )
        assert (r.status_code, r.json()) == (200, {"recorded": 1})
        before = page_log.read_bytes()

        # 8 kB free: part of the 40 pages fits (checked below), then the disk is full.
        filler = fill_leaving(state, free=8192)
        assert free_bytes(state) == 8192
        body = orjson.dumps(device_silent(40))

        r = httpx.post(f"{url}/alerts/low", content=body, headers=bearer(state), timeout=10)
        assert r.status_code == 503  # 5xx: Alertmanager keeps the page and retries
        assert r.json() == {
            "error": f"page log {page_log}: no space left on device",
            "recorded": 0,
        }
        # No torn line, and none of the 40 pages half-recorded: the log is as it was.
        assert page_log.read_bytes() == before
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert sample(metrics, "hito_pager_write_errors_total", {"reason": "no_space"}) == 1
        assert sample(metrics, "hito_pager_write_errors_total", {"reason": "io"}) == 0
        errors = [line for line in log_file.read_text().splitlines() if " ERROR " in line]
        assert len(errors) == 1, errors
        assert errors[0].endswith(
            f"could not record 40 page(s) in {page_log}: no space left on device; "
            "answering 503 so Alertmanager retries"
        )

        filler.unlink()  # the operator frees space; Alertmanager retries the same body
        r = httpx.post(f"{url}/alerts/low", content=body, headers=bearer(state), timeout=10)
        assert (r.status_code, r.json()) == (200, {"recorded": 40})

        raw = page_log.read_bytes()
        # The 40 pages need more than the 8 kB that were free plus the slack of the log's
        # last 4 kB page: the refused append really ran out of space half-way.
        assert len(raw) - len(before) > 8192 + 4096
        assert raw.endswith(b"\n")
        lines = raw.split(b"\n")[:-1]
        assert len(lines) == 41
        pages = [orjson.loads(line) for line in lines]  # every line is whole JSON
        assert [p["fingerprint"] for p in pages] == [f"{i:016x}" for i in (0, *range(40))]
        assert {(p["urgency"], p["alertname"], p["site"]) for p in pages} == {
            ("low", "DeviceSilent", "chacalluta")
        }
        assert len(httpx.get(f"{url}/pages", timeout=10).json()) == 41
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        firing = {"urgency": "low", "status": "firing", "alertname": "DeviceSilent"}
        assert sample(metrics, "hito_pager_pages_total", firing) == 41
        assert sample(metrics, "hito_pager_write_errors_total", {"reason": "no_space"}) == 1


def test_the_pager_refuses_to_start_on_a_nearly_full_state_directory(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "state") as state:
        fill_leaving(state, free=512 * 1024)
        free_mb = free_bytes(state) / MB
        assert free_mb == 0.5
        refused = subprocess.run(
            pager_argv(free_port(), min_free_mb=1),
            env=pager_env(state),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 1, refused.stderr
        errors = [line for line in refused.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1, refused.stderr
        assert errors[0].endswith(
            f"pager not started: state directory {state / 'pager'} is nearly full: "
            "0.5 MB free, at least 1.0 MB needed; free some space there "
            "(or point HITO_STATE_DIR at a bigger disk) and start again"
        )
        assert "Traceback" not in refused.stderr
        assert not (state / "pager").exists()  # refused before creating anything

        # The threshold is the operator's: below what is free, the same directory is fine.
        with running_pager(state, tmp_path / "pager.log", min_free_mb=0.25) as url:
            assert httpx.get(f"{url}/pages", timeout=10).json() == []
