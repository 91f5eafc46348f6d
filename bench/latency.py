"""End-to-end latency at a fixed rate: event produced -> its contribution visible in InfluxDB.

One worker on topics and a bucket of their own. The simulator's mix, made and signed
beforehand (:func:`pregenerate`: event times as they would be live), is sent at ``rate``
events/s, recording the due time of every event that must be counted. A poller asks
InfluxDB for the bucket's total every ``poll_s``; latencies come from the two cumulative
curves (:func:`bench.report.latencies_from_curves`). Observation times are when InfluxDB's
answer arrived, so a latency is never understated; the resolution is the poll interval plus
the worker's flush interval (0.25 s by default).

The sender (:func:`send_paced`) is aiokafka's producer, a batch per partition of the events
due every 2 ms: kafka-python's ``send`` cost 95 us of CPU an event (a script, 30,000 of these
events, linger 5 or 50 ms alike), 0.6 of a core at 6,400 events/s on a 2-core machine that
also runs the worker, Kafka and InfluxDB; this one 33-40 us. Devices are other machines.
(One full bench with the old sender, report ``20261206T024547Z-4a363c``, measured p99 2.06 s
at 6,490 events/s; runs of either sender outside a full bench gave 0.70-0.82 s at 6,400, so
the sender alone does not explain it: bench/README.md.) The report gives the sender's own
CPU per event (``sender_cpu_us_per_event``), its worst lateness (``sender_late_max_s``) and
the load when sending began (``load_1m_at_start``).

The first ``warmup_s`` of traffic are sent and counted but not measured: a worker that has
just joined its group, and a producer that has just fetched its metadata, answer the first
seconds late (2026-12-04, quiet machine, one worker at 1,000 to 4,600 events/s: the first
fifth's median 3.3-5.5 s, every later fifth's 0.6-1.0 s, at any rate), which is start-up, not
the latency of a running pipeline. The figures with the warm-up are reported beside them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from hito.bench.cpu import us_per_event
from hito.bench.dataset import Mix, topic_set, with_bucket
from hito.bench.hito_run import free_port, start_profiler, stop_profiler
from hito.bench.probe import InfluxTotal, proc_sample
from hito.bench.report import latencies_from_curves, percentile
from hito.credentials import client_config
from hito.device.simulate.fleet import VALID, Fleet, FleetPlan, SimMessage
from hito.devices import DeviceRegistry
from hito.settings import HitoSettings
from hito.stack.worker_process import WorkerProcess


def measure_latency(
    settings: HitoSettings,
    registry: DeviceRegistry,
    run: str,
    workdir: Path,
    *,
    rate: float,
    seconds: float,
    partitions: int,
    mix: Mix,
    poll_s: float = 0.1,
    warmup_s: float = 10.0,
    drain_timeout_s: float = 60.0,
    py_spy: Path | None = None,
) -> dict[str, Any]:
    live = with_bucket(topic_set(settings, f"{run}-lat", partitions), f"hito-bench-{run}-lat")
    count = max(1, int(rate * (warmup_s + seconds)))
    plan = FleetPlan(
        count=count,
        seed=mix.seed + 1,
        bad_fraction=mix.bad_fraction,
        duplicate_fraction=mix.duplicate_fraction,
        out_of_order_fraction=mix.out_of_order_fraction,
        raw_topics=dict(live.pipeline.raw_topics),
    )
    worker = WorkerProcess.start(
        live, f"hito-bench-{run}-lat", free_port(), workdir / "hito-latency.log", register=False
    )
    generated_at = time.monotonic()
    messages = pregenerate(registry, plan, rate)
    generate_s = time.monotonic() - generated_at
    probe = InfluxTotal(live, "hito")
    observed: list[tuple[float, int]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            total = probe.total()
            observed.append((time.time(), total))
            stop.wait(poll_s)

    poller = threading.Thread(target=poll, daemon=True)
    sent_at: list[float] = []
    sent = 0
    sender_cpu = sender_late_max = 0.0
    load_at_start = 0.0
    warm = 0  # valid events sent during the warm-up (counted, not measured)
    profiler: subprocess.Popen[bytes] | None = None
    profile_path = workdir / "hito-latency.pyspy.txt"
    try:
        worker.wait_ready(timeout_s=120)
        cpu0 = proc_sample(worker.proc.pid).cpu_s
        if py_spy is not None:
            profiler = start_profiler(worker.proc.pid, py_spy, profile_path)
        poller.start()
        load_at_start = os.getloadavg()[0]
        sender_cpu = time.thread_time()  # the sender and its producer share this thread
        paced = asyncio.run(send_paced(client_config(live.kafka, "device"), messages, rate))
        sender_cpu = time.thread_time() - sender_cpu
        # From the first hand-over to the last (the producer's start and stop left out).
        send_s, sender_late_max = paced.span_s, paced.late_max_s
        sent = len(paced.times)
        for i, (msg, at) in enumerate(zip(messages, paced.times, strict=True)):
            if msg.expected == VALID:
                sent_at.append(at)
                if i < rate * warmup_s:
                    warm += 1
        deadline = time.monotonic() + drain_timeout_s
        while not observed or observed[-1][1] < len(sent_at):
            if time.monotonic() > deadline or not worker.alive():
                break
            time.sleep(poll_s)
        sample = proc_sample(worker.proc.pid)
    finally:
        if profiler is not None:
            stop_profiler(profiler)
        stop.set()
        if poller.is_alive():
            poller.join(timeout=10)
        probe.close()
        worker.stop()
    every = latencies_from_curves(sent_at, list(observed))
    latencies = every[warm:]
    return {
        "rate_per_s": rate,
        "achieved_rate_per_s": round((sent - 1) / send_s, 1) if send_s > 0 else None,
        # The machine's 1-minute load when sending began: the run shares two cores with
        # Kafka and InfluxDB, so a busy machine reads as latency (bench/README.md).
        "load_1m_at_start": round(load_at_start, 2),
        "seconds": seconds,
        "warmup_s": warmup_s,
        "sent": sent,
        "to_count": len(sent_at),
        "measured": len(sent_at) - warm,
        "counted": len(every),
        "p50_s": _r(percentile(latencies, 50)),
        "p95_s": _r(percentile(latencies, 95)),
        "p99_s": _r(percentile(latencies, 99)),
        "max_s": _r(max(latencies, default=None)),
        # Growing from fifth to fifth: a backlog (the worker does not keep up with the rate).
        "p50_by_fifth_s": [
            _r(percentile(latencies[i * len(latencies) // 5 : (i + 1) * len(latencies) // 5], 50))
            for i in range(5)
        ],
        "with_warmup": {
            "p50_s": _r(percentile(every, 50)),
            "p99_s": _r(percentile(every, 99)),
            "max_s": _r(max(every, default=None)),
        },
        "poll_s": poll_s,
        "generated_before_s": round(generate_s, 1),
        "worker_cpu_us_per_event": _r(us_per_event(sample.cpu_s - cpu0, sent)),
        "sender_cpu_us_per_event": _r(us_per_event(sender_cpu, sent)),
        # Counted in the latencies (each from its due time), reported to see the sender's share.
        "sender_late_max_s": _r(sender_late_max),
        "worker_peak_rss_mb": round(sample.peak_rss_mb, 1),
        "bucket": live.influxdb.bucket,
        "profile": str(profile_path) if py_spy is not None else None,
        "method": "cumulative curves: k-th counted event visible at the first InfluxDB answer "
        "(time of arrival) showing >= k events; percentiles over the events sent after the "
        "warm-up",
    }


TICK_S = 0.002  # the sender's batching interval (kafka-python's linger was 5 ms)


@dataclass(frozen=True)
class Paced:
    times: list[float]  # each message's due time (wall clock): its latency starts there
    span_s: float  # from the first message handed to the producer to the last
    late_max_s: float  # the most a message was handed over after its due time


async def send_paced(config: dict[str, Any], messages: list[SimMessage], rate: float) -> Paced:
    """Sends the i-th message once ``i / rate`` seconds have passed since the start, as
    records of one batch per partition with every message due at that tick, partitioned by
    key as kafka-python and Kafka's Java client do (murmur2); returns once every batch was
    acknowledged (acks=all).

    A message's time is its due time, never later than its hand-over: aiokafka keeps one
    batch per partition waiting and one request in flight per broker, so a tick can wait
    for the broker's answer, and the messages that fall due meanwhile are handed over late.
    A device would have sent them at their time: the wait is part of their latency (a
    review found that times taken at the tick left it out)."""
    producer = AIOKafkaProducer(**config, acks="all", linger_ms=0)
    await producer.start()
    try:
        partitions = {
            topic: sorted(await producer.partitions_for(topic))
            for topic in {m.topic for m in messages}
        }
        partitioner = DefaultPartitioner()
        chosen: dict[tuple[str, bytes], tuple[str, int]] = {}
        acks: list[asyncio.Future[Any]] = []
        started, wall_started = time.monotonic(), time.time()
        late_max = last = 0.0
        i = 0
        while i < len(messages):
            tick = time.monotonic()
            due = min(len(messages), int((tick - started) * rate) + 1)
            late_max = max(late_max, tick - (started + i / rate))
            batches: dict[tuple[str, int], Any] = {}
            for j in range(i, due):
                msg = messages[j]
                where = chosen.get((msg.topic, msg.key))
                if where is None:  # murmur2 in Python: once per device and topic
                    every = partitions[msg.topic]
                    where = chosen[msg.topic, msg.key] = (
                        msg.topic,
                        partitioner(msg.key, every, every),
                    )
                batch = batches.get(where)
                if batch is None:
                    batch = batches[where] = producer.create_batch()
                if batch.append(key=msg.key, value=msg.value, timestamp=None) is None:
                    # Full: sent now, and the message goes into the partition's next batch.
                    acks.append(await producer.send_batch(batch, where[0], partition=where[1]))
                    batch = batches[where] = producer.create_batch()
                    batch.append(key=msg.key, value=msg.value, timestamp=None)
            for (topic, partition), batch in batches.items():
                acks.append(await producer.send_batch(batch, topic, partition=partition))
            last = time.monotonic() - started
            i = due
            # The next tick: in TICK_S, or when the next message is due if that is later.
            await asyncio.sleep(max(TICK_S, started + i / rate - time.monotonic()))
        await asyncio.gather(*acks)
        times = [wall_started + j / rate for j in range(len(messages))]
        return Paced(times, last, late_max)
    finally:
        await producer.stop()


def pregenerate(registry: DeviceRegistry, plan: FleetPlan, rate: float) -> list[SimMessage]:
    """The run's events, made and signed before it starts, each with the event time it would
    have had live (the i-th at ``i / rate`` seconds after the fleet's start).

    Made while sending (making and signing ~35 us an event, kafka-python's send the rest), at
    5,693 events/s (half of one worker's rate on 2026-12-04) the producer could send only
    5,000/s and took most of a core from the worker, which then fell behind (p50 7.4 s).
    Devices are other machines; the producer here only sends. Events are sent some seconds
    after their event time (the making and the worker's start), within the allowed lateness:
    every window is live."""
    started = datetime.now(UTC)
    offset_s = 0.0
    fleet = Fleet(registry, plan, started, clock=lambda: started + timedelta(seconds=offset_s))
    messages: list[SimMessage] = []
    for msg in fleet.messages():
        messages.append(msg)
        offset_s = len(messages) / rate
    return messages


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
