"""``hito worker``: one pipeline worker (Faust) with its Prometheus endpoint."""

from __future__ import annotations

import logging

import typer

from hito.commands.common import load_with_logging


def worker(
    metrics_port: int = typer.Option(0, help="Port for /metrics (0: first free worker port)"),
    app_id: str = typer.Option("hito", help="Faust app id = Kafka consumer group"),
) -> None:
    """Run a pipeline worker (Faust) until interrupted; exposes Prometheus metrics."""
    import faust
    from prometheus_client import start_http_server

    from hito.pipeline.worker import build_worker
    from hito.stack.worker_process import free_metrics_port

    # Topics and ACLs are the admin's job (`hito up` / `hito kafka provision`): the pipeline
    # user may not create raw topics.
    runtime = load_with_logging()
    settings = runtime.settings
    w = build_worker(runtime, app_id=app_id)
    try:
        port = metrics_port or free_metrics_port(settings.worker_metrics_ports)
    except RuntimeError as exc:
        raise typer.BadParameter(str(exc)) from exc
    start_http_server(port, addr="127.0.0.1", registry=w.metrics.registry)
    logging.getLogger(__name__).info("metrics on http://127.0.0.1:%d/metrics", port)
    faust.Worker(w.app, loglevel="INFO").execute_from_commandline()
