"""``hito worker``: one pipeline worker (Faust) with its Prometheus endpoint."""

from __future__ import annotations

import logging

import typer

from hito.commands.common import load_with_logging

log = logging.getLogger(__name__)


def worker(
    metrics_port: int = typer.Option(0, help="Port for /metrics (0: any free port)"),
    app_id: str = typer.Option("hito", help="Faust app id = Kafka consumer group"),
    register: bool = typer.Option(
        True,
        help="Write this worker's scrape target for Prometheus (file discovery; removed on a "
        "clean stop, left behind by a crash so that WorkerDown pages)",
    ),
) -> None:
    """Run a pipeline worker (Faust) until interrupted; exposes Prometheus metrics."""
    import faust
    from prometheus_client import start_http_server

    from hito.pipeline.heap import settle_heap
    from hito.pipeline.worker import build_worker
    from hito.stack import discovery

    # Topics and ACLs are the admin's job (`hito up` / `hito kafka provision`): the pipeline
    # user may not create raw topics.
    runtime = load_with_logging()
    settings = runtime.settings
    w = build_worker(runtime, app_id=app_id)
    host = "127.0.0.1"
    try:
        server, _ = start_http_server(metrics_port, addr=host, registry=w.metrics.registry)
    except OSError as exc:
        raise typer.BadParameter(f"cannot serve metrics on {host}:{metrics_port}: {exc}") from exc
    address = f"{host}:{server.server_port}"
    target = discovery.register(settings, address, {"app_id": app_id}) if register else None
    marker = discovery.mark_local(settings, address)
    log.info(
        "metrics on http://%s/metrics%s", address, f" (target file {target})" if target else ""
    )
    # Last before the event loop: what the worker keeps for its life exists now (heap.py).
    heap = settle_heap()
    log.info(
        "heap settled: %d objects frozen, collector thresholds %s", heap.frozen, heap.thresholds
    )
    try:
        faust.Worker(w.app, loglevel="INFO").execute_from_commandline()
    except SystemExit as end:
        marker.unlink(missing_ok=True)
        # Exit 0 is a requested stop (SIGTERM, SIGINT): no longer a target. A crash exits
        # non-zero and leaves the file, so Prometheus sees the worker down.
        if target is not None and end.code in (0, None):
            discovery.unregister(target)
            log.info("removed target file %s", target)
        raise
