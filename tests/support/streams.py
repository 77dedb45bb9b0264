"""Stream helpers shared by the test modules: a client over a handler, a stream's items,
and the emulator's open-stream check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2

import ttstream
from ttstream import AsyncClient
from ttstream.emulator import EmulatorServer


def client_for(
    handler: Callable[[httpx2.Request], httpx2.Response], api_key: str = "k", **kwargs: Any
) -> AsyncClient:
    """An ``AsyncClient`` (key ``api_key``, other options ``kwargs``) whose requests all go
    to ``handler`` through httpx2's ``MockTransport``: no socket is opened."""
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return AsyncClient(api_key, http_client=http, **kwargs)


async def collect(stream: ttstream.ImageStream) -> list[ttstream.StreamItem]:
    """Every item of ``stream``, which it opens and closes."""
    async with stream:
        return [event async for event in stream]


def assert_no_stream_open(server: EmulatorServer, within: float = 1.0) -> None:
    """Asserts that the emulator has no stream open, waiting up to ``within`` seconds
    (``StreamStats.wait_closed``): the server notices a closed connection a moment
    after the client closes it."""
    try:
        server.stream_stats.wait_closed(timeout=within)
    except TimeoutError as exc:
        raise AssertionError(f"a stream was left open: {exc}") from None
