"""The device SDK against the real broker, and `hito dlq inspect|replay` on a real DLQ."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hito.cli import app
from hito.credentials import client_config, user_for
from hito.device.sdk import DeviceClient
from hito.device.simulate.fleet import Fleet, FleetPlan
from hito.device.simulate.runner import send_messages
from hito.devices import Device, DeviceRegistry
from hito.ops.dlq import read_all, reason_filter, replay
from hito.runtime import Runtime
from hito.settings import HitoSettings
from tests.integration.pipeline.conftest import running_worker, wait_until

SENSOR = {
    "sensor_type": "ground",
    "lat": -18.35,
    "lon": -70.38,
    "detections": 1,
    "battery_pct": 88.5,
}


SENSOR_DEVICE = "sensor-concordia-01"


def sensor_client(runtime: Runtime, state_dir: Path, min_seq: int = 0) -> DeviceClient:
    """The SDK of one sensor of the test registry, on the real broker as the device user."""
    settings = runtime.settings
    device = runtime.registry.get(SENSOR_DEVICE)
    assert device is not None
    user = user_for(settings.kafka, "device")
    return DeviceClient(
        device_id=device.device_id,
        site=device.site,
        key=device.key,
        state_dir=state_dir,
        bootstrap=settings.kafka.bootstrap,
        username=user.name,
        password=user.password.get_secret_value(),
        topic_for_source=dict(settings.pipeline.raw_topics),
        min_seq=min_seq,
    )


def test_sdk_keeps_seq_across_restarts_and_retries_are_duplicates(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    isolated, registry = isolated_runtime.settings, isolated_runtime.registry
    device = registry.get(SENSOR_DEVICE)
    assert device is not None
    state_dir = tmp_path / "device-state"
    topics = dict(isolated.pipeline.raw_topics)

    def client() -> DeviceClient:
        return sensor_client(isolated_runtime, state_dir)

    async def scenario() -> dict[str, float]:
        async with running_worker(isolated_runtime) as worker:
            first = client()
            for _ in range(5):
                first.send("sensor.reading/1", SENSOR, event_time=datetime.now(UTC))
            await asyncio.to_thread(first.flush, 60)
            first.close()
            second = client()  # a restarted device continues at seq 5
            assert second.send("sensor.reading/1", SENSOR, event_time=datetime.now(UTC)) == 5
            await asyncio.to_thread(second.flush, 60)
            second.close()
            # The same bytes again, as the outbox re-sends what it had not recorded as
            # acknowledged when it crashed: a duplicate.
            retry = read_raw(isolated, topics["sensor"])[-1]
            resend(isolated, topics["sensor"], device.device_id, retry)
            await wait_until(lambda: worker.metrics.total_events() >= 7, 60, "7 events")
            await asyncio.sleep(1)
            return worker.metrics.events_by_outcome()

    assert asyncio.run(scenario()) == {"accepted": 6, "duplicate": 1}


def test_a_device_below_its_mark_comes_back_with_the_min_seq_devices_seq_shows(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    """The field case of the DeviceSilent runbook: a device once sends a number far ahead (a
    corrupt counter: ``min_seq`` stands in for it), then its state folder is lost and its SDK
    numbers from 0 again. Every event is stale, none in the DLQ. `hito devices seq` reads its
    mark back from the real changelog; restarted with that ``min_seq``, it is counted again."""
    device = isolated_runtime.registry.get(SENSOR_DEVICE)
    assert device is not None
    app_id = f"hito-test-{uuid.uuid4().hex[:8]}"

    def client(state_dir: Path, min_seq: int = 0) -> DeviceClient:
        return sensor_client(isolated_runtime, state_dir, min_seq)

    async def send(sender: DeviceClient, count: int) -> list[int]:
        seqs = [
            sender.send("sensor.reading/1", SENSOR, event_time=datetime.now(UTC))
            for _ in range(count)
        ]
        await asyncio.to_thread(sender.flush, 60)
        sender.close()
        return seqs

    async def scenario() -> tuple[dict[str, float], dict[str, object], dict[str, float]]:
        async with running_worker(isolated_runtime, app_id=app_id) as worker:
            assert await send(client(tmp_path / "card"), 3) == [0, 1, 2]
            assert await send(client(tmp_path / "card", min_seq=2**40), 1) == [2**40]
            assert await send(client(tmp_path / "new-card"), 4) == [0, 1, 2, 3]
            await wait_until(lambda: worker.metrics.total_events() >= 8, 60, "8 events")
            await asyncio.sleep(1)  # the batch's changelog records
            silenced = worker.metrics.events_by_outcome()
            args = ["devices", "seq", device.device_id, "--app-id", app_id, "--json"]
            shown = await asyncio.to_thread(CliRunner().invoke, app, args)
            assert shown.exit_code == 0, shown.output
            [mark] = json.loads(shown.output)
            back = client(tmp_path / "new-card", min_seq=int(mark["min_seq"]))
            assert await send(back, 2) == [2**40 + 1, 2**40 + 2]
            await wait_until(lambda: worker.metrics.total_events() >= 10, 60, "10 events")
            await asyncio.sleep(1)
            return silenced, mark, worker.metrics.events_by_outcome()

    silenced, mark, after = asyncio.run(scenario())
    assert silenced == {"accepted": 4, "stale": 4}
    assert mark["min_seq"] == 2**40 + 1
    assert after == {"accepted": 6, "stale": 4}


def resend(settings: HitoSettings, topic: str, device_id: str, value: bytes) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**client_config(settings.kafka, "device"), acks="all")
    try:
        producer.send(topic, key=device_id.encode(), value=value).get(timeout=30)
    finally:
        producer.close()


def read_raw(settings: HitoSettings, topic: str) -> list[bytes]:
    from kafka import KafkaConsumer, TopicPartition

    # Raw data: only the pipeline (and the admin) may read it; the test looks as the admin.
    consumer = KafkaConsumer(**client_config(settings.kafka, "admin"), enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[bytes] = []
        for batch in consumer.poll(timeout_ms=5000, max_records=1000).values():
            out.extend(m.value for m in batch)
        return out
    finally:
        consumer.close()


def _write_registry(devices_file: Path, keys_file: Path, devices: list[Device]) -> None:
    devices_file.write_text(
        yaml.safe_dump(
            {"devices": {d.device_id: {"site": d.site, "kind": d.kind} for d in devices}}
        )
    )
    keys_file.write_text(yaml.safe_dump({"keys": {d.device_id: d.key.hex() for d in devices}}))


def test_dlq_inspect_redacts_and_replay_resubmits_after_a_fix(
    isolated_runtime: Runtime, tmp_path: Path
) -> None:
    isolated, registry = isolated_runtime.settings, isolated_runtime.registry
    # A device installed before it was registered: its events land in the DLQ.
    newcomer = registry.get("drone-gs-pe-01")
    assert newcomer is not None
    everyone = list(registry.devices.values())
    devices_file, keys_file = tmp_path / "devices.yaml", tmp_path / "keys.yaml"
    _write_registry(devices_file, keys_file, [d for d in everyone if d != newcomer])
    pipeline = isolated.pipeline.model_copy(
        update={"devices_file": devices_file, "device_keys_file": keys_file}
    )
    partial = DeviceRegistry.load(devices_file, keys_file)
    assert newcomer.device_id not in partial and len(partial) == len(everyone) - 1
    plan = FleetPlan(
        count=300, seed=21, bad_fraction=0.1, raw_topics=dict(isolated.pipeline.raw_topics)
    )
    messages = list(Fleet(registry, plan, datetime.now(UTC)).messages())
    from_newcomer = sum(
        1 for m in messages if m.device_id == newcomer.device_id and m.expected == "valid"
    )
    assert from_newcomer > 0

    async def scenario() -> dict[str, float]:
        async with running_worker(
            dataclasses.replace(
                isolated_runtime,
                settings=isolated.model_copy(update={"pipeline": pipeline}),
                registry=partial,
            )
        ) as worker:
            send_messages(
                messages,
                producer_config=client_config(isolated.kafka, "device"),
                total=len(messages),
            )
            await wait_until(
                lambda: worker.metrics.total_events() >= len(messages), 60, "first pass"
            )
            before = worker.metrics.events_by_outcome()["accepted"]
            # The fix: the device is registered, and the running worker re-reads the registry
            # (it looks every registry_reload_s, on the next batch after that).
            _write_registry(devices_file, keys_file, everyone)
            await asyncio.sleep(pipeline.registry_reload_s + 1)
            dlq_before = len(list(read_all(isolated)))
            replayed = await asyncio.to_thread(replay, isolated, reason_filter(["unknown_device"]))
            assert replayed.cut == 0
            sent = replayed.sent
            total = len(messages) + sent
            await wait_until(lambda: worker.metrics.total_events() >= total, 60, "replay")
            assert len(list(read_all(isolated))) == dlq_before + sent - from_newcomer
            return {"sent": sent, "gained": worker.metrics.events_by_outcome()["accepted"] - before}

    result = asyncio.run(scenario())
    # Replayed: the newcomer's events and the simulator's unregistered-device events; only the
    # newcomer's are accepted now, the others are rejected again by the same validation.
    assert result["gained"] == from_newcomer
    assert result["sent"] > from_newcomer

    env = {**os.environ, "HITO_PIPELINE__DLQ_TOPIC": isolated.pipeline.dlq_topic, "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, "-m", "hito.cli", "dlq", "inspect", "--samples", "50"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    # Which reasons a 300-message fleet produces depends on the hour (device weights follow
    # the crossing's daily rhythm): compare with what is really on the DLQ.
    on_dlq = Counter(e.record.reason.value for e in read_all(isolated))
    table_rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in out.stdout.splitlines()
        if line.count("│") == 3
    }
    assert table_rows == {
        **{r: str(n) for r, n in on_dlq.items()},
        "total": str(sum(on_dlq.values())),
    }
    # The same for scripts: one JSON document with the counts and the redacted samples.
    as_json = subprocess.run(
        [sys.executable, "-m", "hito.cli", "dlq", "inspect", "--samples", "2", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert (doc["topic"], doc["total"]) == (isolated.pipeline.dlq_topic, sum(on_dlq.values()))
    assert doc["by_reason"] == dict(sorted(on_dlq.items()))
    assert Counter(s["reason"] for s in doc["samples"]) == {r: min(n, 2) for r, n in on_dlq.items()}
    for m in messages:  # no original bytes, hence no document numbers, in the output
        if m.expected != "valid" and b"document_number" in m.value:
            number = m.value.split(b'"document_number":"')[1].split(b'"')[0].decode()
            assert number not in out.stdout and number not in as_json.stdout
