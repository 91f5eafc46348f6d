"""The ``hito`` command line: one command group per module of ``hito.commands``."""

from __future__ import annotations

import typer

from hito.commands import (
    bench,
    demo,
    dlq,
    influx,
    kafka,
    pager,
    policy,
    schema,
    simulate,
    stack,
    worker,
)

app = typer.Typer(
    help="Hito: border telemetry ingestion under a versioned privacy policy.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(stack.up)
app.command()(stack.down)
app.command()(stack.status)
app.command()(worker.worker)
app.command()(simulate.simulate)
app.command()(demo.demo)
app.command()(bench.bench)
app.add_typer(schema.schema_app, name="schema")
app.add_typer(dlq.dlq_app, name="dlq")
app.add_typer(policy.policy_app, name="policy")
app.add_typer(pager.pager_app, name="pager")
app.add_typer(kafka.kafka_app, name="kafka")
app.add_typer(influx.influx_app, name="influx")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
