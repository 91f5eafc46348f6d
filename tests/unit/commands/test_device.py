"""`hito device sample-log|status|upload-log` without a broker: the sample is a valid
40-minute log, status reads what waits in an outbox (and what recovery found), and upload-log
refuses a device that is not a drone ground station. (Against Kafka:
tests/integration/pipeline/test_store_and_forward.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hito.cli import app
from hito.device.flightlog import read_flight_log
from hito.device.records import Record, encode
from hito.device.sdk import DeviceClient
from tests.unit.device.fakes import FakeBroker

SENSOR = {"sensor_type": "ground", "lat": -18.35, "lon": -70.38, "detections": 1, "battery_pct": 9}


def run(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["device", *args])
    return result.exit_code, result.output + str(result.exception or "")


def test_sample_log_is_a_valid_forty_minute_flight(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "f.jsonl"
    code, text = run(monkeypatch, "sample-log", str(out), "--landed-ago", "3600")
    assert code == 0, text
    fixes = read_flight_log(out)
    assert len(fixes) == 481 and "481 fixes" in text
    assert (fixes[-1].fix_time - fixes[0].fix_time).total_seconds() == 2400
    landed_ago = (datetime.now(UTC) - fixes[-1].fix_time).total_seconds()
    assert 3599 <= landed_ago < 3700
    assert {f.flight_id for f in fixes} == {fixes[0].flight_id}


def test_status_shows_what_waits_and_what_recovery_found(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broker = FakeBroker()
    broker.reachable = False
    state = tmp_path / "state"
    client = DeviceClient(
        device_id="sensor-concordia-01",
        site="sector-concordia",
        key=b"k" * 32,
        state_dir=state,
        producer_factory=broker.connect,
    )
    for _ in range(3):
        client.send("sensor.reading/1", SENSOR, event_time=datetime.now(UTC))
    code, text = run(monkeypatch, "status", "--device", "x", "--state-dir", str(state))
    assert code != 0 and "in use by another process" in text  # the device runs: hands off
    client.close()
    (segment,) = (state / "outbox").glob("*.seg")
    with segment.open("ab") as f:
        f.write(encode(Record(3, 0, 0, "sensor", b"{}"))[:10])
    code, text = run(monkeypatch, "status", "--device", "x", "--state-dir", str(state))
    assert code == 0, text
    assert "waiting: 3 events" in text and "next seq: 3" in text
    assert "cut a torn tail of 10 bytes" in text


def test_upload_log_is_for_drone_ground_stations(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "f.jsonl"
    assert run(monkeypatch, "sample-log", str(log))[0] == 0
    args = ["upload-log", str(log), "--state-dir", str(tmp_path / "s")]
    code, text = run(monkeypatch, *args, "--device", "sensor-concordia-01")
    assert code != 0 and "is a sensor, not a drone ground station" in text
    code, text = run(monkeypatch, *args, "--device", "nobody-01")
    assert code != 0 and "not an active registered device" in text
    assert not (tmp_path / "s").exists()


def test_upload_log_starts_a_new_state_folder_only_when_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A new folder numbers the fixes from seq 0 again: below what a station that sent
    already used, dropped by the pipeline as stale or duplicate while the command said
    "delivered". So the station's own folder, or --new-state."""
    broker = FakeBroker()
    monkeypatch.setattr("hito.device.sdk.kafka_producer", lambda config: broker.connect())
    monkeypatch.setenv("HITO_STATE_DIR", str(tmp_path / "hito"))
    log = tmp_path / "f.jsonl"
    assert run(monkeypatch, "sample-log", str(log))[0] == 0
    upload = ["upload-log", str(log), "--device", "drone-gs-cl-01", "--timeout", "10"]
    state = tmp_path / "station"
    for where in ([], ["--state-dir", str(state)]):
        code, text = run(monkeypatch, *upload, *where)
        flat = " ".join(text.replace("│", " ").split())  # rich wraps the message in a box
        assert code != 0 and "holds no device state" in flat and "add --new-state" in flat
    assert not (tmp_path / "hito").exists() and not state.exists()
    assert broker.acked == []
    code, text = run(monkeypatch, *upload, "--state-dir", str(state), "--new-state")
    assert code == 0, text
    assert "481 queued now (seq 0 to 480)" in text and "delivered" in text
    code, text = run(monkeypatch, *upload, "--state-dir", str(state))  # its own folder: fine
    assert code == 0, text
    assert "none new, 481 queued before" in text
    assert [e["seq"] for _, _, e in broker.acked] == list(range(481))
