"""ttstream._transport.http_client: aiohttp's transport on asyncio when the aiohttp extra
is installed, httpcore on trio; streams run to the end on both, over loopback."""

from __future__ import annotations

import httpx2
import pytest

import ttstream
from tests.support.ports import free_port
from ttstream import Completed
from ttstream._transport import AIOHTTP, BackendTransport, http_client
from ttstream.emulator import EmulatorServer

pytestmark = pytest.mark.anyio


async def test_streams_run_on_the_transport_of_the_running_loop(
    emulator: EmulatorServer, anyio_backend: str
) -> None:
    http = http_client(timeout=10, follow_redirects=False)
    async with http, ttstream.AsyncClient("k", base_url=emulator.base_url, http_client=http) as c:
        events = [
            e
            async for e in c.generate("a kite", model="gpt-image-2", size="64x48", partial_images=1)
        ]
        assert isinstance(events[-1], Completed)
        assert events[-1].image_bytes.startswith(b"\x89PNG")
        transport = http._transport
        if not AIOHTTP:
            assert not isinstance(transport, BackendTransport)
            return
        assert isinstance(transport, BackendTransport)
        used = transport._transport()
        if anyio_backend == "asyncio":
            from httpx_aiohttp.httpx2 import AiohttpTransport

            assert isinstance(used, AiohttpTransport)
        else:
            assert isinstance(used, httpx2.AsyncHTTPTransport)
    assert http.is_closed


def test_the_client_keeps_its_settings() -> None:
    http = http_client(timeout=3.5, follow_redirects=True)
    assert http.timeout == httpx2.Timeout(3.5)
    assert http.follow_redirects


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_bodies_come_in_large_pieces(emulator: EmulatorServer) -> None:
    if not AIOHTTP:
        pytest.skip("httpx-aiohttp is not installed")
    from httpx_aiohttp.httpx2.transport import AiohttpResponseStream

    from ttstream._transport import READ_SIZE

    default = AiohttpResponseStream.CHUNK_SIZE
    async with http_client(timeout=10) as http:
        url = emulator.base_url.removesuffix("/v1") + "/"
        response = await http._transport.handle_async_request(httpx2.Request("GET", url))
        try:
            inner = response.stream._inner  # type: ignore[attr-defined]  # the remapping wrapper
            assert isinstance(inner, AiohttpResponseStream)
            assert inner.CHUNK_SIZE == READ_SIZE
        finally:
            await response.aclose()
    assert default == AiohttpResponseStream.CHUNK_SIZE  # nothing process-wide changed


async def test_aiohttp_connection_refused_is_a_connection_error_not_a_timeout() -> None:
    if not AIOHTTP:
        pytest.skip("httpx-aiohttp is not installed")
    port = free_port()  # a port nobody listens on
    async with http_client(timeout=10) as http:
        with pytest.raises(httpx2.ConnectError) as info:
            await http.get(f"http://127.0.0.1:{port}/")
    assert not isinstance(info.value, httpx2.TimeoutException)
