"""Send a fleet's messages to Kafka at a chosen rate, with a progress bar."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from hito.device.simulate.fleet import SimMessage


class SendRefused(RuntimeError):
    """Kafka refused some of the messages (``str()`` says how many and why)."""


def send_messages(
    messages: Iterable[SimMessage],
    *,
    producer_config: Mapping[str, Any],
    total: int,
    rate: float = 0.0,
    console: Console | None = None,
) -> Counter[str]:
    """Produce every message (rate 0 = flat out) with a kafka-python producer made from
    ``producer_config`` (a device user's connection settings); returns the expected-outcome
    counts sent. Raises SendRefused when Kafka refused any of them."""
    # As the SDK does: acks=all and idempotence, so a send retried after a broker failure is
    # never written twice (a device's duplicates are the fleet's own, counted as such).
    producer = KafkaProducer(
        **producer_config,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=2 * 1024 * 1024,
    )
    sent: Counter[str] = Counter()
    refused: list[BaseException] = []  # a send Kafka refused is an error, never a silent loss
    started = time.monotonic()
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task("simulating fleet", total=total)
            paced = 0
            for i, msg in enumerate(messages):
                if rate > 0 and msg.paced:
                    due = started + paced / rate
                    paced += 1
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                future = producer.send(msg.topic, key=msg.key, value=msg.value)
                future.add_errback(refused.append)
                sent[msg.expected] += 1
                if i % 100 == 0:
                    progress.update(task, completed=i)
            progress.update(task, completed=total)
        producer.flush(timeout=60)
    finally:
        producer.close()
    if refused:
        raise SendRefused(
            f"Kafka refused {len(refused)} of {sum(sent.values())} messages; "
            f"the first because of {refused[0]!r}"
        )
    return sent
