"""A drone ground station uploading a flight log with the SDK, killed (SIGKILL, by itself)
right after the broker acknowledged its first ``--kill-after`` events and before the outbox
could record that: the worst moment for an interruption (tests/integration/pipeline/
test_store_and_forward.py). Settings (topics) come from the environment, as for ``hito``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from hito.credentials import client_config
from hito.device.kafka_client import kafka_producer
from hito.device.sdk import DeviceClient
from hito.device.sender import Producer
from hito.devices import DeviceRegistry
from hito.settings import load_settings


class KilledAfter:
    """A real producer; the send after the first ``n`` waits for their acknowledgements, then
    kills the process."""

    def __init__(self, real: Producer, n: int) -> None:
        self.real, self.n, self.sent = real, n, 0

    def send(self, topic: str, *, key: bytes, value: bytes) -> Any:
        if self.sent == self.n:
            self.real.flush(timeout=30)
            os.kill(os.getpid(), signal.SIGKILL)
        self.sent += 1
        return self.real.send(topic, key=key, value=value)

    def flush(self, timeout: float | None = None) -> None:
        self.real.flush(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        self.real.close(timeout=timeout)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log", type=Path)
    parser.add_argument("--device", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--kill-after", type=int, required=True)
    args = parser.parse_args(argv)
    settings = load_settings()
    device = DeviceRegistry.load(*settings.pipeline.registry_files()).get(args.device)
    assert device is not None
    config = client_config(settings.kafka, "device")
    client = DeviceClient(
        device_id=device.device_id,
        site=device.site,
        key=device.key,
        state_dir=args.state_dir,
        producer_factory=lambda: KilledAfter(kafka_producer(config), args.kill_after),
        topic_for_source=dict(settings.pipeline.raw_topics),
    )
    client.upload_flight_log(args.log)
    client.flush(timeout=120)  # never returns: the producer kills us first
    sys.exit("not killed")


if __name__ == "__main__":
    main(sys.argv[1:])
