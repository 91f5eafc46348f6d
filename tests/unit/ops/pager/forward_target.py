"""A stand-in for the real paging service the pager forwards to, and waiting helpers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import TestServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Target:
    """The real paging service stand-in: a local aiohttp server that can be down (nothing
    listens on its port), refusing (HTTP 503) or accepting (200)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hook"
        self.received: list[bytes] = []
        self.refusing = False
        self._server: TestServer | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.refusing:
            return web.Response(status=503, text="maintenance")
        self.received.append(body)
        return web.Response(text="ok")

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._server = TestServer(app, host="127.0.0.1", port=self.port)
        await self._server.start_server()

    async def down(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
