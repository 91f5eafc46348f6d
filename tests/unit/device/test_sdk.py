"""DeviceClient: send is durable and returns at once; the sender forwards in order whenever
the broker is reachable; a restart resumes. Against a fake broker (tests/unit/device/fakes.py);
tests/integration/pipeline/test_store_and_forward.py does it against Kafka and a worker."""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hito.device.outbox import OutboxFull, OutboxLimits
from hito.device.sdk import DeliveryTimeout, DeviceClient, InvalidEvent, Outgoing, build_event
from hito.device.sender import SenderConfig
from tests.unit.device.fakes import FakeBroker

SENSOR = {"sensor_type": "ground", "lat": -18.35, "lon": -70.38, "detections": 1, "battery_pct": 9}
DEVICE, SITE, KEY = "sensor-concordia-01", "sector-concordia", b"k" * 32
FAST = SenderConfig(backoff_min_s=0.01, backoff_max_s=0.05, idle_wake_s=0.05)


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def make_client(tmp_path: Path, broker: FakeBroker) -> Iterator[Callable[..., DeviceClient]]:
    clients: list[DeviceClient] = []

    def make(**kwargs: object) -> DeviceClient:
        options: dict[str, object] = {
            "device_id": DEVICE,
            "site": SITE,
            "key": KEY,
            "state_dir": tmp_path / "state",
            "producer_factory": broker.connect,
            "sender": FAST,
            "topic_for_source": {"sensor": "raw.sensor"},
        }
        client = DeviceClient(**(options | kwargs))  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close(timeout=1)


def send(client: DeviceClient, n: int) -> list[int]:
    return [client.send("sensor.reading/1", SENSOR, event_time=datetime.now(UTC)) for _ in range(n)]


def wait_for(done: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_events_reach_the_broker_in_order_keyed_by_device(
    make_client: Callable[..., DeviceClient], broker: FakeBroker
) -> None:
    client = make_client()
    assert send(client, 20) == list(range(20))
    client.flush(timeout=10)
    assert broker.seqs() == list(range(20))
    assert {(topic, key) for topic, key, _ in broker.acked} == {("raw.sensor", DEVICE.encode())}
    assert client.status().outbox.pending_events == 0


def test_offline_the_device_keeps_accepting_and_drains_in_order_when_back(
    make_client: Callable[..., DeviceClient], broker: FakeBroker
) -> None:
    broker.reachable = False
    client = make_client()
    assert send(client, 50) == list(range(50))  # send returns: the events are on disk
    wait_for(lambda: broker.connects >= 3)  # the sender keeps trying, backing off
    status = client.status()
    assert status.outbox.pending_events == 50 and not status.sender.connected
    assert status.sender.last_error == "Unreachable: broker unreachable"
    with pytest.raises(DeliveryTimeout, match="50 events still wait in the outbox"):
        client.flush(timeout=0.2)
    broker.reachable = True
    client.flush(timeout=10)
    assert broker.seqs() == list(range(50))


def test_a_batch_failing_half_way_is_resent_from_the_first_unacknowledged(
    make_client: Callable[..., DeviceClient], broker: FakeBroker
) -> None:
    broker.reachable = False
    client = make_client()
    send(client, 10)
    broker.fail_next_from = 4  # 4 acknowledged, the other 6 time out
    broker.reachable = True
    client.flush(timeout=10)
    assert broker.seqs() == list(range(10))  # nothing lost, nothing acknowledged twice


def test_a_restart_resumes_the_outbox(
    make_client: Callable[..., DeviceClient], broker: FakeBroker
) -> None:
    broker.reachable = False
    first = make_client()
    send(first, 5)
    first.close(timeout=1)
    broker.reachable = True
    again = make_client()
    assert send(again, 2) == [5, 6]  # seq continues
    again.flush(timeout=10)
    assert broker.seqs() == list(range(7))


def test_send_many_is_all_or_nothing_with_one_fsync(
    make_client: Callable[..., DeviceClient], broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    client = make_client(limits=OutboxLimits(max_bytes=20_000))
    calls: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        calls.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(10)]
    seqs = client.send_many(Outgoing("sensor.reading/1", SENSOR, now, i) for i in ids)
    assert seqs == list(range(10))
    assert len([path for path in calls if path.endswith(".seg")]) == 1
    client.flush(timeout=10)
    assert [e["event_id"] for _, _, e in broker.acked] == [str(i) for i in ids]


def test_a_full_outbox_raises_and_keeps_everything(
    make_client: Callable[..., DeviceClient], broker: FakeBroker
) -> None:
    broker.reachable = False
    client = make_client(limits=OutboxLimits(max_bytes=4000))
    accepted = []
    with pytest.raises(OutboxFull, match="nothing was dropped"):
        while True:
            accepted += send(client, 1)
    assert client.status().outbox.pending_events == len(accepted) > 3
    broker.reachable = True
    client.flush(timeout=10)
    assert broker.seqs() == accepted


def test_a_bad_event_is_refused_before_it_takes_a_seq(
    make_client: Callable[..., DeviceClient],
) -> None:
    client = make_client()
    with pytest.raises(InvalidEvent, match=r"payload\.detections: greater_than_equal"):
        client.send("sensor.reading/1", {**SENSOR, "detections": -1}, event_time=datetime.now(UTC))
    assert send(client, 1) == [0]


CROSSING = {
    "direction": "entry",
    "mode": "car",
    "lane": "L1",
    "document_type": "passport",
    "document_number": "X1234567",
    "nationality": "CHL",
    "birth_year": 1980,
    "outcome": "admitted",
    "processing_seconds": 40.0,
}


def test_a_refused_event_names_fields_never_their_values() -> None:
    """The error (and its traceback) ends up in the device's logs: no personal data in it."""
    bad = {**CROSSING, "document_number": "ab-123456789-zz", "birth_year": "1980", "P1234567": 1}
    with pytest.raises(InvalidEvent) as caught:
        build_event(
            schema="checkpoint.crossing/1",
            device_id="ckpt-chacalluta-01",
            site="chacalluta",
            seq=0,
            event_time=datetime.now(UTC),
            payload=bad,
            key=KEY,
        )
    logged = "".join(traceback.format_exception(caught.value))
    for value in ("ab-123456789-zz", "1980", "P1234567"):
        assert value not in logged
    assert "payload.document_number: string_pattern_mismatch" in str(caught.value)
    assert "payload.birth_year: int_type" in str(caught.value)
    assert "payload.<unknown>: extra_forbidden" in str(caught.value)


def test_a_partial_topic_map_keeps_the_defaults_for_the_other_sources(
    make_client: Callable[..., DeviceClient], broker: FakeBroker
) -> None:
    client = make_client(topic_for_source={"sensor": "site-a.raw.sensor"})
    client.send("sensor.reading/1", SENSOR, event_time=datetime.now(UTC))
    client.send("checkpoint.crossing/1", CROSSING, event_time=datetime.now(UTC))
    client.flush(timeout=5)
    assert [topic for topic, _, _ in broker.acked] == ["site-a.raw.sensor", "hito.raw.checkpoint"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"topic_for_source": {"sensors": "raw"}}, "'sensors' is not one of checkpoint"),
        ({"topic_for_source": {"sensor": ""}}, "the topic of sensor is not a topic name"),
        ({"producer_config": {"bootstrap_servers": "b:9092", "acks": 1}}, "may not set acks"),
        (
            {"producer_config": {"enable_idempotence": False}},
            "may not set enable_idempotence",
        ),
        (
            {"producer_config": {"bootstrap_servers": "b:9092", "lingerms": 5}},
            "kafka-python has no setting lingerms",
        ),
    ],
)
def test_bad_topics_or_producer_settings_are_refused_at_construction(
    make_client: Callable[..., DeviceClient],
    tmp_path: Path,
    options: dict[str, object],
    message: str,
) -> None:
    if "producer_config" in options:
        options = {**options, "producer_factory": None}
    with pytest.raises(ValueError, match=message):
        make_client(**options)
    assert not (tmp_path / "state").exists()  # refused before anything was stored


def test_a_state_folder_belongs_to_one_device(
    make_client: Callable[..., DeviceClient], tmp_path: Path
) -> None:
    make_client().close()
    with pytest.raises(ValueError, match="holds the state of another device"):
        make_client(device_id="sensor-concordia-02")


def test_min_seq_moves_a_device_from_the_old_sdk_past_its_numbers(
    make_client: Callable[..., DeviceClient],
) -> None:
    client = make_client(min_seq=1200)
    assert send(client, 2) == [1200, 1201]


@pytest.mark.parametrize("min_seq", [-1, 2**53])
def test_min_seq_outside_what_a_device_may_send_is_refused(
    make_client: Callable[..., DeviceClient], tmp_path: Path, min_seq: int
) -> None:
    """2^53 is what `hito devices seq` would ask of a device whose mark is the largest seq:
    every event would then break the schema, so it is refused here, before anything."""
    with pytest.raises(ValueError, match="min_seq is from 0 to"):
        make_client(min_seq=min_seq)
    assert not (tmp_path / "state").exists()


def test_the_sender_expires_what_waited_too_long_and_says_so(
    make_client: Callable[..., DeviceClient],
    broker: FakeBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker.reachable = False
    now = [time.time()]
    client = make_client(
        limits=OutboxLimits(max_age_s=3600),
        clock=lambda: now[0],
        sender=SenderConfig(backoff_min_s=0.01, backoff_max_s=0.02, expire_every_s=0.01),
    )
    send(client, 3)
    now[0] += 3601  # an hour and a second offline
    wait_for(lambda: client.status().outbox.expired.events == 3)
    assert client.status().outbox.pending_events == 0
    assert "3 events waited longer than 1 h and expired (seq 0 to 2)" in caplog.text
    broker.reachable = True
    later = datetime.fromtimestamp(now[0], UTC)
    assert client.send("sensor.reading/1", SENSOR, event_time=later) == 3  # 0..2 stay used
    client.flush(timeout=10)
    assert broker.seqs() == [3]


def test_a_failing_disk_does_not_stop_the_sender(
    make_client: Callable[..., DeviceClient],
    broker: FakeBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hito.device import durable

    real = durable.write_json_atomic
    # Twice: the first is absorbed by giving the outbox's reserve up (hito.device.reserve),
    # the write made again fails too.
    failures = [OSError(28, "No space left on device"), OSError(28, "No space left on device")]

    def flaky(path: Path, value: object) -> None:
        if path.name == "acked.json" and failures:
            raise failures.pop()
        real(path, value)

    monkeypatch.setattr(durable, "write_json_atomic", flaky)
    client = make_client()
    now = datetime.now(UTC)
    client.send_many(Outgoing("sensor.reading/1", SENSOR, now) for _ in range(5))
    client.flush(timeout=10)
    # The broker took the batch, the outbox could not record it: sent again, same seqs (the
    # pipeline counts the copies as duplicates), and the sender lives on.
    assert broker.seqs() == [0, 1, 2, 3, 4] * 2
    assert "No space left on device" in (client.status().sender.last_error or "")
    send(client, 1)
    client.flush(timeout=10)
    assert broker.seqs()[-1] == 5
