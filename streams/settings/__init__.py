"""Hito's one settings object: validated at start-up, frozen, passed explicitly.

Every value can be set from the environment with the prefix ``HITO_`` and ``__`` between
levels, e.g. ``HITO_STATE_DIR=/srv/hito`` or ``HITO_INFLUXDB__PORT=8086``.

Secrets fail closed. The repository's ``infra/dev/`` files and the ``DEV_ONLY`` constants are
public; they are used only in the *development* profile (``HITO_PROFILE=development``: the local
stack of ``make up`` / ``make demo`` and the tests). In any other profile a secret setting that
is not set stays unset, and whatever needs it refuses to start, naming the variable to set
(:class:`MissingSecret`); a setting that points at a development file is refused at once.

The sections (kafka, influxdb, pipeline, ...) are hito.settings.sections.
"""

from __future__ import annotations

import ipaddress
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hito.settings.public_secrets import holds_public_secret
from hito.settings.sections import (
    AlertmanagerSettings,
    InfluxSettings,
    KafkaSettings,
    MissingSecret,
    PipelineSettings,
    PrivacySettings,
    PrometheusSettings,
    SurgeSettings,
    env_name,
)

# The source checkout (tests, the bench, the development files); in an installed wheel this is
# site-packages, and nothing a command needs is read from it.
REPO_ROOT = Path(__file__).resolve().parents[2]
# Service configs and build scripts: package data of hito.infra (the repository's infra/).
SHIPPED_INFRA = Path(str(files("hito.infra")))

# Development credentials for the local loopback stack ONLY. They are public by being in the
# repository; a real deployment sets HITO_INFLUXDB__TOKEN / HITO_INFLUXDB__PASSWORD from a secret.
DEV_ONLY_INFLUX_TOKEN = "hito-DEV-ONLY-influx-token-do-not-use-in-production"  # noqa: S105
DEV_ONLY_INFLUX_PASSWORD = "hito-DEV-ONLY-password"  # noqa: S105

DEV_DIR = REPO_ROOT / "infra" / "dev"
Profile = Literal["development", "production"]


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


class HitoSettings(BaseSettings):
    """Everything a Hito process needs to know, checked once when it starts."""

    model_config = SettingsConfigDict(
        env_prefix="HITO_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        # A variable set to nothing (HITO_X= , or ${UNSET} in a compose file) is not set: a
        # secret given as "" passed as set (a token of nothing, a key store at ".").
        env_ignore_empty=True,
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
        # The path, and for the files holding secrets their content: a copy elsewhere, or one
        # of their secrets pasted into a file of one's own (the devices file holds none).
        return isinstance(given, Path) and (
            given.resolve().is_relative_to(DEV_DIR.resolve())
            or (development.name in _SECRET_FILES and holds_public_secret(given))
        )
    return isinstance(given, SecretStr) and given.get_secret_value() == development


_SECRET_FILES = ("kafka-users.dev.yaml", "device-keys.dev.yaml")


# What each kind of process needs (HitoSettings.require; the registry's: .sections).
KAFKA_USERS = ("kafka", "users_file")
INFLUX_ADMIN = (("influxdb", "token"), ("influxdb", "password"))
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
