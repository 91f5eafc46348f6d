"""The InfluxDB sink: batched, idempotent writes of whole windows, with back-off.

Points are keyed by window start, so writing a window again overwrites it. A failed write
raises :class:`RetryableSinkError` (and backs off: 0.5 s doubling to 30 s) or
:class:`PermanentSinkError`, as ``hito.pipeline.sinks.errors`` classifies it; what a flush then
does is that module's policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
from influxdb_client import WritePrecision
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.rest import ApiException
from pydantic import SecretStr

from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.sinks.errors import (
    Failure,
    PermanentSinkError,
    RetryableSinkError,
    classify_status,
)
from hito.pipeline.sinks.lines import ARCHIVE_MEASUREMENT
from hito.pipeline.stages.aggregate import window_name
from hito.settings.sections import InfluxSettings

log = logging.getLogger(__name__)


@dataclass
class InfluxSink:
    settings: InfluxSettings
    metrics: PipelineMetrics
    max_backoff_s: float = 30.0
    # Where the token comes from, asked again after the server refuses it (401/403).
    token_source: Callable[[], SecretStr] | None = None
    _client: InfluxDBClientAsync | None = field(default=None, init=False, repr=False)
    _failures: int = field(default=0, init=False)
    _next_try: float = field(default=0.0, init=False)

    @property
    def healthy(self) -> bool:
        return self._failures == 0

    def ready(self) -> bool:
        """False while backing off after a retryable failure."""
        return time.monotonic() >= self._next_try

    async def write(self, lines: list[str], *, archive: bool = False) -> None:
        """Write one batch (to the window archive with ``archive``); raises
        RetryableSinkError or PermanentSinkError."""
        if not lines:
            return
        s = self.settings
        client = self._connect()
        started = time.perf_counter()
        try:
            await client.write_api().write(
                bucket=s.archive_bucket if archive else s.bucket,
                org=s.org,
                record=lines,
                write_precision=WritePrecision.S,  # type: ignore[arg-type]  # a str constant
            )
        except ApiException as exc:
            raise await self._refused(exc, "write") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._failed()
            raise RetryableSinkError(str(exc) or type(exc).__name__) from exc
        finally:
            self.metrics.sink_write_seconds.observe(time.perf_counter() - started)
        self._failures = 0
        self._next_try = 0.0
        self.metrics.sink_points.inc(len(lines))
        self.metrics.sink_batch_points.observe(len(lines))

    async def delete(self, start: datetime, predicates: list[str]) -> None:
        """Delete the points matching each predicate at the second ``start`` (stale series of a
        re-published window). Raises RetryableSinkError like :meth:`write`."""
        s = self.settings
        client = self._connect()
        api = client.delete_api()
        try:
            for predicate in predicates:
                await api.delete(
                    start=start,
                    stop=start + timedelta(seconds=1),
                    predicate=predicate,
                    bucket=s.bucket,
                    org=s.org,
                )
        except ApiException as exc:
            raise await self._refused(exc, f"delete {predicates!r}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._failed()
            raise RetryableSinkError(str(exc) or type(exc).__name__) from exc

    async def crossings_per_minute(
        self, sites: list[str], days: int, until: datetime
    ) -> list[tuple[str, str, datetime, int]]:
        """History for surge baselines: crossings per (site, direction, minute), summed over
        the published cells (which add up to the exact total). Raises RetryableSinkError."""
        s = self.settings
        site_set = ", ".join(f'"{site}"' for site in sites)
        flux = (
            f'from(bucket: "{s.bucket}") '
            f"|> range(start: {_rfc3339(until - timedelta(days=days))}, stop: {_rfc3339(until)}) "
            '|> filter(fn: (r) => r._measurement == "crossings" and r._field == "count") '
            f"|> filter(fn: (r) => contains(value: r.site, set: [{site_set}])) "
            '|> group(columns: ["site", "direction"]) '
            '|> aggregateWindow(every: 1m, fn: sum, createEmpty: false, timeSrc: "_start")'
        )
        try:
            tables = await self._connect().query_api().query(flux, org=s.org)
        except (ApiException, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableSinkError(f"history query: {exc}") from exc
        return [
            (str(r["site"]), str(r["direction"]), r["_time"], int(r["_value"]))
            for table in tables
            for r in table.records
        ]

    async def archived_windows(
        self, sites: list[str], first: datetime, last: datetime
    ) -> dict[str, str]:
        """The archived state of the windows of ``sites`` starting from ``first`` to ``last``
        (hito.pipeline.state.archive): window name (``<site>|<start>``) -> JSON text. Raises
        RetryableSinkError or PermanentSinkError like :meth:`write`."""
        s = self.settings
        site_set = ", ".join(f'"{site}"' for site in sites)
        flux = (
            f'from(bucket: "{s.archive_bucket}") '
            f"|> range(start: {_rfc3339(first)}, stop: {_rfc3339(last + timedelta(seconds=1))}) "
            f'|> filter(fn: (r) => r._measurement == "{ARCHIVE_MEASUREMENT}" '
            'and r._field == "state") '
            f"|> filter(fn: (r) => contains(value: r.site, set: [{site_set}]))"
        )
        try:
            tables = await self._connect().query_api().query(flux, org=s.org)
        except ApiException as exc:
            raise await self._refused(exc, "archive query") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._failed()
            raise RetryableSinkError(f"archive query: {exc}") from exc
        return {
            window_name(str(r["site"]), r["_time"]): str(r["_value"])
            for table in tables
            for r in table.records
        }

    async def _refused(
        self, exc: ApiException, what: str
    ) -> PermanentSinkError | RetryableSinkError:
        """The error to raise for an HTTP refusal (hito.pipeline.sinks.errors)."""
        status = int(exc.status or 0)
        failure = classify_status(status)
        if failure is Failure.PERMANENT:
            self.metrics.sink_errors.labels(kind="permanent").inc()
            return PermanentSinkError(status, f"{what}: {exc.body or ''}")
        if failure is Failure.CREDENTIALS:
            await self.close()  # the next try connects with a freshly read token
        self._failed()
        return RetryableSinkError(f"{what}: HTTP {status}")

    def _connect(self) -> InfluxDBClientAsync:
        if self._client is None:
            s = self.settings
            # The settings' token is the one this sink writes with (the worker puts the
            # bucket-scoped pipeline token there); token_source reads it again after a 401.
            token = self.token_source() if self.token_source else s.admin_token()
            self._client = InfluxDBClientAsync(
                url=s.url, token=token.get_secret_value(), org=s.org, timeout=10_000
            )
        return self._client

    def _failed(self) -> None:
        self._failures += 1
        self.metrics.sink_errors.labels(kind="retryable").inc()
        delay = min(self.max_backoff_s, 0.5 * 2 ** min(self._failures, 10))
        self._next_try = time.monotonic() + delay
        log.warning(
            "InfluxDB write failed (%d in a row); next try in %.1f s", self._failures, delay
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()  # type: ignore[no-untyped-call]
            self._client = None

    async def wait_ready(self) -> None:
        """Sleep out the current back-off (consumption pauses while InfluxDB is failing)."""
        await asyncio.sleep(max(0.0, self._next_try - time.monotonic()))


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
