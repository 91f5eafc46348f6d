"""The sink's failure policy, against a real HTTP server answering as InfluxDB would refuse.

Each status goes through influxdb-client's real error handling (no fake write call), so the
test shows what the client raises for it and what the sink makes of that.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.sinks.errors import (
    NARROWING_WRITES,
    Failure,
    Outcome,
    PermanentSinkError,
    RetryableSinkError,
    classify_status,
    write_or_dead_letter,
)
from hito.pipeline.sinks.influx import InfluxSink
from hito.settings.sections import InfluxSettings

LINE = "crossings,site=s,direction=entry count=1i 1764700000"


@pytest.mark.parametrize(
    ("status", "failure"),
    [
        (0, Failure.RETRYABLE),
        (400, Failure.PERMANENT),
        (401, Failure.CREDENTIALS),
        (403, Failure.CREDENTIALS),
        (404, Failure.RETRYABLE),
        (413, Failure.PERMANENT),
        (422, Failure.PERMANENT),
        (429, Failure.RETRYABLE),
        (500, Failure.RETRYABLE),
        (503, Failure.RETRYABLE),
    ],
)
def test_statuses_are_classified(status: int, failure: Failure) -> None:
    assert classify_status(status) is failure


@asynccontextmanager
async def influx_answering(
    answer: int | Callable[[bytes], int], taken: list[bytes] | None = None
) -> AsyncIterator[tuple[int, list[str]]]:
    """A local HTTP server that answers every write with ``answer`` (a status, or the status
    for a body); yields (port, tokens seen in the Authorization headers). The bodies answered
    204 go to ``taken``."""
    tokens: list[str] = []

    async def write(request: web.Request) -> web.Response:
        tokens.append(request.headers.get("Authorization", ""))
        body = await request.read()
        status = answer(body) if callable(answer) else answer
        if status == 204:
            if taken is not None:
                taken.append(body)
            return web.Response(status=204)
        return web.json_response({"code": "x", "message": f"status {status}"}, status=status)

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, tokens
    finally:
        await runner.cleanup()


def sink_on(port: int, token_source: Callable[[], SecretStr] | None = None) -> InfluxSink:
    settings = InfluxSettings(host="127.0.0.1", port=port, token=SecretStr("t0"))
    return InfluxSink(settings, PipelineMetrics(), token_source=token_source)


def errors_of(sink: InfluxSink, kind: str) -> float:
    value: float = sink.metrics.sink_errors.labels(kind=kind)._value.get()
    return value


@pytest.mark.parametrize("status", [404, 429, 500, 503])
def test_overload_and_server_errors_are_retryable_and_back_off(status: int) -> None:
    async def scenario() -> None:
        async with influx_answering(status) as (port, _):
            sink = sink_on(port)
            with pytest.raises(RetryableSinkError, match=f"HTTP {status}"):
                await sink.write([LINE])
            assert not sink.healthy and not sink.ready()  # backing off
            assert errors_of(sink, "retryable") == 1 and errors_of(sink, "permanent") == 0
            await sink.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_retryable_and_read_again(status: int) -> None:
    issued = iter(["t1", "t2"])

    async def scenario() -> None:
        async with influx_answering(status) as (port, tokens):
            sink = sink_on(port, token_source=lambda: SecretStr(next(issued)))
            for _ in range(2):
                with pytest.raises(RetryableSinkError, match=f"HTTP {status}"):
                    await sink.write([LINE])
            # Each try after a refusal connects with a freshly read token.
            assert tokens == ["Token t1", "Token t2"]
            await sink.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("status", [400, 413, 422])
def test_other_client_errors_are_permanent(status: int) -> None:
    async def scenario() -> None:
        async with influx_answering(status) as (port, _):
            sink = sink_on(port)
            with pytest.raises(PermanentSinkError) as raised:
                await sink.write([LINE])
            assert raised.value.status == status
            assert sink.healthy and sink.ready()  # nothing to back off from
            assert errors_of(sink, "permanent") == 1 and errors_of(sink, "retryable") == 0
            await sink.close()

    asyncio.run(scenario())


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def scenario() -> None:
        sink = sink_on(port)
        with pytest.raises(RetryableSinkError):
            await sink.write([LINE])
        assert errors_of(sink, "retryable") == 1
        await sink.close()

    asyncio.run(scenario())


def test_policy_defers_retryable_and_dead_letters_permanent() -> None:
    dead: list[tuple[str, int]] = []

    async def dead_letter(refused: list[tuple[str, PermanentSinkError]]) -> None:
        dead.extend((group, exc.status) for group, exc in refused)

    def failing(exc: Exception) -> Callable[[Sequence[str]], Awaitable[None]]:
        async def write(_: Sequence[str]) -> None:
            raise exc

        return write

    async def ok(_: Sequence[str]) -> None:
        return None

    async def scenario() -> list[Outcome]:
        return [
            await write_or_dead_letter(["a"], ok, what="x", dead_letter=dead_letter),
            await write_or_dead_letter(
                ["a"], failing(RetryableSinkError("down")), what="x", dead_letter=dead_letter
            ),
            await write_or_dead_letter(
                ["a"], failing(PermanentSinkError(400, "bad")), what="x", dead_letter=dead_letter
            ),
        ]

    assert asyncio.run(scenario()) == [Outcome.WRITTEN, Outcome.DEFERRED, Outcome.DEAD_LETTERED]
    assert dead == [("a", 400)]


def _refusing(bad: set[str], writes: list[list[str]], down_after: int | None = None) -> Any:
    """A write that refuses (422) any batch holding a group of ``bad``, records each batch,
    and fails as retryable from write number ``down_after`` on."""

    async def write(groups: Sequence[str]) -> None:
        writes.append(list(groups))
        if down_after is not None and len(writes) > down_after:
            raise RetryableSinkError("InfluxDB went away")
        if bad & set(groups):
            raise PermanentSinkError(422, "field type conflict")

    return write


def test_a_permanent_refusal_is_narrowed_down_to_the_groups_refused_alone() -> None:
    groups = [f"w{i}" for i in range(16)]
    writes: list[list[str]] = []
    dead: list[str] = []

    async def dead_letter(refused: list[tuple[str, PermanentSinkError]]) -> None:
        dead.extend(group for group, _ in refused)

    outcome = asyncio.run(
        write_or_dead_letter(
            groups, _refusing({"w5"}, writes), what="windows", dead_letter=dead_letter
        )
    )
    assert outcome is Outcome.DEAD_LETTERED
    assert dead == ["w5"]
    written = [g for batch in writes for g in batch if "w5" not in batch]
    assert sorted(written) == sorted(set(groups) - {"w5"})  # every other group, once
    assert len(writes) == 1 + 2 * 4  # the whole, then two halves at each of four levels


def test_narrowing_stops_after_its_budget_and_a_retryable_failure_defers_everything() -> None:
    groups = [f"w{i}" for i in range(1000)]
    writes: list[list[str]] = []
    dead: list[str] = []

    async def dead_letter(refused: list[tuple[str, PermanentSinkError]]) -> None:
        dead.extend(group for group, _ in refused)

    everything = asyncio.run(
        write_or_dead_letter(
            groups, _refusing(set(groups), writes), what="w", dead_letter=dead_letter
        )
    )
    assert everything is Outcome.DEAD_LETTERED
    assert len(writes) == 1 + NARROWING_WRITES
    assert sorted(dead) == sorted(groups)  # each once

    writes.clear()
    dead.clear()
    deferred = asyncio.run(
        write_or_dead_letter(
            groups, _refusing({"w1"}, writes, down_after=3), what="w", dead_letter=dead_letter
        )
    )
    assert deferred is Outcome.DEFERRED
    assert dead == []  # nothing dead-lettered: the next tick starts again


def test_a_permanent_refusal_before_the_writes_refuses_every_group_without_narrowing() -> None:
    """``before`` (the deletes of stale series) runs once: refused for good, no write would
    tell the groups apart, so none is tried; unreachable, the flush waits."""
    writes: list[list[str]] = []
    dead: list[tuple[str, int]] = []

    async def dead_letter(refused: list[tuple[str, PermanentSinkError]]) -> None:
        dead.extend((group, exc.status) for group, exc in refused)

    def failing(exc: Exception) -> Callable[[], Awaitable[None]]:
        async def before() -> None:
            raise exc

        return before

    async def scenario() -> list[Outcome]:
        return [
            await write_or_dead_letter(
                ["a", "b"],
                _refusing(set(), writes),
                what="w",
                dead_letter=dead_letter,
                before=failing(error),
            )
            for error in (PermanentSinkError(400, "bad predicate"), RetryableSinkError("down"))
        ]

    assert asyncio.run(scenario()) == [Outcome.DEAD_LETTERED, Outcome.DEFERRED]
    assert writes == []
    assert dead == [("a", 400), ("b", 400)]


class _Writer:
    """A write the test watches (weakly) for when it is freed."""

    def __init__(self, refuse: Callable[[], Exception] | None) -> None:
        self.refuse = refuse  # made anew at each raise: an exception held here is a cycle

    async def __call__(self, groups: Sequence[str]) -> None:
        if self.refuse is not None:
            raise self.refuse()


def _refused() -> Exception:
    return PermanentSinkError(422, "field type conflict")


@pytest.mark.parametrize(
    ("refuse", "refuse_before"),
    [
        (None, None),
        (lambda: RetryableSinkError("down"), None),
        (_refused, None),
        (None, _refused),
    ],
    ids=["written", "deferred", "dead_lettered", "refused_before_the_writes"],
)
def test_a_flush_leaves_no_reference_cycle_behind(
    refuse: Callable[[], Exception] | None, refuse_before: Callable[[], Exception] | None
) -> None:
    """Whatever the outcome, a flush's write (and the lines it reaches) is freed as soon as
    the flush returns, by reference counting alone: a cycle would keep every flush's lines
    until a full collection, minutes later (the soak's worker grew by 5-11 MB)."""

    async def dead_letter(refused: list[tuple[str, PermanentSinkError]]) -> None:
        return None

    async def scenario() -> weakref.ref[_Writer]:
        write = _Writer(refuse)
        watch = weakref.ref(write)
        before = _Writer(refuse_before)
        await write_or_dead_letter(
            ["a", "b", "c"],
            write,
            what="w",
            dead_letter=dead_letter,
            before=lambda: before([]),
        )
        del write
        return watch

    loop = asyncio.new_event_loop()
    gc.collect()
    gc.disable()
    # No log records: pytest's capture keeps them, and their arguments (the refusal, whose
    # traceback reaches the write) with them.
    logging.disable(logging.CRITICAL)
    try:
        watch = loop.run_until_complete(scenario())
        assert watch() is None
    finally:
        logging.disable(logging.NOTSET)
        gc.enable()
        loop.close()
