"""Consumer lag per owned input partition, from Faust's monitor (``hito_consumer_lag``)."""

from __future__ import annotations

import faust

from hito.pipeline.metrics import PipelineMetrics


def report_consumer_lag(
    app: faust.App, metrics: PipelineMetrics, topics: set[str], reported: set[tuple[str, int]]
) -> None:
    """hito_consumer_lag per owned input partition: high-water mark minus committed offset
    (or, before this process committed anything there, minus the next offset to read)."""
    monitor = app.monitor
    now_owned: set[tuple[str, int]] = set()
    for tp in app.consumer.assignment():
        end = monitor.tp_end_offsets.get(tp)
        if tp.topic not in topics or end is None:
            continue
        position = monitor.tp_committed_offsets.get(tp)
        if position is None and tp in monitor.tp_read_offsets:
            position = monitor.tp_read_offsets[tp] + 1
        if position is None:
            continue
        now_owned.add((tp.topic, tp.partition))
        lag = max(0, end - position)
        metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)
    for topic, partition in reported - now_owned:  # moved to another worker: not ours
        metrics.consumer_lag.remove(topic, str(partition))
    reported.clear()
    reported.update(now_owned)
