"""Where a Hito process finds its credentials: its Kafka user (by role) and its InfluxDB token.

Every client in the project asks this module how to connect, so there is one place that knows
the mechanism (SCRAM-SHA-512), the protocol, where passwords and tokens live. Creating users,
ACLs, quotas and tokens is the admin's job (``hito.access``).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hito.files import read_secret_yaml
from hito.settings import HitoSettings
from hito.settings.sections import KafkaSettings

Role = Literal["admin", "pipeline", "operator", "device"]
# kafka-python warns "exchanging credentials in the clear" for every SCRAM login without TLS;
# SCRAM never sends the password, and beyond loopback SASL_SSL is required (docs/security.md).
logging.getLogger("kafka.net.sasl.scram").setLevel(logging.ERROR)
MECHANISM = "SCRAM-SHA-512"


class KafkaUser(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Names and passwords are pasted into JAAS lines, Java properties, the storage tool's
    # --add-scram and super.users (";"-separated): only characters none of them treat specially.
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")
    role: Role
    password: SecretStr = Field(min_length=16, max_length=128)
    # Bytes/s this user may produce, enforced by the broker (a Kafka user quota): for a
    # device's own user, so that one device's flood cannot fill its partition faster than
    # that (docs/security.md). None: no quota (the users file is the source of truth).
    produce_byte_rate: int | None = Field(default=None, ge=1024)

    @field_validator("password")
    @classmethod
    def _plain_password(cls, value: SecretStr) -> SecretStr:
        if not re.fullmatch(r"[A-Za-z0-9._~-]+", value.get_secret_value()):
            raise ValueError("password: only letters, digits and . _ ~ - (see docs/security.md)")
        return value


class _UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[KafkaUser]


class MissingCredentials(RuntimeError):
    """The users file has no user for the role this process needs."""


def load_users(path: Path) -> list[KafkaUser]:
    return read_secret_yaml(path, _UsersFile).users


def user_for(kafka: KafkaSettings, role: Role) -> KafkaUser:
    for user in load_users(kafka.users_path()):
        if user.role == role:
            return user
    raise MissingCredentials(f"{kafka.users_path()} has no Kafka user with role {role!r}")


def any_role(kafka: KafkaSettings) -> Role:
    """The admin when this machine has it, else whichever user it has (health checks)."""
    users = load_users(kafka.users_path())
    if not users:
        raise MissingCredentials(f"{kafka.users_path()} lists no Kafka user")
    return next((u.role for u in users if u.role == "admin"), users[0].role)


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    if kafka.security_protocol != "SASL_SSL":
        return None
    return ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)


def user_named(kafka: KafkaSettings, name: str) -> KafkaUser:
    for user in load_users(kafka.users_path()):
        if user.name == name:
            return user
    raise MissingCredentials(f"{kafka.users_path()} has no Kafka user named {name!r}")


def client_config(kafka: KafkaSettings, role: Role, *, user: str | None = None) -> dict[str, Any]:
    """Keyword arguments for a kafka-python (or aiokafka) client acting as ``role`` (its
    first user in the users file, or the one named ``user``, which must have that role)."""
    chosen = user_for(kafka, role) if user is None else user_named(kafka, user)
    if chosen.role != role:
        raise MissingCredentials(f"Kafka user {user!r} has role {chosen.role!r}, not {role!r}")
    config: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "security_protocol": kafka.security_protocol,
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": chosen.name,
        "sasl_plain_password": chosen.password.get_secret_value(),
    }
    context = _ssl_context(kafka)
    if context is not None:
        config["ssl_context"] = context
    return config


def faust_credentials(kafka: KafkaSettings, role: Role = "pipeline") -> Any:
    """The ``broker_credentials`` of a Faust app acting as ``role``."""
    import faust

    user = user_for(kafka, role)
    return faust.SASLCredentials(
        username=user.name,
        password=user.password.get_secret_value(),
        mechanism=MECHANISM,
        ssl_context=_ssl_context(kafka),
    )


class MissingToken(RuntimeError):
    """No scoped token is known for this bucket."""


def tokens_path(settings: HitoSettings) -> Path:
    return settings.state_dir / "influxdb" / "tokens.json"


def read_tokens(path: Path) -> dict[str, dict[str, dict[str, str]]]:
    try:
        data: dict[str, dict[str, dict[str, str]]] = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise MissingToken(
            f"{path} is not valid JSON ({exc}); delete it and run `hito up`"
        ) from exc
    return data


def pipeline_token(settings: HitoSettings) -> SecretStr:
    """The token a worker writes with: HITO_INFLUXDB__PIPELINE_TOKEN, or the bucket's entry in
    the tokens file `hito up` wrote."""
    i = settings.influxdb
    if i.pipeline_token is not None:
        return i.pipeline_token
    return _from_tokens_file(settings, "pipeline", "set HITO_INFLUXDB__PIPELINE_TOKEN or ")


def dashboards_token(settings: HitoSettings) -> SecretStr:
    """The read-only token of the bucket (Grafana's; `hito status` reads revisions with it)."""
    return _from_tokens_file(settings, "dashboards", "")


def _from_tokens_file(settings: HitoSettings, role: str, alternative: str) -> SecretStr:
    bucket = settings.influxdb.bucket
    entry = read_tokens(tokens_path(settings)).get(bucket, {}).get(role)
    if entry is None:
        raise MissingToken(
            f"no {role} token for InfluxDB bucket {bucket!r}: {alternative}run `hito up` "
            f"(writes {tokens_path(settings)})"
        )
    return SecretStr(entry["token"])
