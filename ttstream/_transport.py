"""The ``httpx.AsyncClient`` ttstream creates when the caller passes none.

With the ``aiohttp`` extra (``pip install 'ttstream[aiohttp]'``, which brings
``httpx-aiohttp``), requests made on asyncio go through aiohttp's transport, which reads
the socket in larger pieces and parses HTTP in C; on trio (which aiohttp does not run on)
the same client uses httpcore, httpx's own transport. The choice is made per request,
from the running event loop, so one client serves both. Nothing process-wide changes:
only the client ttstream creates is affected; a client the caller passes is used as it
is. Measurements: ``benchmarks/RESULTS.md``; see ``docs/fast.md``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

__all__ = ["AIOHTTP", "BackendTransport", "http_client"]

try:
    from httpx_aiohttp import AiohttpTransport
    from httpx_aiohttp.transport import AiohttpResponseStream
except ImportError:  # the extra is not installed
    AIOHTTP = False
else:
    AIOHTTP = True

READ_SIZE = 256 * 1024
"""The largest piece an aiohttp response body is handed over in (httpx-aiohttp's own
default is 16 KiB): over loopback, a 10.7 MB stream took 12 ms in 256 KiB pieces against
19 ms in 16 KiB ones (``benchmarks/RESULTS.md``). Set on each response, not on the class."""


class BackendTransport(httpx.AsyncBaseTransport):
    """aiohttp's transport for requests made on asyncio, httpcore's on any other
    event loop (trio). Each is made on first use and closed with this one."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._asyncio: httpx.AsyncBaseTransport | None = None
        self._other: httpx.AsyncBaseTransport | None = None

    def _transport(self) -> httpx.AsyncBaseTransport:
        if _on_asyncio():
            if self._asyncio is None:
                self._asyncio = AiohttpTransport(limits=self._limits)
            return self._asyncio
        if self._other is None:
            self._other = httpx.AsyncHTTPTransport(limits=self._limits)
        return self._other

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._transport().handle_async_request(request)
        if AIOHTTP and isinstance(response.stream, AiohttpResponseStream):
            response.stream.CHUNK_SIZE = READ_SIZE  # this response's, not the class's
        return response

    async def aclose(self) -> None:
        for transport in (self._asyncio, self._other):
            if transport is not None:
                await transport.aclose()


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio, or no event loop
        return False
    return True


def http_client(**kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient(**kwargs)``, on aiohttp's transport for asyncio when the
    ``aiohttp`` extra is installed (httpcore on trio), else httpx's default transport.

    ``kwargs`` are ``httpx.AsyncClient``'s (``timeout``, ``follow_redirects``,
    ``limits``...), except ``transport``.
    """
    if not AIOHTTP:
        return httpx.AsyncClient(**kwargs)
    limits = kwargs.pop("limits", httpx.Limits(max_connections=100, max_keepalive_connections=20))
    return httpx.AsyncClient(transport=BackendTransport(limits), **kwargs)
