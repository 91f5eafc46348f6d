"""The demo's reads from InfluxDB: Flux queries with the admin token (the demo is the stack's
operator), and the ``revisions`` measurement with the dashboards token, as ``hito status``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from influxdb_client import InfluxDBClient

from hito.demo.revised import Revision
from hito.settings import HitoSettings
from hito.stack import overview


def query(settings: HitoSettings, flux: str) -> list[dict[str, Any]]:
    i = settings.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        return [r.values for t in client.query_api().query(flux) for r in t.records]


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def site_crossings(
    settings: HitoSettings, site: str, start: datetime, stop: datetime
) -> dict[datetime, int]:
    """Crossings of ``site`` per minute (all directions and cells) in [start, stop)."""
    rows = query(
        settings,
        f'from(bucket: "{settings.influxdb.bucket}") '
        f"|> range(start: {rfc3339(start)}, stop: {rfc3339(stop)}) "
        '|> filter(fn: (r) => r._measurement == "crossings" and r._field == "count") '
        f'|> filter(fn: (r) => r.site == "{site}") '
        '|> group(columns: ["_time"]) |> sum() |> group()',
    )
    return {r["_time"]: int(r["_value"]) for r in rows}


def revisions(settings: HitoSettings) -> list[Revision]:
    """Every revised minute of the backfill horizon (``hito status``'s query)."""
    return [
        Revision(
            site=row["site"],
            source=row["source"],
            minute=_utc(row["minute"], "%Y-%m-%d %H:%M"),
            events=row["events"],
            revised_at=_utc(row["revised_at"], "%Y-%m-%d %H:%M:%S"),
        )
        for row in overview.revisions(settings)
    ]


def _utc(text: str, fmt: str) -> datetime:
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)
