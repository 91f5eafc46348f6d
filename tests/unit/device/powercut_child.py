"""A device process for the power-cut tests (tests/unit/device/test_power_cut.py): sends
events through the SDK to a file standing in for the broker, under the power-cut model.

``--sdk legacy`` runs the seq handling of the SDK before the outbox (its ``_load_seq`` and
``_store_seq``, verbatim): the test shows that the model catches what that SDK does wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from tests.unit.device import powercut

SENSOR = {"sensor_type": "ground", "lat": -18.35, "lon": -70.38, "detections": 1, "battery_pct": 9}
DEVICE_ID, SITE, KEY = "sensor-concordia-01", "sector-concordia", b"k" * 32


def say(line: str) -> None:
    """A line for the test, which reads our stdout (flushed: we may be killed any moment)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _Done:
    def get(self, timeout: float | None = None) -> None:
        return None


class FileBroker:
    """Appends each value to a file (outside the device's folder: the broker keeps what it
    acknowledged); with ``hang_after`` it stops answering after that many sends."""

    def __init__(self, path: Path, hang_after: int | None) -> None:
        self.path = path
        self.hang_after = hang_after
        self.count = 0

    def send(self, topic: str, *, key: bytes, value: bytes) -> _Done:
        if self.hang_after is not None and self.count >= self.hang_after:
            say("BROKER-HANG")
            time.sleep(3600)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, value + b"\n")
        finally:
            os.close(fd)
        self.count += 1
        return _Done()

    def flush(self, timeout: float | None = None) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None


# -- the SDK before the outbox (streams/device/sdk.py at d5a7b6f), its seq handling verbatim --
def _load_seq(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    return int(path.read_text().strip() or 0)


def _store_seq(path: Path | None, value: int) -> None:
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{value}\n")
    tmp.replace(path)


def legacy_send(state: Path, broker: FileBroker, count: int) -> None:
    from hito.device.sdk import build_event, encode

    seq_file = state / "seq"
    next_seq = _load_seq(seq_file)
    for _ in range(count):
        seq, event_id = next_seq, uuid.uuid4()
        env = build_event(
            schema="sensor.reading/1",
            device_id=DEVICE_ID,
            site=SITE,
            seq=seq,
            event_time=datetime.now(UTC),
            payload=SENSOR,
            key=KEY,
            event_id=event_id,
        )
        next_seq = seq + 1
        _store_seq(seq_file, next_seq)
        broker.send("raw", key=DEVICE_ID.encode(), value=encode(env))
        say(f"ACCEPTED {seq} {event_id}")


def outbox_send(state: Path, broker: FileBroker, count: int, drain: bool, batch: int) -> None:
    from hito.device.sdk import DeviceClient, Outgoing
    from hito.device.sender import SenderConfig

    client = DeviceClient(
        device_id=DEVICE_ID,
        site=SITE,
        key=KEY,
        state_dir=state,
        producer_factory=lambda: broker,
        sender=SenderConfig(backoff_min_s=0.05),
    )
    for problem in client.status().outbox.problems:
        say(f"PROBLEM {problem}")
    for first in range(0, count, batch):
        ids = [uuid.uuid4() for _ in range(min(batch, count - first))]
        now = datetime.now(UTC)
        # One send_many per batch: its events are accepted when it returns, all together.
        seqs = client.send_many(Outgoing("sensor.reading/1", SENSOR, now, i) for i in ids)
        for seq, event_id in zip(seqs, ids, strict=True):
            say(f"ACCEPTED {seq} {event_id}")
    if drain:
        client.flush(timeout=30)
        client.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--broker", type=Path, required=True)
    parser.add_argument("--sdk", choices=["outbox", "legacy"], default="outbox")
    parser.add_argument("--send", type=int, required=True)
    parser.add_argument("--broker-hangs-after", type=int)
    parser.add_argument("--drain", action="store_true")
    parser.add_argument("--batch", type=int, default=1, help="events per send_many")
    args = parser.parse_args(argv)
    powercut.install(args.state, args.image)
    broker = FileBroker(args.broker, args.broker_hangs_after)
    if args.sdk == "legacy":
        legacy_send(args.state, broker, args.send)
    else:
        outbox_send(args.state, broker, args.send, args.drain, args.batch)
    say("SENT-ALL")
    if not args.drain:
        time.sleep(3600)  # the test kills us


if __name__ == "__main__":
    main(sys.argv[1:])
