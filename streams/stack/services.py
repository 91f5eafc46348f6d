"""The local services: how each is installed, prepared, started and checked.

Every service runs as a plain process on a loopback port, with the project's config files from
``infra/`` and its data under ``<state_dir>/<service>/``. Kafka's nodes are in
hito.stack.kafka, Prometheus and Alertmanager in hito.stack.monitoring; this module has
InfluxDB, the pager, and the list ``hito up`` starts in order.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
from influxdb_client.rest import ApiException

from hito.ops.pager.auth import ensure_token, token_path
from hito.settings import HitoSettings
from hito.stack.base import Runner, Service, cached_binary, http_ok, require_command
from hito.stack.kafka import KafkaNode, apply_properties, kafka_nodes, kafka_ready
from hito.stack.monitoring import Alertmanager, Prometheus, with_token_file

__all__ = [
    "SERVICES",
    "Alertmanager",
    "InfluxDB",
    "KafkaNode",
    "PagerService",
    "Prometheus",
    "Runner",
    "Service",
    "apply_properties",
    "kafka_ready",
    "services",
    "with_token_file",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InfluxDB(Service):
    def binary(self, settings: HitoSettings) -> Path:
        return cached_binary(settings, "influxd", settings.influxdb.version)

    def install(self, settings: HitoSettings, run: Runner) -> None:
        require_command("pkg-config", settings, run)
        if self.binary(settings).exists():
            return
        script = settings.infra_dir / "influxdb" / "build.sh"
        # The script's defaults are the shipped version and cache: without these, a configured
        # version was built as the default one under the configured one's name.
        run(
            [
                "env",
                f"INFLUXDB_VERSION=v{settings.influxdb.version.lstrip('v')}",
                f"HITO_CACHE={settings.cache_dir}",
                "bash",
                str(script),
                str(self.binary(settings)),
            ],
            settings.cache_dir / "logs" / "influxdb-build.log",
            f"InfluxDB {settings.influxdb.version} build (Go + Rust, 15-30 min cold)",
        )

    def argv(self, settings: HitoSettings) -> list[str]:
        d = self.data_dir(settings)
        i = settings.influxdb
        return [
            str(self.binary(settings)),
            f"--bolt-path={d / 'influxd.bolt'}",
            f"--engine-path={d / 'engine'}",
            f"--sqlite-path={d / 'influxd.sqlite'}",
            f"--http-bind-address={i.host}:{i.port}",
            "--reporting-disabled",
            "--log-level=warn",
        ]

    def url(self, settings: HitoSettings) -> str:
        return settings.influxdb.url

    def healthy(self, settings: HitoSettings) -> bool:
        try:
            r = httpx.get(f"{settings.influxdb.url}/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and r.json().get("status") == "pass"

    def after_start(self, settings: HitoSettings) -> None:
        """Create org, bucket, user and admin token once (POST /api/v2/setup; no CLI needed),
        then the bucket's scoped pipeline and dashboards tokens (streams/sinks/influx_tokens)."""
        from hito.access.influx_tokens import ensure_bucket_tokens
        from hito.access.retention import apply_to_bucket
        from hito.credentials import tokens_path
        from hito.schemas.privacy.policy import load_policy

        i = settings.influxdb
        allowed = httpx.get(f"{i.url}/api/v2/setup", timeout=5.0).json().get("allowed")
        if allowed:
            self._setup(settings)
        try:
            ensure_bucket_tokens(i, tokens_path(settings))
        except ApiException as exc:
            raise RuntimeError(
                f"InfluxDB refused the admin token (HTTP {exc.status}) while creating the "
                "scoped tokens: is HITO_INFLUXDB__TOKEN the token InfluxDB was set up with?"
            ) from exc
        # The bucket keeps aggregates as long as the privacy policy says.
        if apply_to_bucket(settings, load_policy(settings.privacy.policy_file)):
            log.warning("bucket %s: retention set to the privacy policy's", i.bucket)

    def _setup(self, settings: HitoSettings) -> None:
        from hito.schemas.privacy.policy import load_policy
        from hito.schemas.privacy.retention import bucket_retention_s

        i = settings.influxdb
        r = httpx.post(
            f"{i.url}/api/v2/setup",
            json={
                "username": i.username,
                "password": i.admin_password().get_secret_value(),
                "org": i.org,
                "bucket": i.bucket,
                "token": i.admin_token().get_secret_value(),
                "retentionPeriodSeconds": bucket_retention_s(
                    load_policy(settings.privacy.policy_file)
                ),
            },
            timeout=10.0,
        )
        r.raise_for_status()
        log.info("initialised InfluxDB org %s bucket %s", i.org, i.bucket)


@dataclass(frozen=True)
class PagerService(Service):
    """`hito pager serve`: Alertmanager's webhook (our own code, no install step).

    Its options come from the environment `hito up` runs in (``HITO_PAGER_FORWARD_URL``,
    ``HITO_PAGER_WATCHDOG_TIMEOUT``, ``HITO_PAGER_TOKEN_FILE``; `hito pager serve --help`):
    not on its command line, where ``ps`` would show a forward URL's key.
    """

    def prepare(self, settings: HitoSettings) -> None:
        super().prepare(settings)
        ensure_token(token_path(settings.state_dir))

    def argv(self, settings: HitoSettings) -> list[str]:
        return [sys.executable, "-m", "hito.cli", "pager", "serve"]

    def url(self, settings: HitoSettings) -> str:
        return f"http://127.0.0.1:{settings.pager_port}"

    def healthy(self, settings: HitoSettings) -> bool:
        return http_ok(f"{self.url(settings)}/health")


_AROUND_KAFKA: tuple[Service, ...] = (
    InfluxDB("influxdb", "time series: bucket hito, org hito"),
    Prometheus("prometheus", "scrapes worker metrics, evaluates alert rules"),
    Alertmanager("alertmanager", "routes alerts to the pager webhook"),
    PagerService("pager", "records and forwards pages (hito pager)"),
)


def services(settings: HitoSettings) -> tuple[Service, ...]:
    """Every local service in start order: Kafka's nodes (one, or three with ``brokers=3``),
    InfluxDB, Prometheus, Alertmanager and the pager."""
    return (*kafka_nodes(settings), *_AROUND_KAFKA)


SERVICES: tuple[Service, ...] = (
    KafkaNode("kafka", "event log: raw, clean and DLQ topics"),
    *_AROUND_KAFKA,
)
"""The single-broker stack: what tests look services up in by name."""
