"""Dead letters: what operators read never repeats input-controlled text, and every record fits
Kafka's size limit whatever a device sent (issue #18, findings 2, 3 and 5)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hito.devices import DeviceRegistry
from hito.ops.dlq import decode_record
from hito.pipeline.dead_letters import Origin, make_records
from hito.pipeline.stages.outcomes import Limits, Rejected
from hito.pipeline.stages.validate import SCHEMA_NAMES, validate
from hito.schemas.dlq import MAX_ORIGINAL_BYTES
from hito.schemas.reasons import Reason
from hito.schemas.signing import sign
from tests.unit.pipeline.stages.test_validate import NOW, _event

# Shaped like what a careless or hostile device could put in a name or a value: document
# numbers, plates, names, numbers.
IDENTIFIERS = st.one_of(
    st.from_regex(r"\A[A-Z]{1,3}[0-9]{5,9}\Z"),
    st.from_regex(r"\A[A-Z]{2}-?[0-9]{2,4}-?[A-Z]{0,2}\Z"),
    st.from_regex(r"\A[a-z]{3,12}_[a-z]{3,12}\Z"),
    st.from_regex(r"\A[0-9]{6,12}\Z"),
).filter(lambda s: s not in SCHEMA_NAMES)

HUMAN_FIELDS = ("detail", "stage", "reason", "device_id", "site")


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(IDENTIFIERS, min_size=1, max_size=3, unique=True),
    values=st.lists(IDENTIFIERS, min_size=1, max_size=3),
    where=st.sampled_from(["payload", "top", "nested"]),
)
def test_dlq_details_echo_only_schema_names(
    registry: DeviceRegistry, names: list[str], values: list[str], where: str
) -> None:
    ev = _event(registry)
    extra = {name: values[i % len(values)] for i, name in enumerate(names)}
    if where == "payload":
        ev["payload"] = {**ev["payload"], **extra}
    elif where == "top":
        ev.update(extra)
    else:
        ev["payload"] = {**ev["payload"], "lane": extra}
    device = registry.get(ev["device_id"])
    assert device is not None
    ev["sig"] = sign({k: v for k, v in ev.items() if k != "sig"}, device.key)
    raw = orjson.dumps(ev)
    result = validate(raw, registry=registry, limits=Limits(), now=NOW)
    assert isinstance(result, Rejected)
    record, _ = make_records(result, raw, Origin("hito.raw.checkpoint", 0, 7), now=NOW)
    shown = orjson.dumps(record.model_dump(mode="json", include=set(HUMAN_FIELDS))).decode()
    assert [text for text in (*names, *values) if text in shown] == []


@given(size=st.sampled_from([0, 1, 64 * 1024, MAX_ORIGINAL_BYTES, MAX_ORIGINAL_BYTES + 1]))
def test_records_are_bounded_whatever_was_rejected(size: int) -> None:
    raw = b"x" * size
    rejected = Rejected(Reason.OVERSIZED, "big")
    record, original = make_records(
        rejected, raw, Origin("hito.raw.drone", 1, 2, b"k" * 1000), now=NOW
    )
    assert record.original_bytes == original.original_bytes == size
    assert original.cut == (size > MAX_ORIGINAL_BYTES)
    assert original.original == raw[:MAX_ORIGINAL_BYTES]
    assert len(record.model_dump_json()) < 2_000
    assert len(original.model_dump_json()) < MAX_ORIGINAL_BYTES * 4 // 3 + 4_000


def test_a_ten_megabyte_event_still_makes_records_under_the_kafka_limit() -> None:
    raw = b"{" * (10 * 1024 * 1024)
    record, original = make_records(
        Rejected(Reason.OVERSIZED, "10485760 bytes > limit 65536"),
        raw,
        Origin("hito.raw.sensor", 0, 0),
        now=datetime(2026, 12, 3, tzinfo=UTC),
    )
    assert len(original.model_dump_json()) < 1_000_000  # the producer's request limit
    assert original.cut and record.original_bytes == len(raw)


@settings(max_examples=200, deadline=None)
@given(sent=IDENTIFIERS.map(str.encode))
def test_operators_record_holds_no_function_of_the_bytes(sent: bytes) -> None:
    """A broken device that sends a document number alone: a plain digest of it on hito.dlq
    would be reversed by hashing every candidate number. The operators' record holds neither
    the bytes nor any digest of them; the raw zone's record keeps the SHA-256."""
    rejected = Rejected(Reason.MALFORMED_JSON, "not a single valid UTF-8 JSON document")
    origin = Origin("hito.raw.checkpoint", 0, 7)
    record, original = make_records(rejected, sent, origin, now=NOW)
    again, _ = make_records(rejected, sent, origin, now=NOW)
    shown = record.model_dump_json().encode()
    for digest in (hashlib.sha256, hashlib.md5, hashlib.sha1, hashlib.blake2b):
        assert digest(sent).hexdigest().encode() not in shown
    assert sent not in shown
    assert original.original_sha256 == hashlib.sha256(sent).hexdigest()
    # The id pairs the two records of one rejection, and only them: the same bytes rejected
    # again get another id.
    assert record.rejection_id == original.rejection_id is not None
    assert again.rejection_id != record.rejection_id


def test_an_older_operators_record_is_read_without_its_digest() -> None:
    """dlq.record/2 carried the bytes' SHA-256; such records stay on hito.dlq until the topic's
    retention removes them. They are read (no rejection_id) and the digest is dropped."""
    older = {
        "reason": "malformed_json",
        "stage": "validate",
        "detail": "not a single valid UTF-8 JSON document",
        "source_topic": "hito.raw.checkpoint",
        "source_partition": 0,
        "source_offset": 3,
        "received_at": "2026-12-03T10:00:00Z",
        "original_bytes": 9,
        "original_sha256": hashlib.sha256(b"AB1234567").hexdigest(),
    }
    record = decode_record(orjson.dumps(older))
    assert record.rejection_id is None and record.source_offset == 3
    assert "original_sha256" not in record.model_dump()
    # A field the model does not know is still refused (the record stays strict).
    with pytest.raises(ValidationError):
        decode_record(orjson.dumps({**older, "original_b64": "QUIx"}))
