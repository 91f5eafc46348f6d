"""Prometheus discovers a prometheus-client endpoint from its target file and answers a query."""

from __future__ import annotations

import time
import uuid

import httpx
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from hito.settings import HitoSettings
from hito.stack import discovery


def test_prometheus_scrapes_an_endpoint_it_discovers_from_a_file(stack: HitoSettings) -> None:
    run = uuid.uuid4().hex[:10]
    registry = CollectorRegistry()
    gauge = Gauge("hito_smoke_value", "smoke test value", ["run"], registry=registry)
    gauge.labels(run=run).set(42.5)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    address = f"127.0.0.1:{server.server_port}"
    target = discovery.register(stack, address, {"app_id": f"smoke-{run}"})
    try:
        query = f'hito_smoke_value{{run="{run}", job="hito-worker"}}'
        deadline = time.monotonic() + 45  # file discovery within seconds, then a 5 s scrape
        result: list[dict[str, object]] = []
        while time.monotonic() < deadline and not result:
            r = httpx.get(f"{stack.prometheus.url}/api/v1/query", params={"query": query})
            r.raise_for_status()
            result = r.json()["data"]["result"]
            if not result:
                time.sleep(1)
        assert len(result) == 1, f"Prometheus never scraped {address} (listed in {target})"
        metric = result[0]["metric"]
        assert isinstance(metric, dict)
        assert (metric["instance"], metric["app_id"]) == (address, f"smoke-{run}")
        value = result[0]["value"]
        assert isinstance(value, list)
        assert float(value[1]) == 42.5
    finally:
        discovery.unregister(target)
        server.shutdown()
        thread.join(timeout=5)
