"""Topics, buckets and the data set of one bench run: created once, consumed by everyone.

A run gets raw/clean/DLQ topics of its own (``hito.bench-<run>.*``, created with their ACLs by
``ensure_topics``) and one InfluxDB bucket per contender (``hito-bench-<run>-<name>``, with
the bucket's scoped tokens). The simulator's mix is produced once, as the device user.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from influxdb_client import InfluxDBClient
from rich.console import Console

from hito.access.influx_tokens import ensure_bucket_tokens
from hito.access.topics import ensure_topics
from hito.credentials import client_config, tokens_path
from hito.device.simulate.fleet import DUPLICATE, VALID, Fleet, FleetPlan
from hito.device.simulate.runner import send_messages
from hito.devices import DeviceRegistry
from hito.schemas.registry import Source
from hito.settings import HitoSettings
from hito.settings.sections import PipelineSettings

# Replayed data is older than a live stream's: the bench raises the allowed lateness so that
# events produced minutes before a contender reads them still count (every contender alike).
BENCH_LATENESS_S = 6 * 3600


@dataclass(frozen=True)
class Mix:
    bad_fraction: float = 0.02
    duplicate_fraction: float = 0.02
    out_of_order_fraction: float = 0.01
    seed: int = 8

    def plan(
        self, count: int, raw_topics: Mapping[Source, str], daily_rhythm: bool = True
    ) -> FleetPlan:
        """The simulator's plan for ``count`` messages of this mix."""
        return FleetPlan(
            count=count,
            seed=self.seed,
            bad_fraction=self.bad_fraction,
            duplicate_fraction=self.duplicate_fraction,
            out_of_order_fraction=self.out_of_order_fraction,
            daily_rhythm=daily_rhythm,
            raw_topics=dict(raw_topics),
        )


@dataclass(frozen=True)
class Produced:
    total: int
    valid: int
    duplicates: int
    rejected: int
    seconds: float
    by_expected: dict[str, int]


def topic_set(settings: HitoSettings, name: str, partitions: int) -> HitoSettings:
    """Settings whose pipeline uses topics of its own, created here with their ACLs."""
    prefix = f"hito.bench-{name}"
    pipeline = PipelineSettings(
        **{
            **settings.pipeline.model_dump(),
            "raw_topics": {
                "checkpoint": f"{prefix}.raw.checkpoint",
                "sensor": f"{prefix}.raw.sensor",
                "drone": f"{prefix}.raw.drone",
            },
            "dlq_topic": f"{prefix}.dlq",
            "dlq_originals_topic": f"{prefix}.dlq.originals",
            "clean_topic_prefix": f"{prefix}.clean.",
            "topic_partitions": partitions,
            "allowed_lateness_s": BENCH_LATENESS_S,
        }
    )
    out = settings.model_copy(update={"pipeline": pipeline})
    ensure_topics(out)
    return out


def with_bucket(settings: HitoSettings, bucket: str) -> HitoSettings:
    """The settings writing to a new bucket (admin token), with its scoped tokens."""
    influx = settings.influxdb.model_copy(update={"bucket": bucket, "pipeline_token": None})
    with InfluxDBClient(
        url=influx.url, token=influx.admin_token().get_secret_value(), org=influx.org
    ) as client:
        api = client.buckets_api()
        if api.find_bucket_by_name(bucket) is None:
            api.create_bucket(bucket_name=bucket, org=influx.org)
    tokens = ensure_bucket_tokens(influx, tokens_path(settings))
    influx = influx.model_copy(update={"pipeline_token": tokens["pipeline"]})
    return settings.model_copy(update={"influxdb": influx})


def delete_bucket(settings: HitoSettings) -> None:
    i = settings.influxdb
    with InfluxDBClient(url=i.url, token=i.admin_token().get_secret_value(), org=i.org) as client:
        api = client.buckets_api()
        bucket = api.find_bucket_by_name(i.bucket)
        if bucket is not None:
            api.delete_bucket(bucket)


def produce(
    settings: HitoSettings,
    registry: DeviceRegistry,
    count: int,
    mix: Mix,
    console: Console | None = None,
) -> Produced:
    """The simulator's mix, ``count`` messages, event times at the production time."""
    fleet = Fleet(registry, mix.plan(count, settings.pipeline.raw_topics), datetime.now(UTC))
    started = time.monotonic()
    sent: Counter[str] = send_messages(
        fleet.messages(),
        producer_config=client_config(settings.kafka, "device"),
        total=count,
        console=console,
    )
    total = sum(sent.values())
    return Produced(
        total=total,
        valid=sent[VALID],
        duplicates=sent[DUPLICATE],
        rejected=total - sent[VALID] - sent[DUPLICATE],
        seconds=time.monotonic() - started,
        by_expected=dict(sent),
    )
