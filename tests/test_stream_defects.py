"""The stream defects of issue 21, each pinned by a test that failed before its fix: on
asyncio and trio, over loopback servers whose every byte is scripted (docs/reconnection.md,
docs/responses.md, docs/hostile-servers.md)."""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import httpx2
import pytest

from ttstream._body import aiter_bounded

pytestmark = pytest.mark.anyio


class Chunks(httpx2.AsyncByteStream):
    """A streaming body of a few chunks."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


# Issue 21, item 35: every async iterator the body reader opens is closed by it.


async def test_a_body_left_early_leaves_no_generator_to_the_garbage_collector() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, stream=Chunks(b"a" * 10, b"b" * 10, b"c" * 10))

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                request = http.build_request("GET", "http://127.0.0.1/")
                response = await http.send(request, stream=True)
                pieces = aiter_bounded(response, read_limit=4)
                assert await pieces.__anext__() == b"aaaa"
                await pieces.aclose()  # left after the first piece
                del pieces
                gc.collect()
                await anyio.lowlevel.checkpoint()
                await response.aclose()
            gc.collect()
            await anyio.lowlevel.checkpoint()
    leaked = [str(w.message) for w in caught if "aiter_raw" in str(w.message)]
    assert leaked == []
