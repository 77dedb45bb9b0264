"""A helper for tests: a raw TCP server on 127.0.0.1 whose every byte the test writes.

It runs its own asyncio loop in a daemon thread, so tests on asyncio and on trio use it
alike. ``handler(head, reader, writer)`` gets each request's head (request line and
headers, bytes) and answers with whatever bytes it wants; ``heads`` keeps every head
received, for assertions on what the client sent.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import zlib
from collections.abc import Awaitable, Callable

Handler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """``with RawServer(handler) as server: server.url`` (``http://127.0.0.1:<port>``)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.heads: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.heads.append(head)
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                await self.handler(head, reader, writer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    def __enter__(self) -> RawServer:
        self._thread.start()
        assert self._ready.wait(10), "the raw server did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


def response_head(status: int, headers: dict[str, str]) -> bytes:
    """``HTTP/1.1 <status>`` and ``headers``, ending in the blank line."""
    lines = [f"HTTP/1.1 {status} X", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(status: int, headers: dict[str, str], body: bytes) -> Handler:
    """A handler answering every request with this status, these headers and ``body``
    (with its ``content-length``)."""
    head = response_head(status, {**headers, "content-length": str(len(body))})

    async def handler(_: bytes, __: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head + body)

    return handler


def gzip_of(prefix: bytes, filler: bytes, size: int, suffix: bytes = b"") -> bytes:
    """gzip of ``prefix``, then ``filler`` repeated to ``size`` bytes, then ``suffix``,
    compressed piece by piece (a bomb of ``size`` bytes costs little to build)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [compressor.compress(prefix)]
    block = filler * (1024 * 1024 // len(filler))
    for _ in range(size // len(block)):
        parts.append(compressor.compress(block))
    parts += [compressor.compress(suffix), compressor.flush()]
    return b"".join(parts)


def gzip_twice(data: bytes) -> bytes:
    """``Content-Encoding: gzip, gzip``: gzip of the gzip of ``data``."""
    return gzip.compress(gzip.compress(data))


def request_path(head: bytes) -> str:
    """The target of a request head: ``/v1/images/generations``."""
    return head.split(b" ", 2)[1].decode("latin-1")


def routes(table: dict[str, tuple[int, dict[str, str], bytes]]) -> Handler:
    """A handler answering each path of ``table`` with its (status, headers, body), and
    any other path with 404."""

    async def handler(head: bytes, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, headers, body = table.get(request_path(head), (404, {}, b""))
        writer.write(response_head(status, {**headers, "content-length": str(len(body))}) + body)

    return handler
