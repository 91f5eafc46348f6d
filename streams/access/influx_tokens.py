"""Least-privilege InfluxDB tokens, one pair per bucket.

(each may also read its own organisation's record, which clients need to resolve its name)

- ``pipeline``: read and write on its bucket and on that bucket's window archive
  (``<bucket>-archive``) only: the workers write points, read back the crossings history for
  surge baselines, and archive and read back full window counts for backfill;
- ``dashboards``: read on its bucket only (Grafana): never the archive, whose small cells are
  not suppressed.

The admin token (``HITO_INFLUXDB__TOKEN``) is for setup and administration and is never what a
worker writes with. InfluxDB generates token values itself (it ignores a value the client
proposes), so the tokens created here are kept in ``<state_dir>/influxdb/tokens.json``
(mode 0600), keyed by bucket; a deployment can instead set ``HITO_INFLUXDB__PIPELINE_TOKEN``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from influxdb_client import BucketRetentionRules, InfluxDBClient, Permission, PermissionResource
from pydantic import SecretStr

from hito.credentials import MissingToken, read_tokens
from hito.files import exclusive_lock, write_private
from hito.schemas.privacy.policy import load_policy
from hito.schemas.privacy.retention import archive_retention_s
from hito.settings.sections import InfluxSettings

TokenRole = Literal["pipeline", "dashboards"]
_ACTIONS: dict[TokenRole, tuple[str, ...]] = {
    "pipeline": ("read", "write"),
    "dashboards": ("read",),
}


# Bumped whenever the permissions below change: older tokens are then replaced.
_SCOPE_VERSION = "3"
# Roles that also get their actions on the window archive.
_ARCHIVE_ROLES: frozenset[TokenRole] = frozenset({"pipeline"})


def ensure_bucket_tokens(
    influx: InfluxSettings, path: Path, *, archive_retention: int | None = None
) -> dict[TokenRole, SecretStr]:
    """Create (once) the pipeline and dashboards tokens of ``influx.bucket``; returns both.
    The bucket's window archive is created first if missing, keeping data
    ``archive_retention`` seconds (default: the shipped policy's ``window_archive``).

    Uses the admin token. A token recorded in ``path`` that InfluxDB no longer knows (the
    data was wiped) is created again.
    """
    with (
        exclusive_lock(path.with_suffix(".lock")),
        InfluxDBClient(
            url=influx.url, token=influx.admin_token().get_secret_value(), org=influx.org
        ) as client,
    ):
        data = read_tokens(path)
        known = data.get(influx.bucket, {})
        auths = client.authorizations_api()
        live = {a.id for a in auths.find_authorizations()}
        bucket = client.buckets_api().find_bucket_by_name(influx.bucket)
        if bucket is None:
            raise MissingToken(f"InfluxDB has no bucket {influx.bucket!r}")
        archive = _ensure_archive(client, influx, archive_retention)
        out: dict[TokenRole, SecretStr] = {}
        retired: list[str] = []
        for role, actions in _ACTIONS.items():
            entry = known.get(role)
            if entry is not None and entry["id"] in live and entry.get("scope") != _SCOPE_VERSION:
                # Issued with other permissions: replaced, and deleted only once the new one
                # is on file (running workers re-read the file when their token is refused).
                retired.append(entry["id"])
                entry = None
            if entry is None or entry["id"] not in live:
                resources = [
                    PermissionResource(  # type: ignore[no-untyped-call]
                        type="buckets", id=b.id, org_id=b.org_id
                    )
                    for b in ([bucket, archive] if role in _ARCHIVE_ROLES else [bucket])
                ]
                # Reading its own org record lets clients turn the org name into its id.
                org = PermissionResource(  # type: ignore[no-untyped-call]
                    type="orgs", id=bucket.org_id
                )
                permissions = [
                    Permission(action="read", resource=org),  # type: ignore[no-untyped-call]
                    *(
                        Permission(action=a, resource=resource)  # type: ignore[no-untyped-call]
                        for resource in resources
                        for a in actions
                    ),
                ]
                created = auths.create_authorization(org_id=bucket.org_id, permissions=permissions)
                names = [
                    influx.bucket,
                    *([influx.archive_bucket] if role in _ARCHIVE_ROLES else []),
                ]
                created.description = f"hito {role} ({', '.join(actions)} {', '.join(names)})"
                auths.update_authorization(created)
                entry = {
                    "id": str(created.id),
                    "token": str(created.token),
                    "scope": _SCOPE_VERSION,
                }
                known[role] = entry
            out[role] = SecretStr(entry["token"])
        data[influx.bucket] = known
        write_private(path, json.dumps(data, indent=2, sort_keys=True))
        for token_id in retired:
            auths.delete_authorization(token_id)
    return out


def _ensure_archive(client: InfluxDBClient, influx: InfluxSettings, retention: int | None) -> Any:
    api = client.buckets_api()
    archive = api.find_bucket_by_name(influx.archive_bucket)  # type: ignore[no-untyped-call]
    if archive is not None:
        return archive
    seconds = retention if retention is not None else archive_retention_s(load_policy())
    rule = BucketRetentionRules(type="expire", every_seconds=seconds)  # type: ignore[no-untyped-call]
    return api.create_bucket(
        bucket_name=influx.archive_bucket, org=influx.org, retention_rules=[rule]
    )
