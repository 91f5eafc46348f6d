"""``hito policy show`` and ``hito policy audit``: the privacy policy for a privacy officer."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hito.runtime import load_runtime
from hito.settings import load_settings

policy_app = typer.Typer(help="The privacy policy in force.", no_args_is_help=True)


@policy_app.command("show")
def show() -> None:
    """Print every schema field with its rule, and the policy version."""
    runtime = load_runtime(load_settings())
    p = runtime.policy
    table = Table(
        title=f"Privacy policy {p.version} (k = {p.small_count_k}, "
        f"timestamps to {p.event_time_resolution_s} s)"
    )
    for col in ("schema", "field", "rule"):
        table.add_column(col)
    for schema, rules in sorted(p.rules.items()):
        for field, rule in rules.items():
            table.add_row(schema, field, rule.describe())
    Console().print(table)


@policy_app.command("audit")
def audit(
    measurement: Annotated[str, typer.Argument(help="e.g. crossings")],
    site: Annotated[str, typer.Argument(help="e.g. chacalluta")],
    at: Annotated[
        datetime,
        typer.Argument(
            help="window start with offset, e.g. 2026-11-28T18:30:00Z",
            formats=["%Y-%m-%dT%H:%M:%S%z"],
        ),
    ],
) -> None:
    """Which policy version and which pseudonymisation keys produced the points of a window."""
    from influxdb_client import InfluxDBClient

    runtime = load_runtime(load_settings())
    i = runtime.settings.influxdb
    when = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    until = (at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    flux = (
        f'from(bucket: "{i.bucket}") |> range(start: {when}, stop: {until}) '
        f'|> filter(fn: (r) => r._measurement == "{measurement}" and r.site == "{site}")'
    )
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        records = [r for t in client.query_api().query(flux) for r in t.records]
    console = Console()
    if not records:
        console.print(f"no {measurement} point for {site} at {when}")
        raise typer.Exit(1)
    policies = sorted({str(r.values.get("policy")) for r in records})
    keys = [k.key_id for k in runtime.keyring.valid_at(at)]
    console.print(f"{len(records)} values of {measurement} for {site} at {when}")
    console.print(f"policy version(s): {', '.join(policies)}")
    console.print(f"pseudonymisation keys valid then: {', '.join(keys)} (current first)")
    if runtime.policy.version not in policies:
        console.print(f"[yellow]note: the policy in force now is {runtime.policy.version}")
