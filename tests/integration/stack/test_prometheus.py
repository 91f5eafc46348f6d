"""Prometheus scrapes a prometheus-client endpoint on a worker port and answers a query."""

from __future__ import annotations

import socket
import time
import uuid

import httpx
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from hito.settings import HitoSettings


def _free_worker_port(settings: HitoSettings) -> int:
    for port in reversed(settings.worker_metrics_ports):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise AssertionError("every worker metrics port is taken; stop running workers first")


def test_prometheus_scrapes_a_worker_endpoint(stack: HitoSettings) -> None:
    run = uuid.uuid4().hex[:10]
    registry = CollectorRegistry()
    gauge = Gauge("hito_smoke_value", "smoke test value", ["run"], registry=registry)
    gauge.labels(run=run).set(42.5)
    port = _free_worker_port(stack)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        query = f'hito_smoke_value{{run="{run}", job="hito-worker"}}'
        deadline = time.monotonic() + 45  # scrape interval is 5 s
        result: list[dict[str, object]] = []
        while time.monotonic() < deadline and not result:
            r = httpx.get(f"{stack.prometheus.url}/api/v1/query", params={"query": query})
            r.raise_for_status()
            result = r.json()["data"]["result"]
            if not result:
                time.sleep(1)
        assert len(result) == 1, f"Prometheus never scraped 127.0.0.1:{port}"
        metric = result[0]["metric"]
        assert isinstance(metric, dict)
        assert metric["instance"] == f"127.0.0.1:{port}"
        value = result[0]["value"]
        assert isinstance(value, list)
        assert float(value[1]) == 42.5
    finally:
        server.shutdown()
        thread.join(timeout=5)
