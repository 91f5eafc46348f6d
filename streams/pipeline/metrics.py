"""Worker metrics (prometheus-client), names as in SPEC.md. One registry per worker: no globals."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hito.pipeline.device_metrics import DeviceActivity


class LabelledChildren:
    """A labelled metric's children, cached by label values: ``labels()`` builds and looks up
    a key on every call, which adds up when it is called for every event."""

    def __init__(self, metric: Counter) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Counter] = {}

    def __call__(self, *values: str) -> Counter:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


@dataclass
class PipelineMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events = Counter(
            "hito_events",
            "Raw events by source and outcome (accepted, rejected, duplicate, stale)",
            ["source", "outcome"],
            registry=r,
        )
        self.dlq = Counter(
            "hito_dlq", "Events sent to the DLQ by reason", ["reason", "stage"], registry=r
        )
        self.dlq_refused = Counter(
            "hito_dlq_refused",
            "Dead letters Kafka refused for good (counted here: there is nowhere else to send "
            "them)",
            ["topic"],
            registry=r,
        )
        self.send_refused = Counter(
            "hito_send_refused",
            "Records Kafka refused for good (too large, invalid); their events are dead-lettered",
            ["topic"],
            registry=r,
        )
        self.seq_gaps = Counter(
            "hito_seq_gaps",
            "Sequence numbers skipped when a higher one arrived (lost unless they arrive later)",
            ["site"],
            registry=r,
        )
        self.seq_gap_fills = Counter(
            "hito_seq_gap_fills",
            "Skipped sequence numbers that arrived later",
            ["site"],
            registry=r,
        )
        # Per-device liveness and loss: counts per site, per-device series bounded.
        self.devices = DeviceActivity(r)
        self.dedup_state_resets = Counter(
            "hito_dedup_state_resets",
            "Device dedup states that could not be read and were started afresh",
            registry=r,
        )
        self.consumer_rewinds = Counter(
            "hito_consumer_rewinds",
            "Times the consumer sought back to re-read records fetched but not delivered (input "
            "topics after a rebalance; changelogs fetched while flow was stopped, or of a "
            "stalled table recovery)",
            ["topic"],
            registry=r,
        )
        self.consumer_skips = Counter(
            "hito_consumer_skips",
            "Records Faust acked without an agent handling them (a rebalance or a stop): not "
            "committed, so they are read again",
            ["topic"],
            registry=r,
        )
        self.lane_batch_failures = Counter(
            "hito_lane_batch_failures",
            "Lane batches whose handling failed (an unexpected error): the partition is read "
            "again from the batch after a back-off, nothing after it handled meanwhile",
            ["agent"],
            registry=r,
        )
        self.lane_partitions_failing = Gauge(
            "hito_lane_partitions_failing",
            "Input partitions whose last batch failed and has not been handled since (their "
            "events wait: LanePartitionFailing)",
            ["agent"],
            registry=r,
        )
        self.crossings = Counter(
            "hito_crossings",
            "Crossings counted (each event once, whatever the redelivery)",
            ["site", "direction"],
            registry=r,
        )
        self.surge_score = Gauge(
            "hito_surge_score",
            "Surge score of the last completed minute (0 below the volume gate or without history)",
            ["site", "direction"],
            registry=r,
        )
        self.surge_observed = Gauge(
            "hito_surge_observed",
            "Crossings in the last completed minute",
            ["site", "direction"],
            registry=r,
        )
        self.surge_baseline = Gauge(
            "hito_surge_baseline",
            "Crossings per minute expected for the last completed minute (seasonal baseline)",
            ["site", "direction"],
            registry=r,
        )
        self.surge_updated = Gauge(
            "hito_surge_updated_seconds",
            "Unix time the surge score of a site and direction was last computed",
            ["site", "direction"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "hito_consumer_lag",
            "Records in the partition not processed yet (high-water mark minus position)",
            ["topic", "partition"],
            registry=r,
        )
        self.sink_points = Counter(
            "hito_sink_points",
            "Points written to InfluxDB (rewrites of a window count again)",
            registry=r,
        )
        self.sink_errors = Counter(
            "hito_sink_errors",
            "Failed InfluxDB writes by kind (retryable, permanent)",
            ["kind"],
            registry=r,
        )
        self.sink_write_seconds = Histogram(
            "hito_sink_write_seconds",
            "Duration of one InfluxDB batch write, seconds",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.sink_batch_points = Histogram(
            "hito_sink_batch_points",
            "Points per InfluxDB write",
            buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000),
            registry=r,
        )
        self.late_events = Counter(
            "hito_late_events",
            "Events older than the backfill horizon (sent to the DLQ as late_beyond_window)",
            ["site"],
            registry=r,
        )
        self.backfill_events = Counter(
            "hito_backfill_events",
            "Events counted into a window closed beyond the allowed lateness: revisions of "
            "history (a device back from an outage, a flight log uploaded after landing)",
            ["site", "source"],
            registry=r,
        )
        self.pseudonyms_withheld = Counter(
            "hito_pseudonyms_withheld",
            "Events a purpose could not pseudonymise: the epoch's key was already destroyed",
            ["purpose"],
            registry=r,
        )
        self.key_first_epoch = Gauge(
            "hito_pseudonym_key_first_epoch",
            "The oldest epoch whose pseudonym key this worker still holds, per purpose (every "
            "earlier key is destroyed)",
            ["purpose"],
            registry=r,
        )
        self.repeat_days_published = Counter(
            "hito_repeat_days_published",
            "Days of repeat_crossings published once closed (per site), their per-person state "
            "then deleted",
            ["site"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "hito_stage_seconds",
            "Time a pipeline stage spends per event, seconds (one observation per batch: the "
            "batch's mean)",
            ["stage"],
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05),
            registry=r,
        )

    def total_events(self) -> float:
        """All outcomes summed (used by tests and `hito status` to see a run drain)."""
        return sum(
            s.value
            for m in self.events.collect()
            for s in m.samples
            if s.name == "hito_events_total"
        )

    def events_by_outcome(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self.events.collect():
            for s in m.samples:
                if s.name == "hito_events_total":
                    out[s.labels["outcome"]] = out.get(s.labels["outcome"], 0.0) + s.value
        return out

    def dlq_by_reason(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self.dlq.collect():
            for s in m.samples:
                if s.name == "hito_dlq_total":
                    out[s.labels["reason"]] = out.get(s.labels["reason"], 0.0) + s.value
        return out
