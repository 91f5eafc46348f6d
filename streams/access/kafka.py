"""Who may do what on Kafka (the admin's side): SCRAM users, produce quotas and ACLs per role.

Four roles (docs/security.md):

- ``admin``: the super user; creates users, topics and ACLs; formats the broker.
- ``pipeline``: reads the raw topics, writes (and reads back) the clean topics, writes the DLQ,
  owns the internal topics and consumer groups of its Faust apps (``<pipeline_group_prefix>…``).
- ``operator``: reads the clean topics and the DLQ; never raw data.
- ``device``: writes the raw topics and nothing else.

How a process of a role connects is ``hito.credentials``; this module provisions the broker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from hito.credentials import MECHANISM, KafkaUser, client_config, load_users, user_for
from hito.settings import HitoSettings
from hito.settings.sections import KafkaSettings


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
    data = (*raw, p.dlq_topic, p.dlq_originals_topic, p.clean_topic_prefix)
    clashing = [t for t in data if t.startswith(internal)]
    if internal.startswith(p.clean_topic_prefix):  # operators would read the changelogs
        clashing.append(p.clean_topic_prefix)
    if clashing:
        raise ValueError(
            f"topics {clashing} start with {internal!r}, the prefix of the pipeline's internal "
            "topics; name data topics differently (e.g. hito.raw.*) or change "
            "HITO_KAFKA__PIPELINE_GROUP_PREFIX"
        )
    out: set[Grant] = set()
    for user in load_users(k.users_path()):
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
                # The rejected bytes: written by the pipeline, read by nobody but admins.
                Grant(u, "topic", p.dlq_originals_topic, "literal", "write"),
                Grant(u, "topic", p.dlq_originals_topic, "literal", "describe"),
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

    users = load_users(kafka.users_path())
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

    users = load_users(kafka.users_path())
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
