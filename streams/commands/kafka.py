"""``hito kafka provision|users-file``: Kafka users, topics, quotas and ACLs.

See docs/security.md.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

from hito.settings import INFLUX_ADMIN, KAFKA_USERS, load_settings

kafka_app = typer.Typer(help="Kafka users, topics and ACLs.", no_args_is_help=True)

_ROLES = ("admin", "pipeline", "operator", "device")


@kafka_app.command("provision")
def provision() -> None:
    """As the admin user: create or update every SCRAM user of HITO_KAFKA__USERS_FILE and its
    produce quota, the topics of the settings and every role's ACLs. Idempotent (`hito up`
    runs it too)."""
    from hito.access.kafka import admin_client, apply_quotas, grants, upsert_users
    from hito.access.topics import ensure_topics

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    settings.require(KAFKA_USERS)
    admin = admin_client(settings.kafka)
    try:
        users = upsert_users(settings.kafka, admin)
        quotas = apply_quotas(settings.kafka, admin)
    finally:
        admin.close()
    created = ensure_topics(settings)
    console = Console()
    console.print(f"users: {', '.join(users)}")
    limited = [f"{name} {rate:,} B/s" for name, rate in quotas.items() if rate is not None]
    console.print(f"produce quotas: {', '.join(limited) or 'none'}")
    console.print(f"topics created: {', '.join(created) or 'none (all existed)'}")
    console.print(f"ACLs granted: {len(grants(settings))}")


def provision_all(
    grafana_token: Annotated[
        Path | None,
        typer.Option(
            help="Also write the bucket's read-only InfluxDB token to this file (0640) for "
            "Grafana (docker-compose.yml's Grafana reads it at start)",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Prepare a deployment: Kafka users, quotas, topics and ACLs; InfluxDB's scoped tokens
    and the buckets' retention (the privacy policy's); the pseudonym key store, if this host
    has none yet.

    Idempotent, once per deployment before the first worker (docker-compose.yml's one-shot
    job). The tokens go to the state directory's tokens.json (0600), where workers read
    theirs, and Grafana's to --grafana-token if given; the key store to
    HITO_PRIVACY__KEY_STORE_FILE (0600, on the workers' volume). None is ever printed."""
    from hito.access.influx_tokens import ensure_bucket_tokens
    from hito.access.retention import apply_to_bucket
    from hito.commands.policy_keys import init as init_key_store
    from hito.credentials import tokens_path
    from hito.files import write_private
    from hito.runtime import key_store_path
    from hito.schemas.privacy.policy import load_policy

    settings = load_settings()
    settings.require(KAFKA_USERS, *INFLUX_ADMIN)
    key_store_path(settings)  # its setting too, before anything is changed (MissingSecret)
    provision()
    path = tokens_path(settings)
    found = ensure_bucket_tokens(settings.influxdb, path)
    console = Console()
    console.print(f"InfluxDB tokens of bucket {settings.influxdb.bucket}: {path}")
    if grafana_token is not None:
        token = found["dashboards"].get_secret_value()
        before = grafana_token.read_text() if grafana_token.is_file() else None
        # Group-readable: Grafana's container joins the group of this file (docker-compose.yml).
        write_private(grafana_token, token, mode=0o640)
        if before is not None and before != token:
            # A Grafana started before holds the old token, which InfluxDB no longer knows.
            console.print(
                f"Grafana's read-only token {grafana_token}: replaced; restart Grafana "
                "(docker compose restart grafana)",
                soft_wrap=True,  # the path whole, on one line
            )
        else:
            console.print(f"Grafana's read-only token: {grafana_token}", soft_wrap=True)
    # The buckets keep data as long as the privacy policy says (compose made the bucket
    # without a retention: aggregates were kept for ever; only `hito up` applied it).
    policy = load_policy(settings.privacy.policy_file)
    changed = apply_to_bucket(settings, policy)
    console.print(
        f"bucket retention: policy {policy.version}'s"
        + (" (set now)" if changed else " (already so)")
    )
    store = key_store_path(settings)
    if store.exists():
        console.print(f"pseudonym key store {store}: exists, left as it is")
    else:
        init_key_store(from_copy=None)


@kafka_app.command("users-file")
def users_file(
    out: Annotated[Path, typer.Option(help="Where to write the new users file (must not exist)")],
    prefix: Annotated[str, typer.Option(help="User names are <prefix>-<role>")] = "hito",
    per_device: Annotated[
        bool,
        typer.Option(
            help="Also one device user per registered, unrevoked device, "
            "<prefix>-device-<device_id>, each with its own produce quota (docs/security.md)"
        ),
    ] = False,
    device_byte_rate: Annotated[
        int, typer.Option(min=1024, help="Each per-device user's produce quota, bytes/s")
    ] = 16384,
) -> None:
    """Write a users file with a random 32-byte password per role (mode 0600), for a real
    deployment: point HITO_KAFKA__USERS_FILE at it, and give each machine only its role's user
    (each device its own user, with --per-device)."""
    from hito.credentials import KafkaUser

    users: list[dict[str, object]] = [
        {"name": f"{prefix}-{role}", "role": role, "password": secrets.token_urlsafe(32)}
        for role in _ROLES
    ]
    if per_device:
        from hito.devices import DeviceRegistry

        p = load_settings().pipeline
        registry = DeviceRegistry.load(*p.registry_files())
        users += [
            {
                "name": f"{prefix}-device-{device_id}",
                "role": "device",
                "password": secrets.token_urlsafe(32),
                "produce_byte_rate": device_byte_rate,
            }
            for device_id, device in sorted(registry.devices.items())
            if not device.revoked  # a revoked device must not be able to write at all
        ]
    for user in users:
        KafkaUser.model_validate(user)  # what `hito up` will load: refuse a bad file now
    # O_EXCL: never overwrite credentials that may already be in use.
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# Kafka SCRAM users. SECRET: keep out of version control.\n")
        yaml.safe_dump({"users": users}, fh, sort_keys=False)
    Console(stderr=True).print(f"wrote {out} ({len(users)} users, mode 0600)")
