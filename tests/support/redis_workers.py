"""Two or more RedisRelay workers for the tests, each with its own coredis client and its
own Hypercorn server, sharing one Redis."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.routing import Route

from tests.support.redis_server import (
    RedisServer,
    client_of,
)
from tests.support.relay_viewers import serving
from ttstream.sinks import (
    RedisRelay,
)

PREFIX = "previews:"


def app_of(relay: RedisRelay) -> Starlette:
    return Starlette(routes=[Route("/previews/{key}", relay)])


@contextlib.asynccontextmanager
async def workers(
    server: RedisServer, backend: str, count: int = 2, **settings: Any
) -> AsyncIterator[list[tuple[RedisRelay, httpx2.AsyncClient]]]:
    """``count`` relays, each with its own coredis client, served on their own ports;
    yields ``(relay, http client of its server)`` each."""
    async with contextlib.AsyncExitStack() as stack:
        result = []
        for _ in range(count):
            client = await stack.enter_async_context(client_of(server))
            relay = RedisRelay(client, prefix=PREFIX, **settings)
            url = await stack.enter_async_context(serving(app_of(relay), backend))
            http = await stack.enter_async_context(httpx2.AsyncClient(base_url=url))
            result.append((relay, http))
        yield result
