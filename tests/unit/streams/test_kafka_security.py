"""The ACLs computed from the settings: each role gets exactly its rights (pure, no broker)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from streams.cli import app
from streams.kafka_security import Grant, broker_jaas_properties, client_config, grants, load_users
from streams.settings import HitoSettings

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
    shipped = (k.users_file.parent.parent / "kafka" / "server.properties").read_text()
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
