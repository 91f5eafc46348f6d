"""The ACLs and quotas computed from the settings and users file (pure, no broker)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from hito.access.kafka import Grant, apply_grants, broker_jaas_properties, grants, quota_entries
from hito.cli import app
from hito.credentials import KafkaUser, MissingCredentials, client_config, load_users
from hito.settings import HitoSettings

RAW = ("hito.raw.checkpoint", "hito.raw.drone", "hito.raw.sensor")


def _by_user(settings: HitoSettings) -> dict[str, set[tuple[str, str, str, str]]]:
    out: dict[str, set[tuple[str, str, str, str]]] = {}
    for g in grants(settings):
        out.setdefault(g.principal, set()).add((g.resource, g.name, g.pattern, g.operation))
    return out


def test_each_role_gets_exactly_its_rights() -> None:
    acl = _by_user(HitoSettings())
    assert set(acl) == {"User:hito-device", "User:hito-pipeline", "User:hito-operator"}
    assert acl["User:hito-device"] == {
        ("topic", t, "literal", op) for t in RAW for op in ("write", "describe")
    }
    assert acl["User:hito-operator"] == {
        ("topic", "hito.clean.", "prefixed", "read"),
        ("topic", "hito.clean.", "prefixed", "describe"),
        ("topic", "hito.dlq", "literal", "read"),
        ("topic", "hito.dlq", "literal", "describe"),
        ("group", "hito-operator", "prefixed", "read"),
        ("group", "hito-operator", "prefixed", "describe"),
    }
    pipeline = acl["User:hito-pipeline"]
    assert {("topic", t, "literal", "read") for t in RAW} <= pipeline
    assert not {g for g in pipeline if g[1] in RAW and g[3] in ("write", "all")}
    # Creating topics: only its own internal ones, which no data topic can match.
    assert {g for g in pipeline if g[3] == "create"} == {("topic", "hito-", "prefixed", "create")}
    assert {g for g in pipeline if g[0] == "group"} == {
        ("group", "hito", "prefixed", "read"),
        ("group", "hito", "prefixed", "describe"),
    }


def test_a_data_topic_under_the_internal_prefix_is_refused() -> None:
    s = HitoSettings()
    raw = dict(s.pipeline.raw_topics) | {"checkpoint": "hito-raw-checkpoint"}
    bad = s.model_copy(update={"pipeline": s.pipeline.model_copy(update={"raw_topics": raw})})
    with pytest.raises(ValueError, match="hito-raw-checkpoint"):
        grants(bad)


def test_grants_are_sorted_and_unique() -> None:
    g = grants(HitoSettings())
    assert g == sorted(set(g)) and all(isinstance(x, Grant) for x in g)


def test_clients_log_in_with_scram_and_the_broker_password_stays_out_of_the_shipped_file() -> None:
    k = HitoSettings().kafka
    cfg = client_config(k, "operator")
    assert (cfg["security_protocol"], cfg["sasl_mechanism"]) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
    assert cfg["sasl_plain_username"] == "hito-operator"
    jaas = broker_jaas_properties(k)
    assert jaas["super.users"] == "User:hito-admin"
    assert "hito-DEV-ONLY-kafka-admin" in jaas["listener.name.controller.plain.sasl.jaas.config"]
    shipped = (k.users_path().parent.parent / "kafka" / "server.properties").read_text()
    assert "hito-DEV-ONLY" not in shipped


def test_users_file_command_writes_random_private_credentials(tmp_path: Path) -> None:
    out = tmp_path / "users.yaml"
    result = CliRunner().invoke(app, ["kafka", "users-file", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    users = load_users(out)
    assert [u.role for u in users] == ["admin", "pipeline", "operator", "device"]
    passwords = {u.password.get_secret_value() for u in users}
    assert len(passwords) == 4 and all(len(p) >= 40 for p in passwords)
    assert yaml.safe_load(out.read_text())["users"][0]["name"] == "hito-admin"
    again = CliRunner().invoke(app, ["kafka", "users-file", "--out", str(out)])
    assert again.exit_code != 0  # never overwrites credentials that may be in use


def test_users_file_per_device_gives_each_active_device_a_user_with_a_quota(
    tmp_path: Path,
) -> None:
    settings = HitoSettings()
    # The dev registry with one device revoked: it must get no Kafka user at all.
    registry = yaml.safe_load(settings.pipeline.registry_files()[0].read_text())
    registry["devices"]["cl-chacalluta-ckpt-02"]["status"] = "revoked"
    devices_file = tmp_path / "devices.yaml"
    devices_file.write_text(yaml.safe_dump(registry))
    out = tmp_path / "users.yaml"
    args = ["kafka", "users-file", "--out", str(out), "--per-device", "--device-byte-rate", "8192"]
    env = {"HITO_PIPELINE__DEVICES_FILE": str(devices_file)}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    users = load_users(out)
    active = sorted(d for d, v in registry["devices"].items() if v["status"] == "active")
    assert len(active) == len(registry["devices"]) - 1
    per_device = users[4:]
    assert [u.name for u in per_device] == [f"hito-device-{d}" for d in active]
    assert {(u.role, u.produce_byte_rate) for u in per_device} == {("device", 8192)}
    assert [u.produce_byte_rate for u in users[:4]] == [None] * 4
    assert len({u.password.get_secret_value() for u in users}) == len(users)


def test_quota_entries_set_a_users_quota_or_remove_it() -> None:
    users = [
        KafkaUser(name="a", role="device", password="x" * 16, produce_byte_rate=16384),
        KafkaUser(name="b", role="pipeline", password="y" * 16),
    ]
    entries = [
        (
            [(e.entity_type, e.entity_name) for e in entry.entity],
            [(o.key, o.value, o.remove) for o in entry.ops],
        )
        for entry in quota_entries(users)
    ]
    assert entries == [
        ([("user", "a")], [("producer_byte_rate", 16384.0, False)]),
        ([("user", "b")], [("producer_byte_rate", 0.0, True)]),
    ]
    with pytest.raises(ValueError):
        KafkaUser(name="c", role="device", password="z" * 16, produce_byte_rate=10)


def test_a_client_can_log_in_as_a_named_user_of_its_role_only(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    users.write_text(
        yaml.safe_dump(
            {
                "users": [
                    {"name": "shared", "role": "device", "password": "p" * 16},
                    {"name": "own", "role": "device", "password": "q" * 16},
                    {"name": "ops", "role": "operator", "password": "r" * 16},
                ]
            }
        )
    )
    k = HitoSettings().kafka.model_copy(update={"users_file": users})
    assert client_config(k, "device")["sasl_plain_username"] == "shared"
    assert client_config(k, "device", user="own")["sasl_plain_username"] == "own"
    with pytest.raises(MissingCredentials):
        client_config(k, "device", user="ops")
    with pytest.raises(MissingCredentials):
        client_config(k, "device", user="nobody")


class DescribingAdmin:
    """An admin client whose broker takes ``lag`` DescribeAcls answers to show new ACLs."""

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.described = 0
        self.created: list[Any] = []

    def create_acls(self, acls: list[Any]) -> dict[str, list[Any]]:
        self.created = list(acls)
        return {"succeeded": list(acls), "failed": []}

    def describe_acls(self, _filter: Any) -> tuple[list[Any], None]:
        self.described += 1
        return (self.created if self.described > self.lag else self.created[:1]), None


def test_grants_return_once_the_broker_authorises_with_them(settings: HitoSettings) -> None:
    admin = DescribingAdmin(lag=3)
    assert apply_grants(settings, admin) == len(grants(settings))
    assert admin.described == 4


def test_grants_never_in_force_are_an_error(
    settings: HitoSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter(range(0, 1000, 5))  # each look at the clock: 5 s later
    monkeypatch.setattr("hito.access.kafka.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("hito.access.kafka.time.sleep", lambda _s: None)
    with pytest.raises(RuntimeError, match=r"Kafka ACLs not in force 15 s after their creation"):
        apply_grants(settings, DescribingAdmin(lag=10**6))


@pytest.mark.parametrize("prefix", ["hito.", "hito.raw.", "hito.dlq", "h"])
def test_a_clean_prefix_covering_the_raw_zone_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    """Operators read the clean topics by prefix: ``hito.`` would give them hito.raw.* and the
    DLQ's originals (personal data), and the pipeline the right to write the raw topics."""
    monkeypatch.setenv("HITO_PIPELINE__CLEAN_TOPIC_PREFIX", prefix)
    with pytest.raises(ValidationError, match="clean_topic_prefix"):
        HitoSettings()


def test_a_clean_prefix_covering_the_internal_topics_is_refused() -> None:
    """``hito-`` topics are the workers' changelogs (per-person days among them): a clean
    prefix ``hito`` covers them, though no data topic starts with it here."""
    s = HitoSettings()
    update = {
        "raw_topics": {k: f"border.raw.{k}" for k in s.pipeline.raw_topics},
        "dlq_topic": "border.dlq",
        "dlq_originals_topic": "border.dlq.originals",
        "clean_topic_prefix": "hito",
    }
    pipeline = s.pipeline.model_copy(update=update)
    with pytest.raises(ValueError, match="'hito'"):
        grants(s.model_copy(update={"pipeline": pipeline}))
