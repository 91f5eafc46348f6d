"""The outbox's sender: a thread that drains the outbox to Kafka, in order, whenever the broker
is reachable, and moves past an event only once the broker acknowledged it.

Delivery is at least once: a crash after the broker's acknowledgement and before the outbox
recorded it re-sends those events, byte for byte (same ``seq``, same ``event_id``), and the
pipeline counts the copies as duplicates. Nothing is sent that the outbox had not fsync'd.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hito.device.outbox import Outbox, Pending
from hito.schemas.registry import Source

log = logging.getLogger(__name__)


class Producer(Protocol):
    """What the sender needs of a kafka-python ``KafkaProducer`` (tests pass a fake)."""

    def send(self, topic: str, *, key: bytes, value: bytes) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


@dataclass(frozen=True)
class SenderStatus:
    connected: bool
    acked_events: int  # by this process
    last_ack_at: float | None  # time.time() of the last acknowledgement
    last_error: str | None  # the last failure to reach or write to the broker
    last_error_at: float | None


@dataclass(frozen=True)
class SenderConfig:
    batch_records: int = 500
    batch_bytes: int = 1024 * 1024
    ack_timeout_s: float = 60.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    idle_wake_s: float = 5.0  # an idle sender still looks for acknowledged segments to delete
    expire_every_s: float = 30.0  # how often events past the outbox's max age are expired


class Sender:
    """Runs in its own thread; shares ``cond`` (its lock guards the outbox) with the client."""

    def __init__(
        self,
        outbox: Outbox,
        cond: threading.Condition,
        connect: Callable[[], Producer],
        topic_for_source: Mapping[Source, str],
        key: bytes,
        config: SenderConfig | None = None,
    ) -> None:
        self._outbox = outbox
        self._cond = cond
        self._connect = connect
        self._topics = dict(topic_for_source)
        self._key = key
        self._config = config or SenderConfig()
        self._producer: Producer | None = None
        self._stopping = False
        self._acked = 0
        self._last_ack_at: float | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._expired_at = float("-inf")
        self._thread = threading.Thread(target=self._run, name="hito-outbox-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def status(self) -> SenderStatus:
        return SenderStatus(
            connected=self._producer is not None,
            acked_events=self._acked,
            last_ack_at=self._last_ack_at,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the batch in flight (its acknowledgements still recorded); pending events
        stay in the outbox for the next start."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        producer = self._producer
        if self._thread.is_alive() and producer is not None:
            producer.close(timeout=0)  # unblocks a flush waiting on an unreachable broker
            self._thread.join(timeout)
        self._drop_producer()

    def _run(self) -> None:
        backoff = self._config.backoff_min_s
        while not self._stopping:
            try:
                ok = self._step()
            except Exception as exc:  # the outbox's own disk failed (full, an I/O error)
                log.exception("outbox sender: the outbox failed (events stay; retrying)")
                self._record_error(exc)
                ok = False
            if ok:
                backoff = self._config.backoff_min_s
            else:
                self._back_off(backoff)
                backoff = min(backoff * 2, self._config.backoff_max_s)

    def _step(self) -> bool:
        """Expire what is due, send the next batch (or wait for one); False after a failure."""
        with self._cond:
            if self._stopping:
                return True
            if time.monotonic() - self._expired_at >= self._config.expire_every_s:
                self._outbox.expire()  # logs and records what it removes
                self._expired_at = time.monotonic()
            batch = self._outbox.pending(self._config.batch_records, self._config.batch_bytes)
            if not batch:
                self._outbox.release_acked()
                self._cond.wait(self._config.idle_wake_s)
                return True
        return self._deliver(batch)

    def _back_off(self, seconds: float) -> None:
        """Wait, unless stopping: new events do not end the wait early, so a busy device does
        not hammer a broker that is down."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while not self._stopping and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)

    def _deliver(self, batch: list[Pending]) -> bool:
        """Send ``batch`` and record the acknowledged prefix; False after a failure."""
        done: list[Pending] = []
        try:
            producer = self._producer or self._open_producer()
            futures = [
                producer.send(self._topics[p.record.source], key=self._key, value=p.record.event)
                for p in batch
            ]
            producer.flush(timeout=self._config.ack_timeout_s)
            for p, future in zip(batch, futures, strict=True):
                future.get(timeout=self._config.ack_timeout_s)  # raises what the broker said
                done.append(p)
        except Exception as exc:  # any failure: back off, reconnect, retry
            self._failed(exc)
        if done:
            with self._cond:
                self._outbox.ack(done)
                self._acked += len(done)
                self._last_ack_at = time.time()
                self._cond.notify_all()
        return len(done) == len(batch)

    def _open_producer(self) -> Producer:
        self._producer = self._connect()
        log.info("outbox sender connected")
        return self._producer

    def _record_error(self, exc: Exception) -> None:
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._last_error_at = time.time()

    def _failed(self, exc: Exception) -> None:
        if self._stopping:
            return
        self._record_error(exc)
        log.warning("outbox sender: %s (events stay in the outbox; retrying)", self._last_error)
        # A fresh producer after any failure: kafka-python's idempotent producer can be left in
        # a state it does not leave by itself (an expired batch, a fenced producer id).
        self._drop_producer()

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception:  # closing a broken client: nothing left to do
                log.debug("closing the producer failed", exc_info=True)
