"""Hito's one settings object: validated at start-up, frozen, passed explicitly.

Every value can be set from the environment with the prefix ``HITO_`` and ``__`` between
levels, e.g. ``HITO_STATE_DIR=/srv/hito`` or ``HITO_INFLUXDB__PORT=8086``.

Secrets fail closed. The repository's ``infra/dev/`` files and the ``DEV_ONLY`` constants are
public; they are used only in the *development* profile (``HITO_PROFILE=development``: the local
stack of ``make up`` / ``make demo`` and the tests). In any other profile a secret setting that
is not set stays unset, and whatever needs it refuses to start, naming the variable to set
(:class:`MissingSecret`); a setting that points at a development file is refused at once.
"""

from __future__ import annotations

import ipaddress
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hito.schemas.privacy.policy import POLICY_FILE
from hito.schemas.registry import Source
from hito.schemas.topics import (
    DEFAULT_CLEAN_PREFIX,
    DEFAULT_DLQ_ORIGINALS_TOPIC,
    DEFAULT_DLQ_TOPIC,
    DEFAULT_RAW_TOPICS,
    TopicNames,
)

# The source checkout (tests, the bench, the development files); in an installed wheel this is
# site-packages, and nothing a command needs is read from it.
REPO_ROOT = Path(__file__).resolve().parent.parent
# Service configs and build scripts: package data of hito.infra (the repository's infra/).
SHIPPED_INFRA = Path(str(files("hito.infra")))

# Development credentials for the local loopback stack ONLY. They are public by being in the
# repository; a real deployment sets HITO_INFLUXDB__TOKEN / HITO_INFLUXDB__PASSWORD from a secret.
DEV_ONLY_INFLUX_TOKEN = "hito-DEV-ONLY-influx-token-do-not-use-in-production"  # noqa: S105
DEV_ONLY_INFLUX_PASSWORD = "hito-DEV-ONLY-password"  # noqa: S105

LOOPBACK = "127.0.0.1"
DEV_DIR = REPO_ROOT / "infra" / "dev"
Profile = Literal["development", "production"]


class MissingSecret(RuntimeError):
    """Secret settings that are not set, where outside the development profile nothing falls
    back to the repository's public development files. ``str()`` names the variables."""

    def __init__(self, *missing: tuple[str, str]) -> None:
        self.variables = [env_name(section, name) for section, name in missing]
        super().__init__(
            f"not set: {', '.join(self.variables)} (secrets; the public development files "
            "of infra/dev/ are used only with HITO_PROFILE=development)"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other name may resolve beyond this machine


class SettingsError(ValueError):
    """Settings that do not validate; the message names each setting and never repeats a
    value (pydantic's own message does, and a value may be a secret)."""


def env_name(section: str, name: str) -> str:
    return f"HITO_{section.upper()}__{name.upper()}"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    version: str = "4.4.0"
    host: str = LOOPBACK
    port: int = Field(default=19092, ge=1, le=65535)
    controller_port: int = Field(default=19091, ge=1, le=65535)
    heap: str = "768m"
    brokers: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Local KRaft nodes (`hito up --brokers 3`): each is broker and controller",
    )
    port_step: int = Field(
        default=100,
        ge=2,
        le=1000,
        description="Node n (from 0) listens on port + n*step and controller_port + n*step",
    )
    cluster_heap: str = Field(default="512m", description="Heap of each node of a cluster")
    replication_factor: int | None = Field(
        default=None, ge=1, le=5, description="Of every topic; default: 3 on 3 brokers, else 1"
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        le=5,
        description="Replicas that must have a write before acks=all succeeds; default: "
        "replication factor - 1 (at least 1)",
    )
    security_protocol: Literal["SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="SASL_PLAINTEXT",
        description="SASL_SSL for a listener reachable beyond loopback (docs/security.md)",
    )
    ssl_cafile: Path | None = Field(
        default=None, description="CA that signed the broker's certificate (SASL_SSL)"
    )
    allow_plaintext: bool = Field(
        default=False,
        description="SASL_PLAINTEXT to a host beyond loopback outside the development profile, "
        "on purpose (a network the operator vouches for); else refused at start",
    )
    users_file: Path | None = Field(
        default=None, description="SCRAM users and their roles: a secret (0600 file)"
    )
    pipeline_group_prefix: str = Field(
        default="hito",
        description="Faust app ids (consumer groups, internal topics) the pipeline may use",
    )
    operator_group_prefix: str = "hito-operator"

    @property
    def addresses(self) -> list[str]:
        """host:port of every broker's client listener, node 1 first."""
        return [f"{self.host}:{self.port + n * self.port_step}" for n in range(self.brokers)]

    @property
    def bootstrap(self) -> str:
        """Every broker, comma-separated: a client still connects while one is down."""
        return ",".join(self.addresses)

    @property
    def topic_replication(self) -> int:
        return self.replication_factor or min(self.brokers, 3)

    @property
    def topic_min_insync(self) -> int:
        return self.min_insync_replicas or max(1, self.topic_replication - 1)

    @model_validator(mode="after")
    def _replicas_fit_the_brokers(self) -> KafkaSettings:
        if self.topic_replication > self.brokers:
            raise ValueError("replication_factor: more replicas than brokers")
        if self.topic_min_insync > self.topic_replication:
            raise ValueError("min_insync_replicas: more than the replication factor")
        return self

    def users_path(self) -> Path:
        if self.users_file is None:
            raise MissingSecret(("kafka", "users_file"))
        return self.users_file


class InfluxSettings(_Frozen):
    version: str = "v2.9.1"
    host: str = LOOPBACK
    port: int = Field(default=18086, ge=1, le=65535)
    org: str = "hito"
    bucket: str = "hito"
    username: str = "hito"
    password: SecretStr | None = Field(default=None, description="The admin user's password")
    token: SecretStr | None = Field(
        default=None,
        description="Admin token: setup, retention, tests; never what a worker writes with",
    )
    pipeline_token: SecretStr | None = Field(
        default=None,
        description="Read+write on the bucket and its archive (<bucket>-archive) only; "
        "default: <state_dir>/influxdb/tokens.json",
    )
    allow_plaintext: bool = Field(
        default=False,
        description="Plain HTTP (tokens in clear) to a host beyond loopback outside the "
        "development profile, on purpose; else refused at start (put a TLS proxy on loopback)",
    )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def archive_bucket(self) -> str:
        """The bucket of full (unsuppressed) window counts for the backfill horizon: the
        pipeline's token only, never dashboards (docs/aggregation.md, "Backfill")."""
        return f"{self.bucket}-archive"

    def admin_token(self) -> SecretStr:
        if self.token is None:
            raise MissingSecret(("influxdb", "token"))
        return self.token

    def admin_password(self) -> SecretStr:
        if self.password is None:
            raise MissingSecret(("influxdb", "password"))
        return self.password


class PrometheusSettings(_Frozen):
    version: str = Field(default="3.16.0", description="Built by infra/prometheus/build.sh")
    host: str = LOOPBACK
    port: int = Field(default=19090, ge=1, le=65535)
    worker_targets_dir: Path | None = Field(
        default=None,
        description="Where each `hito worker` writes its scrape target (file service "
        "discovery); default: <state_dir>/prometheus/targets/workers",
    )
    runbook_base_url: str | None = Field(
        default=None,
        description="Alerts' runbook_url is <this>/<alert>.md; default: this source "
        "checkout's docs/runbooks as a file:// URL",
    )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class AlertmanagerSettings(_Frozen):
    version: str = Field(default="0.35.0", description="Built by infra/alertmanager/build.sh")
    host: str = LOOPBACK
    port: int = Field(default=19093, ge=1, le=65535)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class PipelineSettings(_Frozen):
    """Topics, limits and the device registry used by the workers."""

    raw_topics: dict[Source, str] = Field(default_factory=lambda: dict(DEFAULT_RAW_TOPICS))
    dlq_topic: str = DEFAULT_DLQ_TOPIC
    dlq_originals_topic: str = Field(
        default=DEFAULT_DLQ_ORIGINALS_TOPIC,
        description="Rejected events' bytes: raw zone (pipeline and admins only)",
    )
    clean_topic_prefix: str = DEFAULT_CLEAN_PREFIX
    topic_partitions: int = Field(default=4, ge=1, le=256)
    max_event_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    max_future_skew_s: float = Field(default=300.0, ge=0.0, description="SPEC: 5 minutes")
    backfill_horizon_s: int = Field(
        default=7 * 86400,
        ge=60,
        le=30 * 86400,
        description="How old an event may be and still be counted: windows older than the "
        "allowed lateness are revised from their archived full counts (docs/aggregation.md, "
        "'Backfill'); an older event is late_beyond_window",
    )
    dedup_window: int = Field(
        default=4096,
        ge=16,
        le=1_000_000,
        description="Per device: how many recent seq numbers are remembered for out-of-order",
    )
    window_s: int = Field(default=60, ge=1, le=3600, description="Tumbling window length")
    allowed_lateness_s: int = Field(
        default=300, ge=0, description="How long after its window closes an event still counts"
    )
    flush_interval_s: float = Field(
        default=0.5,
        gt=0.0,
        description="Open windows re-written this often: the freshness of dashboards (1 s: p99 "
        "end-to-end latency 1.7 s at 600 events/s; 0.5 s: 1.2-1.5 s, bench/README.md)",
    )
    batch_max_events: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="The bench's Faust floor takes batches this large; the worker's agents take "
        "each partition's fetch whole (the batch lane, docs/aggregation.md)",
    )
    batch_within_s: float = Field(
        default=0.05,
        gt=0.0,
        le=5.0,
        description="How long the bench's Faust floor waits for a batch to fill",
    )
    devices_file: Path | None = Field(
        default=None,
        description="The device registry: YAML, or a registry file of `hito devices import` "
        "(told apart by content; a registry file holds the keys)",
    )
    device_keys_file: Path | None = Field(
        default=None,
        description="Each device's HMAC key: a secret (0600 file); not read with a registry file",
    )
    registry_reload_s: float = Field(
        default=5.0, gt=0.0, description="How often workers look for registry changes"
    )

    @model_validator(mode="after")
    def _horizon_beyond_lateness(self) -> PipelineSettings:
        if self.backfill_horizon_s < self.window_s + self.allowed_lateness_s:
            raise ValueError(
                "backfill_horizon_s must be at least window_s + allowed_lateness_s (an event "
                "the live windows still take is within the horizon)"
            )
        return self

    def registry_settings(self) -> tuple[tuple[str, str], ...]:
        """The registry's settings a process needs: the devices file, and the keys file
        unless the devices file is a registry file (which holds the keys)."""
        from hito.devices.binary import is_registry_file

        if self.devices_file is not None and is_registry_file(self.devices_file):
            return (REGISTRY[0],)
        return REGISTRY

    def registry_files(self) -> tuple[Path, Path | None]:
        """(devices file, device keys file: None with a registry file)."""
        needed = self.registry_settings()
        missing = [(section, name) for section, name in needed if getattr(self, name) is None]
        if missing:
            raise MissingSecret(*missing)
        assert self.devices_file is not None
        return self.devices_file, self.device_keys_file if len(needed) > 1 else None

    @property
    def topics(self) -> TopicNames:
        """Every topic name, derived in one place (hito.schemas.topics)."""
        return TopicNames(
            raw=self.raw_topics,
            dlq=self.dlq_topic,
            clean_prefix=self.clean_topic_prefix,
            dlq_originals=self.dlq_originals_topic,
        )


class SurgeSettings(_Frozen):
    """Surge detection (streams/stages/surge.py, docs/observability.md)."""

    min_volume: int = Field(default=20, ge=1, description="Crossings/minute below this: score 0")
    min_slot_samples: int = Field(
        default=30, ge=1, description="Minutes of history an hour-of-week slot needs to be used"
    )
    recent_minutes: int = Field(default=15, ge=3, le=60, description="Cold-start history")
    min_recent: int = Field(default=3, ge=1, description="Cold start: minutes needed to score")
    history_days: int = Field(default=28, ge=1, le=365, description="History learned at start")
    grace_s: float = Field(
        default=5.0, ge=0.0, description="A minute is scored this long after it ends"
    )
    default_timezone: str = "UTC"
    site_timezones: dict[str, str] = Field(
        default={"chacalluta": "America/Santiago", "santa-rosa": "America/Lima"},
        description="Local time of each site: hours of the week are the site's own",
    )


class PrivacySettings(_Frozen):
    """The privacy policy file and the pseudonym key store (a secret)."""

    policy_file: Path = POLICY_FILE
    key_store_file: Path | None = Field(
        default=None,
        description="Pseudonym key store: a secret (0600 file the workers rewrite as keys are "
        "destroyed; provision with `hito policy keys init`). Development profile: "
        "<state_dir>/privacy/pseudonym-keys.dev.json, created on first use",
    )
    key_refresh_s: float = Field(
        default=10.0,
        gt=0.0,
        le=60.0,
        description="How often a worker destroys keys whose epoch closed and re-reads the store",
    )


class HitoSettings(BaseSettings):
    """Everything a Hito process needs to know, checked once when it starts."""

    model_config = SettingsConfigDict(
        env_prefix="HITO_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    profile: Profile = Field(
        default="production",
        description="development: secrets may come from the public files under infra/dev/",
    )
    state_dir: Path = Field(
        default=Path.home() / ".local" / "state" / "hito",
        description="Data, logs and pid files of the local services",
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "hito",
        description="Downloaded jars and built binaries, reused across runs",
    )
    infra_dir: Path = Field(
        default=SHIPPED_INFRA, description="Service configs and build scripts (package data)"
    )
    kafka: KafkaSettings = KafkaSettings()
    influxdb: InfluxSettings = InfluxSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    pipeline: PipelineSettings = PipelineSettings()
    privacy: PrivacySettings = PrivacySettings()
    surge: SurgeSettings = SurgeSettings()
    pager_port: int = Field(default=19097, ge=1, le=65535, description="hito pager webhook")

    @model_validator(mode="before")
    @classmethod
    def _development_secrets(cls, data: Any) -> Any:
        """In the development profile, every secret left unset takes its development value."""
        if not isinstance(data, dict) or data.get("profile") != "development":
            return data
        data = dict(data)
        for section, name, value in DEVELOPMENT_SECRETS:
            given = data.get(section)
            if isinstance(given, BaseModel):
                if getattr(given, name) is None:
                    data[section] = given.model_copy(update={name: _typed(value)})
            else:
                data[section] = {name: value, **(given or {})}
        return data

    @model_validator(mode="after")
    def _no_development_secret_in_production(self) -> HitoSettings:
        if self.profile == "development":
            return self
        wrong = [
            env_name(section, name)
            for section, name, value in DEVELOPMENT_SECRETS
            if _same_secret(getattr(getattr(self, section), name), value)
        ]
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)}: development secrets (public, in the repository) outside "
                "the development profile; set your own, or HITO_PROFILE=development for the "
                "local stack"
            )
        return self

    @model_validator(mode="after")
    def _no_plaintext_beyond_loopback(self) -> HitoSettings:
        """Events carry personal data and InfluxDB requests carry tokens: outside the
        development profile, neither crosses a network in clear unless the operator says so.
        Before, a Kafka host beyond loopback with the default SASL_PLAINTEXT (or a CA file
        set and the protocol forgotten, the CA then ignored) was accepted without a word."""
        kafka, influx = self.kafka, self.influxdb
        if kafka.ssl_cafile is not None and kafka.security_protocol != "SASL_SSL":
            raise ValueError(
                "HITO_KAFKA__SSL_CAFILE is set but HITO_KAFKA__SECURITY_PROTOCOL is not "
                "SASL_SSL: the CA would be ignored and the connection left in clear"
            )
        if self.profile == "development":
            return self
        refused = []
        if (
            kafka.security_protocol == "SASL_PLAINTEXT"
            and not kafka.allow_plaintext
            and not is_loopback(kafka.host)
        ):
            refused.append(
                "HITO_KAFKA__HOST is beyond loopback with HITO_KAFKA__SECURITY_PROTOCOL="
                "SASL_PLAINTEXT (set SASL_SSL and HITO_KAFKA__SSL_CAFILE, or "
                "HITO_KAFKA__ALLOW_PLAINTEXT=true on purpose)"
            )
        if not influx.allow_plaintext and not is_loopback(influx.host):
            refused.append(
                "HITO_INFLUXDB__HOST is beyond loopback and Hito speaks plain HTTP to it "
                "(reach it through a TLS proxy on loopback, or HITO_INFLUXDB__ALLOW_PLAINTEXT"
                "=true on purpose)"
            )
        if refused:
            raise ValueError("; ".join(refused))
        return self

    def require(self, *secrets: tuple[str, str]) -> None:
        """Raise MissingSecret naming every one of ``secrets`` ((section, setting) pairs of
        DEVELOPMENT_SECRETS) that is not set: a command checks all it needs at start."""
        missing = [
            (sec, name) for sec, name in secrets if getattr(getattr(self, sec), name) is None
        ]
        if missing:
            raise MissingSecret(*missing)

    @property
    def development_secrets(self) -> bool:
        """True when secrets may be the public development ones (shown by status and logs)."""
        return self.profile == "development"


# (section, setting, development value): every secret, and where the development profile
# takes it from when it is not set.
DEVELOPMENT_SECRETS: tuple[tuple[str, str, Path | str], ...] = (
    ("kafka", "users_file", DEV_DIR / "kafka-users.dev.yaml"),
    ("influxdb", "token", DEV_ONLY_INFLUX_TOKEN),
    ("influxdb", "password", DEV_ONLY_INFLUX_PASSWORD),
    ("pipeline", "devices_file", DEV_DIR / "devices.dev.yaml"),
    ("pipeline", "device_keys_file", DEV_DIR / "device-keys.dev.yaml"),
)


def _typed(value: Path | str) -> Path | SecretStr:
    return value if isinstance(value, Path) else SecretStr(value)


def _same_secret(given: object, development: Path | str) -> bool:
    if given is None:
        return False
    if isinstance(development, Path):
        return isinstance(given, Path) and given.resolve().is_relative_to(DEV_DIR.resolve())
    return isinstance(given, SecretStr) and given.get_secret_value() == development


# What each kind of process needs (HitoSettings.require).
KAFKA_USERS = ("kafka", "users_file")
INFLUX_ADMIN = (("influxdb", "token"), ("influxdb", "password"))
REGISTRY = (("pipeline", "devices_file"), ("pipeline", "device_keys_file"))
PSEUDONYM_KEYS = ("privacy", "key_store_file")  # required outside the development profile


def load_settings() -> HitoSettings:
    """Read and validate settings from the environment; fails fast on a bad value (a
    SettingsError naming the settings, never their values)."""
    try:
        return HitoSettings()
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        raise SettingsError("; ".join(problems)) from None
