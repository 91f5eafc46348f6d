"""``hito policy show|audit`` (and ``hito policy keys``): the privacy policy for a privacy
officer."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hito.commands.policy_keys import keys_app
from hito.runtime import key_grace_s
from hito.schemas.privacy.policy import RETENTION_ZONES, Policy, load_policy
from hito.settings import load_settings

policy_app = typer.Typer(help="The privacy policy in force.", no_args_is_help=True)
policy_app.add_typer(keys_app, name="keys")


def policy_document(policy: Policy, grace_s: int) -> dict[str, Any]:
    """Everything ``show`` prints, as data (``--json``)."""
    return {
        "version": policy.version,
        "small_count_k": policy.small_count_k,
        "event_time_resolution_s": policy.event_time_resolution_s,
        "key_grace_s": grace_s,
        "purposes": [
            {
                "name": p.name,
                "description": p.description,
                "fields": [
                    {"schema": schema, "field": f, "rule": policy.rule(schema, f).describe()}
                    for schema, fields in sorted(p.fields.items())
                    for f in fields
                ],
                "linkability_horizon_hours": p.horizon_hours,
                "outputs": list(p.outputs),
            }
            for p in policy.purposes.values()
        ],
        "fields": [
            {
                "schema": schema,
                "field": f,
                "rule": rule.describe(),
                "purposes": list(policy.purposes_of(schema, f)),
            }
            for schema, rules in sorted(policy.rules.items())
            for f, rule in rules.items()
        ],
        "retention_hours": dict(policy.retention_hours),
    }


@policy_app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print the policy as JSON")] = False,
) -> None:
    """Purposes (fields, linkability horizon, outputs), the rule of every field, retention."""
    settings = load_settings()
    policy = load_policy(settings.privacy.policy_file)
    doc = policy_document(policy, key_grace_s(settings.pipeline))
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    console = Console()
    purposes = Table(
        title=f"Privacy policy {policy.version}: purposes (k = {policy.small_count_k}, "
        f"timestamps to {policy.event_time_resolution_s} s)"
    )
    for col in ("purpose", "fields it needs", "linkability horizon", "outputs", "why"):
        purposes.add_column(col, overflow="fold")
    for p in doc["purposes"]:
        hours = p["linkability_horizon_hours"]
        horizon = (
            f"{hours} h epochs (UTC); each epoch's key destroyed {doc['key_grace_s']} s "
            "after the epoch ends"
            if hours
            else "none: nothing links one person's records"
        )
        fields = "\n".join(
            line
            for schema, group in itertools.groupby(p["fields"], key=lambda f: f["schema"])
            for line in (schema, *(f"  {f['field']}: {f['rule']}" for f in group))
        )
        purposes.add_row(p["name"], fields, horizon, ", ".join(p["outputs"]), p["description"])
    console.print(purposes)
    rules = Table(title="Every payload field: its rule and the purposes it serves")
    for col in ("schema", "field", "rule", "purposes"):
        rules.add_column(col)
    for f in doc["fields"]:
        served = ", ".join(f["purposes"]) or "none: never leaves the raw zone"
        rules.add_row(f["schema"], f["field"], f["rule"], served)
    console.print(rules)
    retention = Table(title="Retention per data zone")
    for col in ("zone", "kept", "where"):
        retention.add_column(col)
    for zone, hours in doc["retention_hours"].items():
        retention.add_row(zone, f"{hours} h", RETENTION_ZONES[zone])
    console.print(retention)


@policy_app.command("audit")
def audit(
    measurement: Annotated[str | None, typer.Argument(help="e.g. crossings")] = None,
    site: Annotated[str | None, typer.Argument(help="e.g. chacalluta")] = None,
    at: Annotated[
        datetime | None,
        typer.Argument(
            help="window start with offset, e.g. 2026-11-28T18:30:00Z",
            formats=["%Y-%m-%dT%H:%M:%S%z"],
        ),
    ] = None,
    retention: Annotated[
        bool,
        typer.Option(
            "--retention",
            help="Compare the policy's retention with the live Kafka topics and InfluxDB "
            "bucket; exit 1 on any difference",
        ),
    ] = False,
) -> None:
    """Which policy and which epoch keys produced the points of a window (and whether those
    keys are destroyed yet); or, with --retention, whether the live retention is the policy's."""
    settings = load_settings()
    policy = load_policy(settings.privacy.policy_file)
    console = Console()
    if retention:
        _audit_retention(console)
        return
    if measurement is None or site is None or at is None:
        raise typer.BadParameter("give MEASUREMENT SITE AT, or --retention")
    from influxdb_client import InfluxDBClient

    from hito.pipeline.keystore import KeyStore, KeyStoreError
    from hito.pipeline.pseudonyms import epoch_of
    from hito.runtime import key_store_path

    i = settings.influxdb
    when = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    until = (at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    flux = (
        f'from(bucket: "{i.bucket}") |> range(start: {when}, stop: {until}) '
        f'|> filter(fn: (r) => r._measurement == "{measurement}" and r.site == "{site}")'
    )
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        records = [r for t in client.query_api().query(flux) for r in t.records]
    if not records:
        console.print(f"no {measurement} point for {site} at {when}")
        raise typer.Exit(1)
    policies = sorted({str(r.values.get("policy")) for r in records})
    console.print(f"{len(records)} values of {measurement} for {site} at {when}")
    console.print(f"policy version(s): {', '.join(policies)}")
    try:
        store: KeyStore | None = KeyStore.open(key_store_path(settings))
    except KeyStoreError as exc:
        store = None
        console.print(f"[yellow]key store not readable here: {exc}")
    for purpose in policy.linking_purposes:
        assert purpose.epoch_s is not None
        epoch = epoch_of(at, purpose.epoch_s)
        held = store is not None and store.lookup(purpose.name, epoch) is not None
        state = "still held" if held else "destroyed (or not held on this host)"
        console.print(f"pseudonym key of {purpose.name} for epoch e{epoch}: {state}")
    if policy.version not in policies:
        console.print(f"[yellow]note: the policy in force now is {policy.version}")


def _audit_retention(console: Console) -> None:
    from hito.access.retention import audit as retention_audit

    settings = load_settings()
    policy = load_policy(settings.privacy.policy_file)
    drift = retention_audit(settings, policy)
    if not drift:
        console.print(
            f"retention matches policy {policy.version}: "
            + ", ".join(f"{zone} {h} h" for zone, h in policy.retention_hours.items())
        )
        console.print(
            f"device_outbox ({policy.retention_hours['device_outbox']} h) is the device "
            "makers' obligation: it lives on the devices and is not checked from here"
        )
        return
    table = Table(title=f"Retention differs from policy {policy.version}")
    for col in ("resource", "config", "live", "policy"):
        table.add_column(col)
    for d in drift:
        table.add_row(d.resource, d.config, d.live, d.wanted)
    console.print(table)
    console.print("`hito up` (or `hito kafka provision`) applies the policy's retention")
    raise typer.Exit(1)
