"""ttstream._transport.http_client: aiohttp's transport on asyncio when the aiohttp extra
is installed, httpcore on trio; streams run to the end on both, over loopback."""

from __future__ import annotations

import asyncio
import contextlib

import anyio
import httpx2
import pytest

import ttstream
from tests.support.ports import free_port
from tests.support.raw_server import RawServer
from ttstream import Completed
from ttstream._transport import (
    AIOHTTP,
    BackendTransport,
    _trio_socket_of,
    http_client,
    httpcore_transport,
)
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


def _pieces_apart(pause: float) -> RawServer:
    """A server answering each request with a chunked body of two pieces, ``pause``
    seconds apart (in its own thread: usable from trio)."""

    async def handler(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.sleep(pause)
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")

    return RawServer(handler)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_a_read_without_data_for_the_read_timeout_is_a_read_timeout() -> None:
    if not AIOHTTP:
        pytest.skip("httpx-aiohttp is not installed")
    pieces: list[bytes] = []

    async def read_all(response: httpx2.Response) -> None:
        async for piece in response.aiter_raw():
            pieces.append(piece)

    http = http_client(timeout=httpx2.Timeout(10, read=0.3))
    with _pieces_apart(pause=30.0) as server:
        async with http, http.stream("GET", server.url) as response:
            with pytest.raises(httpx2.ReadTimeout):  # aiohttp's timer or ttstream's
                await read_all(response)
    assert pieces == [b"first"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_a_consumer_slower_than_the_read_timeout_is_no_timeout() -> None:
    # the bound is on a read waiting for data, not on the time between reads
    if not AIOHTTP:
        pytest.skip("httpx-aiohttp is not installed")
    pieces = []
    http = http_client(timeout=httpx2.Timeout(10, read=0.2))
    with _pieces_apart(pause=0.0) as server:
        async with http, http.stream("GET", server.url) as response:
            async for piece in response.aiter_raw():
                pieces.append(piece)
                await asyncio.sleep(0.5)
    assert b"".join(pieces) == b"firstsecond"


async def test_httpcore_a_read_without_data_for_the_read_timeout_is_a_read_timeout() -> None:
    # ttstream's own reads on both loops: the anyio stream's on asyncio, the socket's on trio
    pieces: list[bytes] = []

    async def read_all(response: httpx2.Response) -> None:
        async for piece in response.aiter_raw():
            pieces.append(piece)

    http = httpx2.AsyncClient(transport=httpcore_transport(), timeout=httpx2.Timeout(10, read=0.3))
    with _pieces_apart(pause=30.0) as server:
        async with http, http.stream("GET", server.url) as response:
            started = anyio.current_time()
            with pytest.raises(httpx2.ReadTimeout):
                await read_all(response)
            assert anyio.current_time() - started < 5
    assert pieces == [b"first"]


async def test_httpcore_bodies_and_slow_consumers_within_the_read_timeout() -> None:
    # the bound is on a read waiting for data, not on the time between reads; the
    # connection is reused after a body read to its end
    http = httpx2.AsyncClient(transport=httpcore_transport(), timeout=httpx2.Timeout(10, read=0.2))
    with _pieces_apart(pause=0.0) as server:
        async with http:
            for _ in range(2):
                pieces = []
                async with http.stream("GET", server.url) as response:
                    async for piece in response.aiter_raw():
                        pieces.append(piece)
                        await anyio.sleep(0.5)
                assert b"".join(pieces) == b"firstsecond"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_httpcore_a_shorter_read_timeout_on_a_reused_connection_is_kept() -> None:
    # one connection: the first answer is read with a long read timeout, the second
    # waits for data past its own short one and must end by it, not by the first's
    done = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfast")
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 10)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    http = httpx2.AsyncClient(transport=httpcore_transport())
    try:
        async with server, http:
            first = await http.get(url, timeout=httpx2.Timeout(10, read=30))
            assert first.content == b"fast"
            started = asyncio.get_running_loop().time()
            with pytest.raises(httpx2.ReadTimeout):
                await http.get(url, timeout=httpx2.Timeout(10, read=0.3))
            assert asyncio.get_running_loop().time() - started < 5
    finally:
        done.set()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_reads_go_to_the_socket_of_a_plain_stream(emulator: EmulatorServer) -> None:
    import trio

    port = httpx2.URL(emulator.base_url).port
    assert port is not None
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        assert _trio_socket_of(stream) is stream.socket._sock  # type: ignore[attr-defined]
