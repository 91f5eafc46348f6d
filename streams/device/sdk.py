"""Device-side producer SDK (kafka-python): build, sign and send events; keep ``seq``.

For device makers::

    client = DeviceClient(device_id="cl-chacalluta-ckpt-01", site="chacalluta",
                          key=bytes.fromhex(KEY_HEX), bootstrap="127.0.0.1:19092",
                          username="hito-device", password=KAFKA_PASSWORD,
                          seq_file=Path("/var/lib/device/seq"))
    client.send("checkpoint.crossing/1", payload, event_time=datetime.now(UTC))
    client.flush()

``seq`` is assigned when an event is built and persisted before it is sent, so a retry re-sends
the same bytes (same ``seq``, same ``event_id``) and the pipeline drops the copy as a duplicate;
a restarted device continues after the last ``seq`` it assigned.

The broker only accepts authenticated clients (SASL/SCRAM-SHA-512); a device user may write
the raw topics and nothing else. Beyond loopback use ``security_protocol="SASL_SSL"`` with the
CA that signed the broker's certificate (``ssl_cafile``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from hito.schemas.registry import Source, lookup
from hito.schemas.signing import sign
from hito.schemas.topics import DEFAULT_RAW_TOPICS


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
    would accept, so a device finds its own mistakes before sending)."""
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
    entry.model.model_validate_json(orjson.dumps(signed), strict=True)
    return signed


def encode(envelope: Mapping[str, Any]) -> bytes:
    return orjson.dumps(envelope)


class DeviceClient:
    """One device's connection: assigns ``seq``, signs, sends keyed by ``device_id``."""

    def __init__(
        self,
        *,
        device_id: str,
        site: str,
        key: bytes,
        bootstrap: str,
        username: str | None = None,
        password: str | None = None,
        security_protocol: str = "SASL_PLAINTEXT",
        ssl_cafile: str | None = None,
        topic_for_source: Mapping[Source, str] | None = None,
        seq_file: Path | None = None,
        producer: Any = None,
    ) -> None:
        self.device_id = device_id
        self.site = site
        self._key = key
        self._seq_file = seq_file
        self._next_seq = _load_seq(seq_file)
        self._topics: dict[Source, str] = dict(topic_for_source or DEFAULT_RAW_TOPICS)
        if producer is None:
            from kafka import KafkaProducer

            # acks=all and idempotence: a broker-side retry never writes a second copy.
            auth: dict[str, Any] = {}
            if username is not None:
                auth = {
                    "security_protocol": security_protocol,
                    "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_plain_username": username,
                    "sasl_plain_password": password,
                    "ssl_cafile": ssl_cafile,
                }
            producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                **auth,
            )
        self._producer = producer

    def send(self, schema: str, payload: Mapping[str, Any], *, event_time: datetime) -> Any:
        seq = self._next_seq
        envelope = build_event(
            schema=schema,
            device_id=self.device_id,
            site=self.site,
            seq=seq,
            event_time=event_time,
            payload=payload,
            key=self._key,
        )
        self._next_seq = seq + 1
        _store_seq(self._seq_file, self._next_seq)
        return self.send_raw(schema, encode(envelope))

    def send_raw(self, schema: str, data: bytes) -> Any:
        """Send already-built bytes (a retry of the same event re-sends the same bytes)."""
        entry = lookup(schema)
        if entry is None:
            raise ValueError(f"unknown schema {schema!r}")
        topic = self._topics[entry.source]
        return self._producer.send(topic, key=self.device_id.encode(), value=data)

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        self._producer.close()


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
