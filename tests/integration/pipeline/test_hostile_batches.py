"""What a hostile or broken device can put in a record batch that the broker accepts and that
stopped its partition for good (hito.pipeline.faust.fetched_records): a header key that is not
UTF-8 (aiokafka raised ``UnicodeDecodeError`` on every fetch), and a compressed batch that
unpacks to far more than it is (aiokafka unpacked it whole: a 1 MB zstd batch of zeros is about
33 GB, and the worker was killed for memory). Each time the partition is read on, the events
around the batch are counted, and ingest judges each event on its own bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kafka import KafkaProducer

from hito.credentials import client_config
from hito.ops.dlq import Replayed, read_all, reason_filter, replay
from hito.pipeline.faust.fetched_records import BATCH_UNPACKED_MAX, TOO_LARGE
from hito.runtime import Runtime
from tests.integration.pipeline.conftest import outcomes_of_a_worker, signed_crossing

DEVICE = "cl-chacalluta-ckpt-01"
PER_BATCH = 10
HOSTILE = {3, 17}  # seqs whose record carries a header key that is not UTF-8


class _NotUtf8(str):
    """kafka-python encodes a header key with ``key.encode("utf-8")``: this one is not UTF-8."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe" + str(self).encode()


def test_a_header_key_that_is_not_utf8_neither_stops_the_partition_nor_loses_events(
    isolated_runtime: Runtime,
) -> None:
    settings, registry = isolated_runtime.settings, isolated_runtime.registry
    device = registry.get(DEVICE)
    assert device is not None
    topic = settings.pipeline.raw_topics["checkpoint"]
    at = datetime.now(UTC) - timedelta(seconds=5)
    # One uncompressed batch and one gzip batch, each with a hostile record inside it (the
    # broker keeps a compressed batch whole: the worker reads it as the device wrote it).
    for n, codec in enumerate((None, "gzip")):
        producer = KafkaProducer(
            **client_config(settings.kafka, "device"),
            acks="all",
            linger_ms=2000,
            compression_type=codec,
        )
        try:
            for seq in range(n * PER_BATCH, (n + 1) * PER_BATCH):
                headers = [(_NotUtf8("trace") if seq in HOSTILE else "trace", b"1")]
                producer.send(
                    topic,
                    value=signed_crossing(device, seq, at),
                    key=DEVICE.encode(),
                    headers=headers,
                    partition=0,
                )
            producer.flush(30)
        finally:
            producer.close(10)

    assert outcomes_of_a_worker(isolated_runtime, 2 * PER_BATCH) == {"accepted": 2 * PER_BATCH}


def test_a_batch_that_unpacks_beyond_the_cap_is_one_dead_letter_and_the_device_goes_on(
    isolated_runtime: Runtime,
) -> None:
    """A gzip batch of three records, one of them zeros a byte over the cap (16 KB on the
    wire): refused unread, one ``oversized`` DLQ record naming its three offsets, which the
    partition passes; the device's events before and after it are accepted, exactly. (Before,
    the batch was unpacked whole and its big record judged too large: a killed worker at
    gigabytes; the detail and the count tell them apart.)"""
    settings, registry = isolated_runtime.settings, isolated_runtime.registry
    device = registry.get(DEVICE)
    assert device is not None
    topic = settings.pipeline.raw_topics["checkpoint"]
    at = datetime.now(UTC) - timedelta(seconds=5)
    producer = KafkaProducer(
        **client_config(settings.kafka, "device"),
        acks="all",
        compression_type="gzip",
        max_request_size=BATCH_UNPACKED_MAX + (1 << 20),  # its own check is on unpacked size
        batch_size=BATCH_UNPACKED_MAX + (1 << 20),  # the three records in one batch
        linger_ms=2000,
    )
    try:
        for seq in range(3):
            producer.send(topic, signed_crossing(device, seq, at), DEVICE.encode(), partition=0)
        producer.flush(30)
        inside = [
            producer.send(topic, value, DEVICE.encode(), partition=0)
            for value in (b"{}", bytes(BATCH_UNPACKED_MAX + 1), b"{}")
        ]
        producer.flush(30)
        first, _, last = (sent.get(60).offset for sent in inside)
        assert last == first + 2
        for seq in range(3, 6):
            producer.send(topic, signed_crossing(device, seq, at), DEVICE.encode(), partition=0)
        producer.flush(30)
    finally:
        producer.close(10)

    assert outcomes_of_a_worker(isolated_runtime, 7) == {"accepted": 6, "rejected": 1}
    (dead,) = [e.record for e in read_all(settings)]
    assert (dead.reason.value, dead.stage, dead.source_offset) == ("oversized", "fetch", last)
    assert dead.detail == f"records {first}..{last}: {TOO_LARGE}"
    # Nothing of it was kept to replay: an operator's replay says so instead of sending nothing.
    assert replay(settings, reason_filter(["oversized"])) == Replayed(sent=0, cut=0, unread=1)
