"""The sink's failure policy, against a real HTTP server answering as InfluxDB would refuse.

Each status goes through influxdb-client's real error handling (no fake write call), so the
test shows what the client raises for it and what the sink makes of that.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from pydantic import SecretStr

from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.sinks.errors import (
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
async def influx_answering(status: int) -> AsyncIterator[tuple[int, list[str]]]:
    """A local HTTP server that answers every write with ``status``; yields (port, tokens
    seen in the Authorization headers)."""
    tokens: list[str] = []

    async def write(request: web.Request) -> web.Response:
        tokens.append(request.headers.get("Authorization", ""))
        await request.read()
        if status == 204:
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
    dead: list[int] = []

    async def dead_letter(exc: PermanentSinkError) -> None:
        dead.append(exc.status)

    async def failing(exc: Exception) -> None:
        raise exc

    async def ok() -> None:
        return None

    async def scenario() -> list[Outcome]:
        return [
            await write_or_dead_letter(ok, what="x", dead_letter=dead_letter),
            await write_or_dead_letter(
                lambda: failing(RetryableSinkError("down")), what="x", dead_letter=dead_letter
            ),
            await write_or_dead_letter(
                lambda: failing(PermanentSinkError(400, "bad")), what="x", dead_letter=dead_letter
            ),
        ]

    assert asyncio.run(scenario()) == [Outcome.WRITTEN, Outcome.DEFERRED, Outcome.DEAD_LETTERED]
    assert dead == [400]
