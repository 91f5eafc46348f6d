"""Who may do what on Kafka: SCRAM users by role, client settings for each role, and ACLs.

Four roles (docs/security.md):

- ``admin``: the super user; creates users, topics and ACLs; formats the broker.
- ``pipeline``: reads the raw topics, writes (and reads back) the clean topics, writes the DLQ,
  owns the internal topics and consumer groups of its Faust apps (``<pipeline_group_prefix>…``).
- ``operator``: reads the clean topics and the DLQ; never raw data.
- ``device``: writes the raw topics and nothing else.

Every client in the project asks this module for its connection settings by role, so there is
one place that knows the mechanism (SCRAM-SHA-512), the protocol and where passwords live.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hito.settings import HitoSettings, KafkaSettings

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
    return _UsersFile.model_validate(yaml.safe_load(path.read_text())).users


def user_for(kafka: KafkaSettings, role: Role) -> KafkaUser:
    for user in load_users(kafka.users_file):
        if user.role == role:
            return user
    raise MissingCredentials(f"{kafka.users_file} has no Kafka user with role {role!r}")


def any_role(kafka: KafkaSettings) -> Role:
    """The admin when this machine has it, else whichever user it has (health checks)."""
    users = load_users(kafka.users_file)
    if not users:
        raise MissingCredentials(f"{kafka.users_file} lists no Kafka user")
    return next((u.role for u in users if u.role == "admin"), users[0].role)


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    if kafka.security_protocol != "SASL_SSL":
        return None
    return ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)


def user_named(kafka: KafkaSettings, name: str) -> KafkaUser:
    for user in load_users(kafka.users_file):
        if user.name == name:
            return user
    raise MissingCredentials(f"{kafka.users_file} has no Kafka user named {name!r}")


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


def broker_jaas_properties(kafka: KafkaSettings) -> dict[str, str]:
    """The broker's own logins: SCRAM on the client listener, PLAIN on the controller listener.

    The controller cannot use SCRAM (its credentials live in the metadata the controller
    serves), so the broker-to-controller link uses PLAIN with the admin password, on loopback.
    These lines hold a password: they are written only into the state directory's copy of
    server.properties (mode 0600), never into the shipped file.
    """
    admin = user_for(kafka, "admin")
    name, password = admin.name, admin.password.get_secret_value()
    listener = kafka.security_protocol.lower()
    scram = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{name}" password="{password}";'
    )
    plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{name}" password="{password}" user_{name}="{password}";'
    )
    return {
        f"listener.name.{listener}.scram-sha-512.sasl.jaas.config": scram,
        "listener.name.controller.plain.sasl.jaas.config": plain,
        "super.users": f"User:{name}",
    }


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW rule: ``principal`` may ``operation`` on a topic/group/cluster resource."""

    principal: str
    resource: Literal["topic", "group"]
    name: str
    pattern: Literal["literal", "prefixed"]
    operation: Literal["read", "write", "describe", "create", "describe_configs"]


def grants(settings: HitoSettings) -> list[Grant]:
    """Every ACL the settings' topics need, for every non-admin user of the users file."""
    k, p = settings.kafka, settings.pipeline
    raw = sorted(p.raw_topics.values())
    # The pipeline's rights on its internal topics are by prefix: a data topic under that prefix
    # would silently become writable (and creatable) by it.
    internal = f"{k.pipeline_group_prefix}-"
    clashing = [t for t in (*raw, p.dlq_topic, p.clean_topic_prefix) if t.startswith(internal)]
    if clashing:
        raise ValueError(
            f"topics {clashing} start with {internal!r}, the prefix of the pipeline's internal "
            "topics; name data topics differently (e.g. hito.raw.*) or change "
            "HITO_KAFKA__PIPELINE_GROUP_PREFIX"
        )
    out: set[Grant] = set()
    for user in load_users(k.users_file):
        u = f"User:{user.name}"
        if user.role == "device":
            for t in raw:
                out |= {Grant(u, "topic", t, "literal", op) for op in ("write", "describe")}
        elif user.role == "pipeline":
            for t in raw:
                out |= {Grant(u, "topic", t, "literal", op) for op in ("read", "describe")}
            out |= {
                # The aggregate agent reads back the clean topics the ingest agent wrote.
                Grant(u, "topic", p.clean_topic_prefix, "prefixed", "read"),
                Grant(u, "topic", p.clean_topic_prefix, "prefixed", "write"),
                Grant(u, "topic", p.clean_topic_prefix, "prefixed", "describe"),
                Grant(u, "topic", p.dlq_topic, "literal", "write"),
                Grant(u, "topic", p.dlq_topic, "literal", "describe"),
            }
            # Faust's own topics ("<app id>-<table>-changelog", "<app id>-__assignor…"), which
            # it creates, and its consumer groups (= app ids).
            internal = f"{k.pipeline_group_prefix}-"
            out |= {
                Grant(u, "topic", internal, "prefixed", op)
                for op in ("create", "read", "write", "describe", "describe_configs")
            }
            out |= {
                Grant(u, "group", k.pipeline_group_prefix, "prefixed", op)
                for op in ("read", "describe")
            }
        elif user.role == "operator":
            out |= {
                Grant(u, "topic", p.clean_topic_prefix, "prefixed", "read"),
                Grant(u, "topic", p.clean_topic_prefix, "prefixed", "describe"),
                Grant(u, "topic", p.dlq_topic, "literal", "read"),
                Grant(u, "topic", p.dlq_topic, "literal", "describe"),
                Grant(u, "group", k.operator_group_prefix, "prefixed", "read"),
                Grant(u, "group", k.operator_group_prefix, "prefixed", "describe"),
            }
    return sorted(out)


def apply_grants(settings: HitoSettings, admin: Any) -> int:
    """Create the ACLs of :func:`grants` with an admin client (creating an existing ACL is a
    no-op on the broker). Returns how many were asked for; raises on any failure."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    acls = [
        ACL(
            principal=g.principal,
            host="*",
            operation=ACLOperation[g.operation.upper()],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[g.resource.upper()],
                g.name,
                ACLResourcePatternType[g.pattern.upper()],
            ),
        )
        for g in grants(settings)
    ]
    result = admin.create_acls(acls)
    if result["failed"]:
        raise RuntimeError(f"could not create Kafka ACLs: {result['failed']}")
    _wait_until_in_force(admin, set(acls))
    return len(acls)


def _wait_until_in_force(admin: Any, acls: set[Any], timeout_s: float = 15.0) -> None:
    """Wait until the broker authorises with these ACLs. CreateAcls answers once the controller
    has committed them; the broker applies them when it replays the metadata log, a moment
    later. A client starting in between was refused (a bench run lost 8 of its first sends to
    TopicAuthorizationFailed). DescribeAcls is answered from the broker's authorizer itself."""
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
        ResourceType,
    )

    every = ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    deadline = time.monotonic() + timeout_s
    while True:
        described, error = admin.describe_acls(every)
        missing = acls - set(described)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{len(missing)} Kafka ACLs not in force {timeout_s:.0f} s after their creation "
                f"(last answer: {error!r}), e.g. {sorted(map(repr, missing))[:3]}"
            )
        time.sleep(0.05)


def upsert_users(kafka: KafkaSettings, admin: Any) -> list[str]:
    """Create or update the SCRAM credential of every user in the users file."""
    from kafka.admin import UserScramCredentialUpsertion

    users = load_users(kafka.users_file)
    errors = admin.alter_user_scram_credentials(
        [
            UserScramCredentialUpsertion(u.name, MECHANISM, u.password.get_secret_value())
            for u in users
        ]
    )
    failed = {name: err for name, err in errors.items() if err}
    if failed:
        raise RuntimeError(f"could not set Kafka SCRAM credentials: {failed}")
    return [u.name for u in users]


PRODUCE_QUOTA = "producer_byte_rate"


def quota_entries(users: list[KafkaUser]) -> list[Any]:
    """One AlterClientQuotas entry per user: its produce quota set, or removed when the users
    file gives none (removing an absent quota is a no-op on the broker)."""
    from kafka.protocol.admin import AlterClientQuotasRequest

    entry = AlterClientQuotasRequest.EntryData
    return [
        entry(
            entity=[entry.EntityData(entity_type="user", entity_name=u.name)],
            ops=[
                entry.OpData(
                    key=PRODUCE_QUOTA,
                    value=float(u.produce_byte_rate or 0),
                    remove=u.produce_byte_rate is None,
                )
            ],
        )
        for u in users
    ]


def apply_quotas(kafka: KafkaSettings, admin: Any) -> dict[str, int | None]:
    """Set (or remove) every user's produce quota as the users file says; returns user ->
    bytes/s. kafka-python's admin client has no call for quotas: the request goes through its
    connection manager, as its own calls do."""
    from kafka.protocol.admin import AlterClientQuotasRequest

    users = load_users(kafka.users_file)
    request = AlterClientQuotasRequest(entries=quota_entries(users), validate_only=False)

    async def send() -> Any:
        return await admin._manager.send(request)

    response = admin._manager.run(send)
    failed = {
        e.entity[0].entity_name: e.error_message or e.error_code
        for e in response.entries
        if e.error_code
    }
    if failed:
        raise RuntimeError(f"could not set Kafka quotas: {failed}")
    return {u.name: u.produce_byte_rate for u in users}


def admin_client(kafka: KafkaSettings, **extra: Any) -> Any:
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(**client_config(kafka, "admin"), **extra)
