"""The ``hito`` command line."""

from __future__ import annotations

import typer

from hito.commands import bench, demo, stack
from hito.commands import kafka as access
from hito.commands import pager as alerts
from hito.commands import policy as privacy
from hito.commands import worker as pipeline

app = typer.Typer(
    help="Hito: border telemetry ingestion under a versioned privacy policy.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(stack.up)
app.command()(stack.down)
app.command()(stack.status)
app.command()(pipeline.worker)
app.command()(pipeline.simulate)
app.command()(demo.demo)
app.command()(bench.bench)
app.add_typer(pipeline.schema_app, name="schema")
app.add_typer(pipeline.dlq_app, name="dlq")
app.add_typer(privacy.policy_app, name="policy")
app.add_typer(alerts.pager_app, name="pager")
app.add_typer(access.kafka_app, name="kafka")
app.add_typer(access.influx_app, name="influx")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
