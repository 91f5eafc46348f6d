"""`hito up --brokers 3`: each node's identity, listeners and quorum, the replication every
topic gets, and the broker count a state directory remembers (no real broker here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hito.access.topics import TopicSpec, created_configs
from hito.settings import HitoSettings, SettingsError, load_settings
from hito.settings.sections import KafkaSettings
from hito.stack.kafka import CLUSTER_RECORD, kafka_nodes, node_properties
from hito.stack.manager import StackError, stack_settings


def _cluster(tmp_path: Path, **kafka: object) -> HitoSettings:
    return HitoSettings(state_dir=tmp_path, kafka=KafkaSettings(brokers=3, **kafka))


def test_three_nodes_each_broker_and_voter_on_their_own_ports(tmp_path: Path) -> None:
    settings = _cluster(tmp_path)
    nodes = kafka_nodes(settings)
    assert [n.name for n in nodes] == ["kafka", "kafka-2", "kafka-3"]
    assert [n.address(settings) for n in nodes] == [
        "127.0.0.1:19092",
        "127.0.0.1:19192",
        "127.0.0.1:19292",
    ]
    props = node_properties(settings, 2, tmp_path / "kafka-3" / "data")
    assert props["node.id"] == "3"
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19292,CONTROLLER://127.0.0.1:19291"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:19292"
    voters = "1@127.0.0.1:19091,2@127.0.0.1:19191,3@127.0.0.1:19291"
    assert props["controller.quorum.voters"] == voters
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "3", key
    for key in (
        "min.insync.replicas",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "2", key


def test_a_single_broker_keeps_the_shipped_replication(tmp_path: Path) -> None:
    settings = HitoSettings(state_dir=tmp_path)
    props = node_properties(settings, 0, tmp_path / "kafka" / "data")
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19091"
    assert "default.replication.factor" not in props  # server.properties' 1 stays
    assert settings.kafka.bootstrap == "127.0.0.1:19092"
    assert (settings.kafka.topic_replication, settings.kafka.topic_min_insync) == (1, 1)


def test_clients_bootstrap_from_every_broker_and_topics_need_two_in_sync(tmp_path: Path) -> None:
    settings = _cluster(tmp_path)
    assert settings.kafka.bootstrap == "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292"
    assert (settings.kafka.topic_replication, settings.kafka.topic_min_insync) == (3, 2)
    spec = TopicSpec("hito.raw.checkpoint", 4, {"retention.ms": "3600000"})
    assert created_configs(settings, spec) == {
        "retention.ms": "3600000",
        "min.insync.replicas": "2",
    }


def test_replication_cannot_exceed_the_brokers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITO_KAFKA__REPLICATION_FACTOR", "3")
    with pytest.raises(SettingsError, match="kafka: Value error, replication_factor"):
        load_settings()
    monkeypatch.setenv("HITO_KAFKA__BROKERS", "3")
    monkeypatch.setenv("HITO_KAFKA__MIN_INSYNC_REPLICAS", "3")
    assert load_settings().kafka.topic_min_insync == 3  # all three: allowed, if unwise
    monkeypatch.setenv("HITO_KAFKA__BROKERS", "6")
    with pytest.raises(SettingsError, match=r"kafka\.brokers"):
        load_settings()


def test_the_state_directory_remembers_its_broker_count(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / CLUSTER_RECORD).write_text('{"cluster_id": "x", "brokers": 3}')
    # `hito status` / `hito down` without --brokers see all three nodes...
    seen = stack_settings(HitoSettings(state_dir=tmp_path))
    assert seen.kafka.brokers == 3
    assert [n.name for n in kafka_nodes(seen)] == ["kafka", "kafka-2", "kafka-3"]
    # ...and asking explicitly for one broker on a cluster's data is refused.
    with pytest.raises(StackError, match="holds a Kafka of 3 broker"):
        stack_settings(HitoSettings(state_dir=tmp_path, kafka=KafkaSettings(brokers=1)))


def test_single_broker_data_from_before_the_record_counts_as_one(tmp_path: Path) -> None:
    data = tmp_path / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("node.id=1\n")
    with pytest.raises(StackError, match="holds a Kafka of 1 broker"):
        stack_settings(_cluster(tmp_path))


def test_hito_up_brokers_3_asks_the_manager_for_three(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from hito.cli import app
    from hito.stack import manager

    asked: list[HitoSettings] = []

    def fake_up(settings: HitoSettings, run: object, **_: object) -> list[str]:
        asked.append(settings)
        return []

    monkeypatch.setattr(manager, "up", fake_up)
    monkeypatch.setattr(manager, "status", lambda settings: [])
    monkeypatch.setattr(manager, "outdated", lambda settings: [])
    monkeypatch.setenv("HITO_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HITO_PROFILE", "development")
    result = CliRunner().invoke(app, ["up", "--brokers", "3"])
    assert result.exit_code == 0, result.output
    [settings] = asked
    assert (settings.kafka.brokers, settings.kafka.topic_replication) == (3, 3)
    assert "brokers" in settings.kafka.model_fields_set  # explicit: checked against the data
    assert "HITO_KAFKA__BROKERS=3" in result.output
