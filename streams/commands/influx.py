"""``hito influx tokens``: InfluxDB's scoped tokens (docs/security.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from hito.settings import load_settings

influx_app = typer.Typer(help="InfluxDB scoped tokens.", no_args_is_help=True)


@influx_app.command("tokens")
def tokens(
    role: Annotated[str, typer.Option(help="pipeline or dashboards")] = "dashboards",
) -> None:
    """Create (once) the bucket's scoped tokens with the admin token and print one of them:
    `dashboards` (read-only, for Grafana) or `pipeline` (read+write on the bucket only)."""
    from hito.access.influx_tokens import ensure_bucket_tokens
    from hito.credentials import tokens_path

    if role not in ("pipeline", "dashboards"):
        raise typer.BadParameter("role is pipeline or dashboards")
    settings = load_settings()
    found = ensure_bucket_tokens(settings.influxdb, tokens_path(settings))
    typer.echo(found["pipeline" if role == "pipeline" else "dashboards"].get_secret_value())
