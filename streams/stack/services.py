"""The four local services: how each is installed, prepared, started and checked.

Every service runs as a plain process on a loopback port, with the project's config files from
``infra/`` and its data under ``<state_dir>/<service>/``.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from influxdb_client.rest import ApiException

from hito.ops.pager.auth import ensure_token, token_path
from hito.settings import HitoSettings, KafkaSettings
from hito.stack.process import ProcessFiles

log = logging.getLogger(__name__)

Runner = Callable[[list[str], Path, str], None]
"""Runs an install command, logging to a file and showing progress: (argv, log_path, label)."""


@dataclass(frozen=True)
class Service:
    """One local service. Subclasses fill in the details; all methods take the settings."""

    name: str
    purpose: str

    def files(self, settings: HitoSettings) -> ProcessFiles:
        return ProcessFiles(
            pid_path=settings.state_dir / "run" / f"{self.name}.pid",
            log_path=settings.state_dir / "logs" / f"{self.name}.log",
        )

    def data_dir(self, settings: HitoSettings) -> Path:
        return settings.state_dir / self.name

    def install(self, settings: HitoSettings, run: Runner) -> None:
        """Fetch or build what is missing (idempotent; a no-op when cached)."""

    def prepare(self, settings: HitoSettings) -> None:
        """Create data directories and one-time state before the first start."""
        self.data_dir(settings).mkdir(parents=True, exist_ok=True)

    def argv(self, settings: HitoSettings) -> list[str]:
        raise NotImplementedError

    def url(self, settings: HitoSettings) -> str:
        raise NotImplementedError

    def healthy(self, settings: HitoSettings) -> bool:
        raise NotImplementedError

    def after_start(self, settings: HitoSettings) -> None:
        """One-time initialisation once the service is healthy (idempotent)."""


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _require_command(name: str, settings: HitoSettings, run: Runner) -> str:
    """The path of a Debian-packaged command, installing the packages when it is missing."""
    found = shutil.which(name)
    if found is None:
        script = settings.infra_dir / "install-debian.sh"
        run(["bash", str(script)], settings.cache_dir / "logs" / "debian.log", "Debian packages")
        found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is still missing after {settings.infra_dir}/install-debian.sh")
    return found


@dataclass(frozen=True)
class Kafka(Service):
    def libs(self, settings: HitoSettings) -> Path:
        return settings.cache_dir / f"kafka-{settings.kafka.version}" / "libs"

    def config_path(self, settings: HitoSettings) -> Path:
        return self.data_dir(settings) / "server.properties"

    def install(self, settings: HitoSettings, run: Runner) -> None:
        _require_command("java", settings, run)
        _require_command("mvn", settings, run)
        if (self.libs(settings) / ".complete").exists():
            return
        script = settings.infra_dir / "kafka" / "install.sh"
        run(
            ["bash", str(script), settings.kafka.version, str(self.libs(settings))],
            settings.cache_dir / "logs" / "kafka-install.log",
            f"Kafka {settings.kafka.version} jars (Maven Central)",
        )

    def prepare(self, settings: HitoSettings) -> None:
        super().prepare(settings)
        from hito.access.kafka import broker_jaas_properties

        # Its metadata holds every user's SCRAM salt and keys: this user only.
        self.data_dir(settings).chmod(0o700)
        k = settings.kafka
        client = k.security_protocol
        overrides = {
            "log.dirs": str(self.data_dir(settings) / "data"),
            "listeners": f"{client}://{k.host}:{k.port},CONTROLLER://{k.host}:{k.controller_port}",
            "advertised.listeners": f"{client}://{k.host}:{k.port}",
            "inter.broker.listener.name": client,
            "controller.quorum.voters": f"1@{k.host}:{k.controller_port}",
            **broker_jaas_properties(k),
        }
        shipped = (settings.infra_dir / "kafka" / "server.properties").read_text()
        # The copy holds the admin password (JAAS lines): readable by this user only.
        config = self.config_path(settings)
        config.touch(mode=0o600)
        config.chmod(0o600)
        config.write_text(apply_properties(shipped, overrides))
        data = self.data_dir(settings) / "data"
        if not (data / "meta.properties").exists():
            self._format(settings)
        elif not (data / _SCRAM_MARKER).exists():
            raise RuntimeError(
                f"Kafka data in {data} predates SASL/SCRAM (no admin credential in its metadata); "
                "wipe it with `hito down --wipe` and run `hito up` again"
            )

    def _format(self, settings: HitoSettings) -> None:
        from hito.credentials import MECHANISM, user_for

        java = self._java_prefix(settings)
        cluster_id = (
            subprocess.run(
                [*java, "kafka.tools.StorageTool", "random-uuid"],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        # The admin's SCRAM credential goes into the first metadata: without it the broker
        # could not authenticate its own inter-broker connections, nor anyone create users.
        admin = user_for(settings.kafka, "admin")
        scram = f"{MECHANISM}=[name={admin.name},password={admin.password.get_secret_value()}]"
        # The password goes through a private argument file (the java launcher expands
        # @file), never the command line that `ps` shows or an error message would repeat.
        argfile = self.data_dir(settings) / "format.args"
        argfile.touch(mode=0o600)
        argfile.write_text(f"--add-scram\n{scram}\n")
        try:
            done = subprocess.run(
                [
                    *java,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(self.config_path(settings)),
                    f"@{argfile}",
                ],
                capture_output=True,
                text=True,
            )
        finally:
            argfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed: {done.stderr[-2000:]}")
        (self.data_dir(settings) / "data" / _SCRAM_MARKER).touch()
        log.info("formatted Kafka storage with cluster id %s", cluster_id)

    def _java_prefix(self, settings: HitoSettings) -> list[str]:
        log4j = settings.infra_dir / "kafka" / "log4j2.properties"
        return [
            "java",
            f"-Xmx{settings.kafka.heap}",
            f"-Xms{settings.kafka.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{self.libs(settings)}/*",
        ]

    def argv(self, settings: HitoSettings) -> list[str]:
        return [*self._java_prefix(settings), "kafka.Kafka", str(self.config_path(settings))]

    def url(self, settings: HitoSettings) -> str:
        return f"kafka://{settings.kafka.bootstrap}"

    def healthy(self, settings: HitoSettings) -> bool:
        return kafka_ready(settings.kafka)

    def after_start(self, settings: HitoSettings) -> None:
        """Users (and their produce quotas) from the users file, the default topics and every
        role's ACLs (idempotent)."""
        from hito.access.kafka import admin_client, apply_quotas, upsert_users
        from hito.access.topics import ensure_topics

        admin = admin_client(settings.kafka)
        try:
            users = upsert_users(settings.kafka, admin)
            apply_quotas(settings.kafka, admin)
        finally:
            admin.close()
        log.info("Kafka SCRAM users: %s", ", ".join(users))
        ensure_topics(settings)


_SCRAM_MARKER = "hito-scram-admin"


def kafka_ready(kafka: KafkaSettings) -> bool:
    """True when the broker answers a metadata request from this machine's Kafka user (the
    admin when it has one); fails fast when the port is closed."""
    from kafka import KafkaAdminClient
    from kafka.errors import RetriableError

    from hito.credentials import any_role, client_config

    # Only "not reachable yet" means unhealthy; a configuration mistake must surface.
    unreachable = (RetriableError, OSError)
    try:
        socket.create_connection((kafka.host, kafka.port), timeout=1.0).close()
    except OSError:
        return False
    try:
        admin = KafkaAdminClient(
            **client_config(kafka, any_role(kafka)),
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
        )
    except unreachable:
        return False
    try:
        admin.list_topics()
        return True
    except unreachable:
        return False
    finally:
        admin.close()


def apply_properties(text: str, overrides: dict[str, str]) -> str:
    """Replace (or append) `key=value` lines of a Java properties file, keeping comments."""
    out: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if not line.lstrip().startswith("#") and key in overrides:
            out.append(f"{key}={overrides[key]}")
            seen.add(key)
        else:
            out.append(line)
    out.extend(f"{k}={v}" for k, v in overrides.items() if k not in seen)
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class InfluxDB(Service):
    def binary(self, settings: HitoSettings) -> Path:
        return settings.cache_dir / "bin" / f"influxd-{settings.influxdb.version}"

    def install(self, settings: HitoSettings, run: Runner) -> None:
        _require_command("pkg-config", settings, run)
        if self.binary(settings).exists():
            return
        script = settings.infra_dir / "influxdb" / "build.sh"
        run(
            ["bash", str(script), str(self.binary(settings))],
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
class Prometheus(Service):
    def install(self, settings: HitoSettings, run: Runner) -> None:
        _require_command("prometheus", settings, run)

    def argv(self, settings: HitoSettings) -> list[str]:
        p = settings.prometheus
        return [
            "prometheus",
            f"--config.file={settings.infra_dir / 'prometheus' / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.data_dir(settings)}",
            f"--web.listen-address={p.host}:{p.port}",
            # No --web.enable-lifecycle: /-/quit and /-/reload would let anything on this
            # machine stop Prometheus (and every alert with it) with one unauthenticated POST.
            # Without this the first notification waits about a minute for Alertmanager discovery.
            "--rules.alert.resend-delay=1s",
        ]

    def url(self, settings: HitoSettings) -> str:
        return settings.prometheus.url

    def healthy(self, settings: HitoSettings) -> bool:
        return _http_ok(f"{settings.prometheus.url}/-/ready")


@dataclass(frozen=True)
class Alertmanager(Service):
    def install(self, settings: HitoSettings, run: Runner) -> None:
        _require_command("prometheus-alertmanager", settings, run)

    def config_path(self, settings: HitoSettings) -> Path:
        return self.data_dir(settings) / "alertmanager.yml"

    def prepare(self, settings: HitoSettings) -> None:
        """The pager's token first (Alertmanager sends it), then a copy of the shipped config
        whose webhooks read it from the state directory."""
        super().prepare(settings)
        token = token_path(settings.state_dir)
        ensure_token(token)
        shipped = (settings.infra_dir / "alertmanager" / "alertmanager.yml").read_text()
        self.config_path(settings).write_text(with_token_file(shipped, token))

    def argv(self, settings: HitoSettings) -> list[str]:
        a = settings.alertmanager
        return [
            "prometheus-alertmanager",
            f"--config.file={self.config_path(settings)}",
            f"--storage.path={self.data_dir(settings)}",
            f"--web.listen-address={a.host}:{a.port}",
            # One instance: no gossip cluster (it would also listen on 9094).
            "--cluster.listen-address=",
        ]

    def url(self, settings: HitoSettings) -> str:
        return settings.alertmanager.url

    def healthy(self, settings: HitoSettings) -> bool:
        return _http_ok(f"{settings.alertmanager.url}/-/ready")


def with_token_file(alertmanager_yml: str, token_file: Path) -> str:
    """The Alertmanager config with every webhook's bearer ``credentials_file`` set to
    ``token_file`` (absolute). The shipped file names it relative to itself (``pager.token``,
    which docker compose mounts); a copy in the state directory cannot. Raises ValueError for
    a webhook without the bearer block: it would page without the token and be refused."""
    config = yaml.safe_load(alertmanager_yml)
    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            auth = hook.get("http_config", {}).get("authorization", {})
            if auth.get("type") != "Bearer" or "credentials_file" not in auth:
                raise ValueError(f"receiver {receiver['name']}: webhook without a bearer token")
            auth["credentials_file"] = str(token_file.resolve())
    header = "# Generated by `hito up` from infra/alertmanager/alertmanager.yml: edit that one.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


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
        return _http_ok(f"{self.url(settings)}/health")


SERVICES: tuple[Service, ...] = (
    Kafka("kafka", "event log: raw, clean and DLQ topics"),
    InfluxDB("influxdb", "time series: bucket hito, org hito"),
    Prometheus("prometheus", "scrapes worker metrics, evaluates alert rules"),
    Alertmanager("alertmanager", "routes alerts to the pager webhook"),
    PagerService("pager", "records and forwards pages (hito pager)"),
)
