"""The Faust application factory. Agents are thin adapters added by the pipeline modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import faust

from hito.credentials import faust_credentials
from hito.pipeline.faust.consumer import gapless_consumer_class
from hito.pipeline.faust.offsets import FaultHooks
from hito.settings import HitoSettings


def create_app(
    settings: HitoSettings,
    *,
    app_id: str = "hito",
    on_rewind: Callable[[str], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
    hooks: FaultHooks | None = None,
) -> faust.App:
    """A Faust app on the configured Kafka, with the project's safety defaults.

    - raw bytes in and out: agents decode and validate themselves, so a bad value can never
      crash an agent inside Faust's deserialiser;
    - at-least-once (never ``exactly_once``: it has open crash/duplicate bugs); exact results
      come from idempotent sinks and dedup state instead;
    - no web server, and never table contents over HTTP;
    - a consumer that re-reads records Faust would otherwise skip when partitions move
      (hito.pipeline.faust.consumer, .offsets); ``on_rewind(topic)`` is told each time it
      had to, and ``on_skip(topic)`` of every record Faust acked unprocessed (its offset is
      not committed);
      ``hooks``: fault hooks for tests (offsets.FaultHooks).
    """
    datadir = settings.state_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        # Every broker of a cluster: the app still starts while one of them is down.
        broker=[f"kafka://{address}" for address in settings.kafka.addresses],
        # The pipeline user: reads raw, writes clean and DLQ, owns its app's internal topics.
        broker_credentials=faust_credentials(settings.kafka, "pipeline"),
        value_serializer="raw",
        key_serializer="raw",
        processing_guarantee="at_least_once",
        web_enabled=False,
        web_tables_enabled=False,
        store="memory://",
        # Faust's working files go under the state directory, never the current directory.
        datadir=str(datadir),
        # acks=all and (below) idempotence: a write counts once it is on min.insync.replicas
        # brokers, and a retried send after a broker failure is never written twice.
        producer_acks=-1,
        # The app's own topics (changelogs) are replicated like the data topics.
        topic_replication_factor=settings.kafka.topic_replication,
        consumer_auto_offset_reset="earliest",
        # No standby copies: a worker holds (and writes to InfluxDB) only what it owns.
        table_standby_replicas=0,
        # A dead worker's partitions move on after 10 s instead of Faust's default 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        # Fairness: at most 256 KiB (~380 events) per partition per fetch: a lane batch is one
        # partition's fetch, and a quiet partition's batch waits behind at most LANE_BATCHES of
        # a flooding one (hito.pipeline.faust.lane). With 512 KiB a quiet device behind a
        # 30,000-event flood waited 0.66 s (test_flood.py); Faust's own buffer (changelogs
        # only, now) keeps at most 1,024 records waiting (its default: 4,096).
        consumer_max_fetch_size=256 * 1024,
        stream_buffer_maxsize=1024,
        # Faust's own sends (through Topic.send and its producer, not BatchSend) gather for
        # 5 ms into few requests (aiokafka's default linger is 0 and batches of 16 KiB, ~20
        # events). The lanes' record batches do not wait for it: BatchSend closes them.
        producer_linger=0.005,
        producer_max_batch_size=512 * 1024,
    )
    # Faust builds its consumer from the transport's Consumer class when the app starts.
    inputs = settings.pipeline.topics.inputs
    consumer = gapless_consumer_class(inputs, on_rewind, on_skip, hooks)
    app.transport.Consumer = consumer  # type: ignore[misc]
    app.transport.Producer = _idempotent(app.transport.Producer)  # type: ignore[misc]
    return app


def _idempotent(base: type[Any]) -> type[Any]:
    """Faust's aiokafka producer with ``enable_idempotence`` (Faust sets it only inside
    transactions, which Hito does not use)."""

    class IdempotentProducer(base):  # type: ignore[misc]
        def _settings_extra(self) -> Mapping[str, Any]:
            return {**super()._settings_extra(), "enable_idempotence": True}

    return IdempotentProducer
