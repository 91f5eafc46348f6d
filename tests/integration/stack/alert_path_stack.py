"""A private alert path for tests: the real Prometheus, Alertmanager and `hito pager`, started
by the stack's own code (hito.stack.services: token, config copy, argv) on quiet loopback ports
with a temporary state directory, plus the forward target (the "paging service"), a local
HTTP server the test switches off and on.

Test copies of the shipped configs differ only where time matters: Prometheus scrapes and
evaluates every second, loads only infra/prometheus/rules/alertpath.yml (the rules under test:
the pipeline's rules would page about the missing workers) and scrapes only the pager;
Alertmanager re-sends the Watchdog every 2 s instead of every minute.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hito.ops.pager.auth import token_path
from hito.settings import REPO_ROOT, HitoSettings
from hito.settings.sections import AlertmanagerSettings, PrometheusSettings
from hito.stack import process
from hito.stack.services import Alertmanager, PagerService, Prometheus, Service

SHIPPED = REPO_ROOT / "infra"
T = TypeVar("T")


# Ports of the private alert paths: below the kernel's ephemeral range, away from the shared
# stack's (13000, 18086, 19090-19500) and from test_cluster.py's Kafka nodes (21000-31020).
QUIET_PORTS = range(14000, 18000)
_handed_out: set[int] = set()  # never the same port twice in a session: one may be closed
_handing_out = threading.Lock()


def quiet_port() -> int:
    """A free loopback port of QUIET_PORTS not handed out before in this session. No client
    socket and no spare port of another test (bound to port 0: ephemeral) takes it, so a
    service may close it and open it again (the forward target down for minutes, the pager
    restarted) while the session runs beside it (paging_outage.py)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert QUIET_PORTS.stop <= low, f"the ephemeral range starts at {low}, below {QUIET_PORTS}"
    rng = random.SystemRandom()
    with _handing_out:
        for _ in range(200):
            port = rng.choice(QUIET_PORTS)
            if port in _handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue  # in use
            _handed_out.add(port)
            return port
    raise AssertionError(f"no free port in {QUIET_PORTS}")


def wait_for(what: str, timeout_s: float, check: Callable[[], T | None], every_s: float = 0.5) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(every_s)


def write_test_configs(
    infra: Path, prometheus_port: int, alertmanager_port: int, pager_port: int
) -> None:
    """Write the shipped configs, shortened as the module docstring says, under ``infra``."""
    prom = yaml.safe_load((SHIPPED / "prometheus" / "prometheus.yml").read_text())
    prom["global"].update(scrape_interval="1s", evaluation_interval="1s")
    prom["rule_files"] = [str(SHIPPED / "prometheus" / "rules" / "alertpath.yml")]
    prom["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [f"127.0.0.1:{alertmanager_port}"]}
    ]
    prom["scrape_configs"] = [
        {"job_name": "hito-pager", "static_configs": [{"targets": [f"127.0.0.1:{pager_port}"]}]}
    ]
    (infra / "prometheus").mkdir(parents=True)
    (infra / "prometheus" / "prometheus.yml").write_text(yaml.safe_dump(prom))

    shipped = (SHIPPED / "alertmanager" / "alertmanager.yml").read_text()
    am = yaml.safe_load(shipped.replace("127.0.0.1:19097", f"127.0.0.1:{pager_port}"))
    [watchdog] = [r for r in am["route"]["routes"] if r["receiver"] == "pager-watchdog"]
    watchdog.update(group_interval="1s", repeat_interval="2s")
    (infra / "alertmanager").mkdir(parents=True)
    (infra / "alertmanager" / "alertmanager.yml").write_text(yaml.safe_dump(am))


class ForwardTarget:
    """The paging service: records every JSON body POSTed to it, answers 200. ``down()``
    closes its port (connection refused), ``up()`` opens the same port again."""

    def __init__(self) -> None:
        self.port = quiet_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def up(self) -> None:
        received = self.received

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(orjson.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Hook)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = self._thread = None

    def alertnames(self) -> list[tuple[str, str]]:
        return [(m["alerts"][0]["labels"]["alertname"], m["status"]) for m in self.received]


@dataclass
class AlertPath:
    """Prometheus, Alertmanager and the pager of one test, each a detached process with its
    pid file and log under ``settings.state_dir`` (hito.stack.process, as `hito up` runs them)."""

    settings: HitoSettings
    pager_env: dict[str, str]
    pager_args: list[str]
    prometheus: Service = field(default_factory=lambda: Prometheus("prometheus", ""))
    alertmanager: Service = field(default_factory=lambda: Alertmanager("alertmanager", ""))
    pager: Service = field(default_factory=lambda: PagerService("pager", ""))

    @classmethod
    def create(cls, root: Path, *, watchdog_timeout_s: float, forward_url: str | None) -> AlertPath:
        ports = [quiet_port() for _ in range(3)]
        write_test_configs(root / "infra", *ports)
        settings = HitoSettings(
            state_dir=root / "state",
            infra_dir=root / "infra",
            prometheus=PrometheusSettings(port=ports[0]),
            alertmanager=AlertmanagerSettings(port=ports[1]),
            pager_port=ports[2],
        )
        env = {
            "HITO_STATE_DIR": str(settings.state_dir),
            "HITO_PAGER_PORT": str(settings.pager_port),
            "HITO_PAGER_WATCHDOG_TIMEOUT": str(watchdog_timeout_s),
            "HITO_PAGER_FORWARD_URL": forward_url or "",
        }
        # A short grace (Alertmanager retries a restarted pager within seconds here) and a
        # back-off cap that delivers within 2 s of the target's return.
        args = ["--watchdog-grace=10", "--forward-retry-max=2"]
        return cls(settings, env, args)

    @property
    def pager_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.pager_port}"

    @property
    def page_log(self) -> Path:
        return self.settings.state_dir / "pager" / "pages.jsonl"

    def bearer(self) -> dict[str, str]:
        token = token_path(self.settings.state_dir).read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def start(self, svc: Service) -> None:
        svc.prepare(self.settings)
        argv = svc.argv(self.settings)
        env = None
        if svc is self.pager:
            argv, env = [*argv, *self.pager_args], self.pager_env
        process.start(argv, svc.files(self.settings), cwd=svc.data_dir(self.settings), env=env)
        wait_for(f"{svc.name} healthy", 60, lambda: self._healthy(svc))

    def _healthy(self, svc: Service) -> bool:
        if svc.healthy(self.settings):
            return True
        if process.read_pid(svc.files(self.settings)) is None:
            log = svc.files(self.settings).log_path.read_text()[-3000:]
            raise AssertionError(f"{svc.name} exited during start-up:\n{log}")
        return False

    def start_all(self) -> None:
        for svc in (self.prometheus, self.alertmanager, self.pager):
            self.start(svc)

    def kill(self, svc: Service) -> None:
        """SIGKILL: a crash, not a shutdown (nothing gets to say goodbye)."""
        files = svc.files(self.settings)
        pid = process.read_pid(files)
        assert pid is not None, f"{svc.name} is not running"
        os.kill(pid, signal.SIGKILL)
        wait_for(f"{svc.name} gone", 10, lambda: process.read_pid(files) is None, every_s=0.1)

    def stop_all(self) -> None:
        for svc in (self.pager, self.alertmanager, self.prometheus):
            process.stop(svc.files(self.settings), timeout_s=10)

    def pages(self, alertname: str) -> list[dict[str, Any]]:
        pages: list[dict[str, Any]] = httpx.get(f"{self.pager_url}/pages", timeout=5).json()
        return [p for p in pages if p["alertname"] == alertname]

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        text = httpx.get(f"{self.pager_url}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and s.labels == (labels or {}):
                    return float(s.value)
        return None
