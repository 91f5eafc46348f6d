"""`hito up` leaves a healthy service alone, so a stack started by an older Hito keeps its old
Prometheus: `hito up` and `hito status` say so (here against a stand-in answering the API)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hito.settings import HitoSettings
from hito.settings.sections import AlertmanagerSettings, PrometheusSettings
from hito.stack.manager import outdated


@pytest.fixture
def old_prometheus() -> Iterator[int]:
    class BuildInfo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "success", "data": {"version": "2.42.0+ds"}}).encode()
            self.send_response(200 if self.path == "/api/v1/status/buildinfo" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), BuildInfo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_an_older_running_prometheus_is_named(old_prometheus: int, tmp_path: Path) -> None:
    settings = HitoSettings(
        state_dir=tmp_path,
        prometheus=PrometheusSettings(port=old_prometheus),
        alertmanager=AlertmanagerSettings(port=1),  # nothing answers: nothing to say
        pager_port=1,
    )
    assert outdated(settings) == [
        "prometheus 2.42.0+ds is running where 3.16.0 is configured: `hito down` and "
        "`hito up` start 3.16.0"
    ]
    same = settings.model_copy(
        update={"prometheus": settings.prometheus.model_copy(update={"version": "2.42.0+ds"})}
    )
    assert outdated(same) == []
