"""A stand-in for kafka-python's producer: records what the broker acknowledged, and fails on
demand (unreachable at connect, or a batch whose records fail from some point on)."""

from __future__ import annotations

import threading
from typing import Any

import orjson


class Unreachable(ConnectionError):
    pass


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise self.error


class FakeBroker:
    def __init__(self) -> None:
        self.reachable = True
        self.fail_next_from: int | None = None  # the next batch fails from this record on
        self.acked: list[tuple[str, bytes, dict[str, Any]]] = []  # topic, key, event
        self.connects = 0
        self.lock = threading.Lock()

    def connect(self) -> FakeProducer:
        with self.lock:
            self.connects += 1
            if not self.reachable:
                raise Unreachable("broker unreachable")
        return FakeProducer(self)

    def seqs(self) -> list[int]:
        with self.lock:
            return [e["seq"] for _, _, e in self.acked]


class FakeProducer:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.in_batch = 0  # sends since the last flush
        self.failed = False

    def send(self, topic: str, *, key: bytes, value: bytes) -> _Future:
        b = self.broker
        with b.lock:
            index, self.in_batch = self.in_batch, self.in_batch + 1
            if not b.reachable:
                return _Future(Unreachable("broker went away"))
            if b.fail_next_from is not None and index >= b.fail_next_from:
                self.failed = True
                return _Future(TimeoutError("delivery timed out"))
            b.acked.append((topic, key, orjson.loads(value)))
            return _Future(None)

    def flush(self, timeout: float | None = None) -> None:
        with self.broker.lock:
            if self.failed:
                self.broker.fail_next_from = None
            self.in_batch, self.failed = 0, False

    def close(self, timeout: float | None = None) -> None:
        return None
