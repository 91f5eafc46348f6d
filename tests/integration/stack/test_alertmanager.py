"""An alert posted to Alertmanager reaches a webhook receiver on loopback (the pager port)."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from streams.settings import HitoSettings


def _webhook(port: int) -> tuple[ThreadingHTTPServer, queue.Queue[tuple[str, Any]]]:
    received: queue.Queue[tuple[str, Any]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.put((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def test_alert_reaches_the_pager_webhook(stack: HitoSettings) -> None:
    run = uuid.uuid4().hex[:10]
    server, received = _webhook(stack.pager_port)
    try:
        now = datetime.now(UTC)
        alert = {
            "labels": {"alertname": "HitoSmokeTest", "run": run, "severity": "critical"},
            "annotations": {"summary": "smoke test", "runbook_url": "docs/runbooks/none.md"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=5)).isoformat(),
        }
        r = httpx.post(f"{stack.alertmanager.url}/api/v2/alerts", json=[alert])
        assert r.status_code == 200
        # group_wait is 10 s; other tests' alerts may arrive too, so look for ours.
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        ours = None
        while ours is None and datetime.now(UTC) < deadline:
            path, payload = received.get(timeout=60)
            for a in payload["alerts"]:
                if a["labels"].get("run") == run:
                    ours = (path, payload, a)
        assert ours is not None, "Alertmanager never delivered the alert"
        path, payload, a = ours
        assert path == "/alerts"
        assert payload["receiver"] == "pager"
        assert a["status"] == "firing"
        assert a["labels"]["alertname"] == "HitoSmokeTest"
    finally:
        server.shutdown()
        server.server_close()
