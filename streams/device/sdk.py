"""Device-side producer SDK (kafka-python): build, sign, store and forward events.

For device makers::

    client = DeviceClient(device_id="cl-chacalluta-ckpt-01", site="chacalluta",
                          key=bytes.fromhex(KEY_HEX), state_dir=Path("/var/lib/hito-device"),
                          bootstrap="127.0.0.1:19092", username="hito-device",
                          password=KAFKA_PASSWORD)
    client.send("checkpoint.crossing/1", payload, event_time=datetime.now(UTC))
    client.flush(timeout=30)   # optional: wait until the broker has everything
    client.close()

``send`` returns once the event is in the device's durable outbox (hito.device.outbox), with
its ``seq`` (hito.device.seq); a sender thread forwards the outbox to Kafka in order whenever
the broker is reachable, and removes an event only once the broker acknowledged it. A
restarted device resumes the outbox. docs/ingestion.md, "Store and forward", states what
survives a crash, a power cut and a broker outage.

The broker only accepts authenticated clients (SASL/SCRAM-SHA-512); a device user may write
the raw topics and nothing else. Beyond loopback use ``security_protocol="SASL_SSL"`` with the
CA that signed the broker's certificate (``ssl_cafile``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from hito.device import durable, flightlog
from hito.device.kafka_client import (
    checked_producer_config,
    kafka_producer,
    kafka_settings,
    raw_topics,
)
from hito.device.outbox import Outbox, OutboxLimits, OutboxStatus
from hito.device.records import Record
from hito.device.sender import Producer, Sender, SenderConfig, SenderStatus
from hito.schemas.envelope import MAX_SEQ
from hito.schemas.errors import describe, field_names
from hito.schemas.registry import Source, lookup
from hito.schemas.signing import sign


def envelope(
    *,
    schema: str,
    device_id: str,
    site: str,
    seq: int,
    event_time: datetime,
    payload: Mapping[str, Any],
    event_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """An unsigned envelope as a JSON-ready dict (not validated: see :func:`build_event`)."""
    if event_time.tzinfo is None:
        raise ValueError("event_time must be timezone-aware")
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "schema": schema,
        "device_id": device_id,
        "site": site,
        "seq": seq,
        "event_time": event_time.isoformat(),
        "payload": dict(payload),
    }


def with_signature(unsigned: dict[str, Any], key: bytes) -> dict[str, Any]:
    """The envelope with its ``sig`` (replacing any), in place; returns it."""
    unsigned.pop("sig", None)
    unsigned["sig"] = sign(unsigned, key)
    return unsigned


class InvalidEvent(ValueError):
    """The event does not match its schema. The message names fields and error kinds only,
    never values: pydantic's own message quotes the input (a document number, an operator id),
    which would end up in the device's logs."""


def build_event(
    *,
    schema: str,
    device_id: str,
    site: str,
    seq: int,
    event_time: datetime,
    payload: Mapping[str, Any],
    key: bytes,
    event_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """A signed envelope as a JSON-ready dict, validated against its schema (what the pipeline
    would accept, so a device finds its own mistakes before sending); :class:`InvalidEvent`
    when it is not."""
    entry = lookup(schema)
    if entry is None:
        raise ValueError(f"unknown schema {schema!r}")
    signed = with_signature(
        envelope(
            schema=schema,
            device_id=device_id,
            site=site,
            seq=seq,
            event_time=event_time,
            payload=payload,
            event_id=event_id,
        ),
        key,
    )
    try:
        entry.model.model_validate_json(orjson.dumps(signed), strict=True)
    except ValidationError as exc:
        # from None: a logged traceback would print the chained ValidationError, values too.
        raise InvalidEvent(
            f"not a valid {schema} event: {describe(exc, field_names(entry.model))}"
        ) from None
    return signed


def encode(envelope: Mapping[str, Any]) -> bytes:
    return orjson.dumps(envelope)


class DeliveryTimeout(TimeoutError):
    """:meth:`DeviceClient.flush` ran out of time; the events still wait in the outbox."""


@dataclass(frozen=True)
class DeviceStatus:
    outbox: OutboxStatus
    sender: SenderStatus


@dataclass(frozen=True)
class Outgoing:
    """One event for :meth:`DeviceClient.send_many`."""

    schema: str
    payload: Mapping[str, Any]
    event_time: datetime
    event_id: uuid.UUID | None = None


class DeviceClient:
    """One device: assigns ``seq``, signs, appends to its outbox; a thread forwards the outbox.

    ``state_dir`` holds the device's outbox (raw personal data: keep it on an encrypted
    volume readable by the device's service user only) and its upload journals; one process at
    a time may use it (a second one gets ``OutboxLocked``). Kafka: ``producer_factory`` (called
    again after every failure), or ``producer_config`` (kafka-python settings, e.g.
    ``hito.credentials.client_config``), or ``bootstrap`` with the device user's credentials.
    ``topic_for_source``: raw topics that differ from the defaults (a source left out keeps
    its default). ``min_seq``: a device moving from an SDK without an outbox passes the value
    of its old ``seq`` file plus a margin (that file was not fsync'd); one whose state folder
    was lost passes what `hito devices seq` shows. Bad settings raise ValueError here, before
    anything is stored."""

    def __init__(
        self,
        *,
        device_id: str,
        site: str,
        key: bytes,
        state_dir: Path,
        bootstrap: str | None = None,
        username: str | None = None,
        password: str | None = None,
        security_protocol: str = "SASL_PLAINTEXT",
        ssl_cafile: str | None = None,
        producer_config: Mapping[str, Any] | None = None,
        producer_factory: Callable[[], Producer] | None = None,
        topic_for_source: Mapping[Source, str] | None = None,
        limits: OutboxLimits | None = None,
        sender: SenderConfig | None = None,
        min_seq: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= min_seq <= MAX_SEQ:
            raise ValueError(f"min_seq is from 0 to {MAX_SEQ} (the largest seq a device sends)")
        self.device_id = device_id
        self.site = site
        self._key = key
        self._clock = clock
        self.state_dir = state_dir
        self._closed = False
        if producer_factory is None:
            if producer_config is None:
                if bootstrap is None:
                    raise ValueError("give producer_factory, producer_config or bootstrap")
                producer_config = kafka_settings(
                    bootstrap, username, password, security_protocol, ssl_cafile
                )
            settings = checked_producer_config(producer_config)
            producer_factory = lambda: kafka_producer(settings)  # noqa: E731
        topics = raw_topics(topic_for_source)
        _claim_state_dir(state_dir, device_id, site)
        self._outbox = Outbox(state_dir / "outbox", limits, clock)
        try:
            self._uploads = flightlog.UploadJournal(state_dir / "uploads")
            self._uploads.recover(self._outbox)  # before anything new takes a seq
            self._outbox.raise_floor(min_seq)
        except BaseException:
            self._outbox.close()
            raise
        self._cond = threading.Condition()
        self._sender = Sender(
            self._outbox, self._cond, producer_factory, topics, device_id.encode(), sender
        )
        self._sender.start()

    def send(
        self,
        schema: str,
        payload: Mapping[str, Any],
        *,
        event_time: datetime,
        event_id: uuid.UUID | None = None,
    ) -> int:
        """Build, validate, sign and durably queue one event; returns its ``seq``. Raises
        :class:`InvalidEvent`, ``OutboxFull``, ``EventTooOld`` or ``ClockNotSet``
        (hito.device.outbox): nothing is dropped quietly (``OutboxInterrupted``: restart the
        client, see the outbox)."""
        return self.send_many([Outgoing(schema, payload, event_time, event_id)])[0]

    def send_many(self, events: Iterable[Outgoing]) -> list[int]:
        """As :meth:`send`, with one fsync for the lot (a terminal that batches saves most of
        the fsync cost); returns their seqs. All or none, a power cut included: a call that
        did not return stored either every one of its events (the disk kept the whole append
        before the power went) or none, never some (hito.device.records, the batch flag)."""
        items = list(events)
        with self._cond:
            if self._closed:
                raise RuntimeError("the device client is closed")
            first = self._outbox.next_seq
            records = [self._record(first + i, e) for i, e in enumerate(items)]
            self._outbox.append(records)
            self._cond.notify_all()
        return [r.seq for r in records]

    def _record(self, seq: int, e: Outgoing) -> Record:
        entry = lookup(e.schema)
        if entry is None:
            raise ValueError(f"unknown schema {e.schema!r}")
        signed = build_event(
            schema=e.schema,
            device_id=self.device_id,
            site=self.site,
            seq=seq,
            event_time=e.event_time,
            payload=e.payload,
            key=self._key,
            event_id=e.event_id,
        )
        return Record(
            seq=seq,
            event_time_ms=_epoch_ms(e.event_time),
            appended_ms=int(self._clock() * 1000),
            source=entry.source,
            event=encode(signed),
        )

    def upload_flight_log(self, path: Path) -> flightlog.UploadReport:
        """Queue a drone flight log's fixes (docs/ingestion.md, "Drone flight logs") as
        ``drone.telemetry/1`` events with their fix times; a fix queued before (by an
        interrupted or repeated upload, of this file or a copy) is not queued again."""
        fixes = flightlog.read_flight_log(path)

        def build(seq: int, fix: flightlog.Fix) -> Record:
            outgoing = Outgoing(
                flightlog.SCHEMA, fix.payload, fix.fix_time, fix.event_id(self.device_id)
            )
            return self._record(seq, outgoing)

        with self._cond:
            if self._closed:
                raise RuntimeError("the device client is closed")
            report = self._uploads.queue(fixes, self._outbox, build)
            self._cond.notify_all()
        return report

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the broker acknowledged every event queued so far; ``DeliveryTimeout``
        when it has not within ``timeout`` seconds (the events stay queued)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (waiting := self._outbox.status().pending_events) > 0:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    error = self._sender.status().last_error or "none yet"
                    raise DeliveryTimeout(
                        f"{waiting} events still wait in the outbox at {self._outbox.dir} "
                        f"after {timeout} s (last broker error: {error}); they are kept and "
                        "sent when the broker is reachable"
                    )
                self._cond.wait(left if left is not None else 1.0)

    def status(self) -> DeviceStatus:
        with self._cond:
            return DeviceStatus(self._outbox.status(), self._sender.status())

    def close(self, timeout: float = 10.0) -> None:
        """Stop forwarding; what was not acknowledged stays in the outbox for the next start."""
        self._sender.stop(timeout)
        with self._cond:
            self._closed = True
            self._outbox.close()

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _epoch_ms(when: datetime) -> int:
    return (when - _EPOCH) // _MS


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _claim_state_dir(state_dir: Path, device_id: str, site: str) -> None:
    """A state folder belongs to one device: its seqs mean nothing for another."""
    durable.make_dirs(state_dir)
    marker = state_dir / "device.json"
    stored = durable.read_json(marker)
    if stored is None:
        durable.write_json_atomic(marker, {"device_id": device_id, "site": site})
    elif not isinstance(stored, dict) or stored.get("device_id") != device_id:
        raise ValueError(f"{state_dir} holds the state of another device ({stored!r})")
