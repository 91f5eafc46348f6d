"""The sections of Hito's settings object (hito.settings.HitoSettings): where each service is,
what the pipeline, surge detection and privacy use. Each is a frozen pydantic model validated
with the whole object at start-up; a secret field left unset raises :class:`MissingSecret`
where it is needed, never falls back to a development file (see hito.settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from hito.schemas.privacy.policy import POLICY_FILE
from hito.schemas.registry import Source
from hito.schemas.topics import (
    DEFAULT_CLEAN_PREFIX,
    DEFAULT_DLQ_ORIGINALS_TOPIC,
    DEFAULT_DLQ_TOPIC,
    DEFAULT_RAW_TOPICS,
    TopicNames,
)

LOOPBACK = "127.0.0.1"
# The registry's settings (PipelineSettings.registry_settings); the other secrets each kind of
# process needs are listed in hito.settings.
REGISTRY = (("pipeline", "devices_file"), ("pipeline", "device_keys_file"))


def env_name(section: str, name: str) -> str:
    return f"HITO_{section.upper()}__{name.upper()}"


class MissingSecret(RuntimeError):
    """Secret settings that are not set, where outside the development profile nothing falls
    back to the repository's public development files. ``str()`` names the variables."""

    def __init__(self, *missing: tuple[str, str]) -> None:
        self.variables = [env_name(section, name) for section, name in missing]
        super().__init__(
            f"not set: {', '.join(self.variables)} (secrets; the public development files "
            "of infra/dev/ are used only with HITO_PROFILE=development)"
        )


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
        default=0.25,
        gt=0.0,
        description="Open windows re-written this often: the freshness of dashboards and the "
        "largest part of the end-to-end latency (p99 at 5,600 events/s, one worker: 0.92-0.96 s "
        "at 0.5 s, 0.70 s at 0.25 s; bench/README.md). A tick writes to InfluxDB only what "
        "changed since the last: windows, their archive, pipeline counts, surge scores",
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

    @model_validator(mode="after")
    def _clean_zone_apart(self) -> PipelineSettings:
        """Operators and the pipeline get the clean topics by prefix (hito.access.kafka): a
        prefix that covered a raw-zone topic (``hito.`` covers ``hito.raw.*`` and the DLQ's
        originals) would let operators read personal data, and could make a clean topic's
        name a raw topic's (clean events written where devices write)."""
        prefix = self.clean_topic_prefix
        covered = sorted(
            t
            for t in (*self.raw_topics.values(), self.dlq_topic, self.dlq_originals_topic)
            if t.startswith(prefix)
        )
        if not prefix or covered:
            raise ValueError(
                f"clean_topic_prefix {prefix!r} also covers {covered or 'every topic'}: "
                "operators read the clean topics by this prefix; give them a prefix of "
                "their own (the default is hito.clean.)"
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
