"""The ``hito`` command line: one command group per module of ``hito.commands``.

An error ends a command with one line on stderr and exit status 1; ``--debug`` (or
``HITO_DEBUG=1``) shows the traceback instead. Secrets are never part of an error message
(they are SecretStr or file paths, never values).
"""

from __future__ import annotations

import functools
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer


def _command_line() -> typer.Typer:
    app = typer.Typer(
        help="Hito: border telemetry ingestion under a versioned privacy policy.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_options)
    return app


def hito_version() -> str:
    try:
        return version("hito")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hito {hito_version()}")
        raise typer.Exit()


def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (also HITO_DEBUG=1)")
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version"),
    ] = False,
) -> None:
    if debug:
        os.environ["HITO_DEBUG"] = "1"


def worker_app() -> typer.Typer:
    """``hito`` with the worker command only. A worker keeps what it imported for its life,
    and the other command groups (httpx, pygments, the stack, pager and bench tools) were
    7.5 MB of an idle worker's 117.3 MB (bench/README.md, "Results, 2026-12-06"). ``hito
    --debug worker`` takes the full command line: only the idle memory differs."""
    from hito.commands import worker

    app = _command_line()
    app.command()(worker.worker)
    return app


@functools.cache
def full_app() -> typer.Typer:
    """Every command group."""
    from hito.commands import (
        bench,
        demo,
        device,
        devices,
        dlq,
        influx,
        kafka,
        pager,
        policy,
        probe,
        schema,
        simulate,
        stack,
        worker,
    )

    app = _command_line()
    app.command()(stack.up)
    app.command()(stack.down)
    app.command()(stack.status)
    app.command()(worker.worker)
    app.command()(simulate.simulate)
    app.command()(demo.demo)
    app.command()(bench.bench)
    app.command()(probe.probe)
    app.command("provision")(kafka.provision_all)
    app.add_typer(schema.schema_app, name="schema")
    app.add_typer(dlq.dlq_app, name="dlq")
    app.add_typer(device.device_app, name="device")
    app.add_typer(policy.policy_app, name="policy")
    app.add_typer(pager.pager_app, name="pager")
    app.add_typer(kafka.kafka_app, name="kafka")
    app.add_typer(influx.influx_app, name="influx")
    app.add_typer(devices.devices_app, name="devices")
    return app


def __getattr__(name: str) -> typer.Typer:
    # ``from hito.cli import app`` (tests, CliRunner) gets every command group.
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    app = worker_app() if sys.argv[1:2] == ["worker"] else full_app()
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("HITO_DEBUG") == "1" or "--debug" in sys.argv:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"hito: error: {message} (--debug shows where)", file=sys.stderr)  # noqa: T201
        sys.exit(1)


if __name__ == "__main__":
    main()
