"""Kafka in KRaft mode as local processes: one node (the default) or a three-node cluster
(``hito up --brokers 3``), every node both broker and controller.

A cluster's nodes share one cluster id and the controller quorum of all three (three voters:
one may die and the other two still elect a leader). Topics then get the settings' replication
factor (3) and ``min.insync.replicas`` (2): a write acknowledged with ``acks=all`` is on at
least two brokers, so losing any one broker loses nothing. Node *n* (from 0) listens on
``port + n*port_step`` and ``controller_port + n*port_step``; node 0 is the single broker's
``kafka`` (same files), the others ``kafka-2`` and ``kafka-3``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hito.files import write_private
from hito.settings import HitoSettings
from hito.settings.sections import KafkaSettings
from hito.stack.base import Runner, Service, require_command
from hito.stack.ports import accepts

log = logging.getLogger(__name__)

_SCRAM_MARKER = "hito-scram-admin"
CLUSTER_RECORD = "cluster.json"


@dataclass(frozen=True)
class KafkaNode(Service):
    node: int = 0  # from 0; node.id is node + 1

    def port(self, settings: HitoSettings) -> int:
        return settings.kafka.port + self.node * settings.kafka.port_step

    def controller_port(self, settings: HitoSettings) -> int:
        return settings.kafka.controller_port + self.node * settings.kafka.port_step

    def address(self, settings: HitoSettings) -> str:
        return f"{settings.kafka.host}:{self.port(settings)}"

    def libs(self, settings: HitoSettings) -> Path:
        return settings.cache_dir / f"kafka-{settings.kafka.version}" / "libs"

    def config_path(self, settings: HitoSettings) -> Path:
        return self.data_dir(settings) / "server.properties"

    def install(self, settings: HitoSettings, run: Runner) -> None:
        require_command("java", settings, run)
        require_command("mvn", settings, run)
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
        shipped = (settings.infra_dir / "kafka" / "server.properties").read_text()
        overrides = {
            **node_properties(settings, self.node, self.data_dir(settings) / "data"),
            **broker_jaas_properties(settings.kafka),
        }
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
                "delete it with `hito down --wipe --only kafka` and run `hito up` again"
            )

    def _format(self, settings: HitoSettings) -> None:
        from hito.credentials import MECHANISM, user_for

        java = self._java_prefix(settings)
        cluster_id = cluster_identity(settings, java)
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
        # fsync'd with its directory: a marker lost to a power cut would have this node's
        # (just formatted, SCRAM-ready) data refused as older than SASL/SCRAM.
        write_private(self.data_dir(settings) / "data" / _SCRAM_MARKER, "")
        log.info("formatted Kafka node %d with cluster id %s", self.node + 1, cluster_id)

    def _java_prefix(self, settings: HitoSettings) -> list[str]:
        k = settings.kafka
        heap = k.heap if k.brokers == 1 else k.cluster_heap
        log4j = settings.infra_dir / "kafka" / "log4j2.properties"
        return [
            "java",
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{self.libs(settings)}/*",
        ]

    def argv(self, settings: HitoSettings) -> list[str]:
        return [*self._java_prefix(settings), "kafka.Kafka", str(self.config_path(settings))]

    def url(self, settings: HitoSettings) -> str:
        return f"kafka://{self.address(settings)}"

    def healthy(self, settings: HitoSettings) -> bool:
        return kafka_ready(settings.kafka, self.address(settings))

    def after_start(self, settings: HitoSettings) -> None:
        """Users (and their produce quotas) from the users file, the default topics and every
        role's ACLs (idempotent). Done once, by the last node: topics with three replicas can
        only be created once every broker has registered."""
        if self.node != settings.kafka.brokers - 1:
            return
        from hito.access.kafka import admin_client, apply_quotas, upsert_users
        from hito.access.topics import ensure_topics

        admin = admin_client(settings.kafka)
        try:
            wait_for_brokers(admin, settings.kafka.brokers)
            users = upsert_users(settings.kafka, admin)
            apply_quotas(settings.kafka, admin)
        finally:
            admin.close()
        log.info("Kafka SCRAM users: %s", ", ".join(users))
        ensure_topics(settings)


def kafka_nodes(settings: HitoSettings) -> tuple[KafkaNode, ...]:
    purpose = "event log: raw, clean and DLQ topics"
    if settings.kafka.brokers == 1:
        return (KafkaNode("kafka", purpose),)
    n = settings.kafka.brokers
    return tuple(
        KafkaNode("kafka" if i == 0 else f"kafka-{i + 1}", f"{purpose} (node {i + 1}/{n})", i)
        for i in range(n)
    )


def node_properties(settings: HitoSettings, node: int, data: Path) -> dict[str, str]:
    """The settings' part of one node's server.properties: identity, listeners, quorum and,
    in a cluster, the replication of every internal topic."""
    k = settings.kafka
    port = k.port + node * k.port_step
    controller = k.controller_port + node * k.port_step
    client = k.security_protocol
    voters = ",".join(
        f"{i + 1}@{k.host}:{k.controller_port + i * k.port_step}" for i in range(k.brokers)
    )
    props = {
        "node.id": str(node + 1),
        "log.dirs": str(data),
        "listeners": f"{client}://{k.host}:{port},CONTROLLER://{k.host}:{controller}",
        "advertised.listeners": f"{client}://{k.host}:{port}",
        "inter.broker.listener.name": client,
        "controller.quorum.voters": voters,
    }
    if k.brokers > 1:
        replicas, insync = str(k.topic_replication), str(k.topic_min_insync)
        props |= {
            "default.replication.factor": replicas,
            "min.insync.replicas": insync,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": insync,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": insync,
        }
    return props


def cluster_identity(settings: HitoSettings, java: list[str]) -> str:
    """The cluster id every node is formatted with: new for a single broker; for a cluster,
    made by the first node formatted and recorded (with the broker count) for the others."""
    record = cluster_record_path(settings)
    if settings.kafka.brokers > 1 and record.exists():
        recorded: str = json.loads(record.read_text())["cluster_id"]
        return recorded
    made = subprocess.run(
        [*java, "kafka.tools.StorageTool", "random-uuid"],
        check=True,
        capture_output=True,
        text=True,
    )
    cluster_id = made.stdout.strip().splitlines()[-1]
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"cluster_id": cluster_id, "brokers": settings.kafka.brokers}))
    return cluster_id


def cluster_record_path(settings: HitoSettings) -> Path:
    return settings.state_dir / "kafka" / CLUSTER_RECORD


def recorded_brokers(settings: HitoSettings) -> int | None:
    """How many nodes the state directory's Kafka was formatted with (None: not formatted)."""
    try:
        brokers: int = json.loads(cluster_record_path(settings).read_text())["brokers"]
    except (FileNotFoundError, KeyError, ValueError):
        return None
    return brokers


def wait_for_brokers(admin: object, brokers: int, timeout_s: float = 60.0) -> None:
    """Until the cluster's metadata lists ``brokers`` brokers."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = len(admin.describe_cluster()["brokers"])  # type: ignore[attr-defined]
        if seen >= brokers:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {seen} of {brokers} Kafka brokers registered")
        time.sleep(0.5)


def kafka_ready(kafka: KafkaSettings, address: str | None = None) -> bool:
    """True when the broker at ``address`` (default: the first) answers a metadata request from
    this machine's Kafka user (the admin when it has one); fails fast when the port is closed."""
    from kafka import KafkaAdminClient
    from kafka.errors import RetriableError

    from hito.credentials import any_role, client_config

    address = address or kafka.addresses[0]
    host, _, port = address.rpartition(":")
    # Only "not reachable yet" means unhealthy; a configuration mistake must surface.
    unreachable = (RetriableError, OSError)
    if not accepts(host, int(port)):
        return False
    try:
        admin = KafkaAdminClient(
            **{**client_config(kafka, any_role(kafka)), "bootstrap_servers": address},
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
