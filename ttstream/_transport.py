"""The ``httpx2.AsyncClient`` ttstream creates when the caller passes none.

With the ``aiohttp`` extra (``pip install 'ttstream[aiohttp]'``, which brings
``httpx-aiohttp``), requests made on asyncio go through aiohttp's transport, which reads
the socket in larger pieces and parses HTTP in C; on trio (which aiohttp does not run on)
the same client uses httpcore, httpx's own transport. The choice is made per request,
from the running event loop, so one client serves both. Nothing process-wide changes:
only the client ttstream creates is affected; a client the caller passes is used as it
is. Measurements: ``benchmarks/RESULTS.md``; see ``docs/fast.md``.

``httpx-aiohttp`` (and with it aiohttp, which builds two SSL contexts when imported) is
imported when the first request is sent on asyncio, not when ttstream is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import math
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import httpcore2
import httpx2

from ._transport_errors import NormalizedStream, normalized

if TYPE_CHECKING:
    from httpx_aiohttp.httpx2 import AiohttpTransport
    from httpx_aiohttp.httpx2.transport import AiohttpResponseStream

__all__ = ["AIOHTTP", "BackendTransport", "http_client", "httpcore_transport"]

AIOHTTP = importlib.util.find_spec("httpx_aiohttp") is not None
"""Whether the ``aiohttp`` extra is installed (found without importing it)."""


@functools.cache
def _aiohttp() -> tuple[type[AiohttpTransport], type[AiohttpResponseStream]] | None:
    """httpx-aiohttp's transport and response stream classes, imported on first use;
    ``None`` when it cannot be imported (an httpx-aiohttp without httpx2 support)."""
    try:
        from httpx_aiohttp.httpx2 import AiohttpTransport as Transport
        from httpx_aiohttp.httpx2.transport import AiohttpResponseStream as Stream
    except ImportError:
        return None
    return Transport, Stream


READ_SIZE = 256 * 1024
"""The largest piece an aiohttp response body is handed over in, in bytes (httpx-aiohttp's
own default is 16 KiB; what the larger pieces save: ``docs/fast.md``, "The transport").
Set on each response, not on the class.
Also the smallest socket read of httpcore's connections in the client ttstream creates
(httpcore's own is 64 KiB, which anyio serves by cutting asyncio's 256 KiB receives)."""


class BackendTransport(httpx2.AsyncBaseTransport):
    """aiohttp's transport for requests made on asyncio, httpcore's on any other
    event loop (trio). Each is made on first use and closed with this one."""

    def __init__(self, limits: httpx2.Limits) -> None:
        self._limits = limits
        self._asyncio: httpx2.AsyncBaseTransport | None = None
        self._other: httpx2.AsyncBaseTransport | None = None
        self._slots: anyio.Semaphore | None = None  # the aiohttp pool's, made on first use

    def _transport(self) -> httpx2.AsyncBaseTransport:
        if _on_asyncio() and (aiohttp := _aiohttp()) is not None:
            if self._asyncio is None:
                self._asyncio = aiohttp[0](limits=self._limits)
            return self._asyncio
        if self._other is None:
            self._other = httpcore_transport(limits=self._limits)
        return self._other

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        transport = self._transport()
        aiohttp = _aiohttp() if transport is self._asyncio else None
        if aiohttp is None:
            return await transport.handle_async_request(request)
        release = await self._pool_slot(request)
        try:
            with normalized("connect"):
                response = await transport.handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, aiohttp[1])
        response.stream.CHUNK_SIZE = READ_SIZE  # this response's, not the class's
        read_timeout = request.extensions.get("timeout", {}).get("read")
        # aiohttp's reader of the body, read directly (no generator layer of
        # httpx-aiohttp's per chunk); where httpx-aiohttp keeps it elsewhere, its
        # iterator is read instead, the same bytes
        body = getattr(getattr(response.stream, "_aiohttp_response", None), "content", None)
        response.stream = NormalizedStream(
            response.stream, release, read_timeout, body=body, read_size=READ_SIZE
        )
        return response

    async def _pool_slot(self, request: httpx2.Request) -> Callable[[], None]:
        """Waits for one of the pool's ``max_connections`` (at most the request's ``pool``
        timeout) and answers the function that frees it. aiohttp counts a wait for a
        connection in its connect timeout; here it is ``httpx2.PoolTimeout``, as on
        httpcore (docs/errors.md)."""
        limit = self._limits.max_connections
        if limit is None:
            return lambda: None
        if self._slots is None:
            self._slots = anyio.Semaphore(limit)
        slots = self._slots
        seconds = request.extensions.get("timeout", {}).get("pool")
        with anyio.move_on_after(seconds):
            await slots.acquire()
            released = False

            def release() -> None:
                nonlocal released
                if not released:
                    released = True
                    slots.release()

            return release
        raise httpx2.PoolTimeout(
            f"no connection free within {seconds} s (max_connections={limit} in use)"
        )

    async def aclose(self) -> None:
        for transport in (self._asyncio, self._other):
            if transport is not None:
                await transport.aclose()


def _trio_socket_of(held: object) -> socket.socket | None:
    """The socket of ``held`` when it is a plain ``trio.SocketStream`` (not TLS)."""
    import trio  # running on trio: imported already

    if not isinstance(held, trio.SocketStream):
        return None
    raw = getattr(held.socket, "_sock", None)  # trio's socket wraps the stdlib one there
    return raw if isinstance(raw, socket.socket) else None


async def _read_trio_socket(sock: socket.socket, max_bytes: int, seconds: float | None) -> bytes:
    """One ``recv`` of at most ``max_bytes`` from a trio stream's socket, within
    ``seconds`` (``None``: no bound), after a yield to the scheduler (trio's
    checkpoint) rather than before returning, so the bytes are handed over at once.

    Raises:
        httpcore2.ReadTimeout: no data within ``seconds``.
        httpcore2.ReadError: the socket failed or was closed while waiting.
    """
    import trio

    with trio.move_on_after(math.inf if seconds is None else seconds):
        await trio.lowlevel.checkpoint()
        while True:
            try:
                return sock.recv(max_bytes)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise httpcore2.ReadError(exc) from exc
            try:
                await trio.lowlevel.wait_readable(sock)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise httpcore2.ReadError(exc) from exc
    raise httpcore2.ReadTimeout(TimeoutError())


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio, or no event loop
        return False
    return True


def http_client(**kwargs: Any) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient(**kwargs)``, on aiohttp's transport for asyncio when the
    ``aiohttp`` extra is installed (httpcore on trio), else httpcore with wide socket
    reads: the client ttstream creates when given none. Public as
    ``ttstream.http_client``, for an ``http_client=`` of your own options that keeps
    this transport (docs/fast.md, "The transport").

    ``kwargs`` are ``httpx2.AsyncClient``'s (``timeout``, ``follow_redirects``,
    ``limits``...), except ``transport``.
    """
    if not AIOHTTP:
        options = {key: kwargs[key] for key in _TRANSPORT_OPTIONS if key in kwargs}
        return httpx2.AsyncClient(transport=httpcore_transport(**options), **kwargs)
    limits = kwargs.pop("limits", httpx2.Limits(max_connections=100, max_keepalive_connections=20))
    return httpx2.AsyncClient(transport=BackendTransport(limits), **kwargs)


_TRANSPORT_OPTIONS = ("verify", "cert", "trust_env", "http1", "http2", "limits")


def httpcore_transport(**kwargs: Any) -> httpx2.AsyncHTTPTransport:
    """An ``httpx2.AsyncHTTPTransport(**kwargs)`` (httpcore) whose connections read the
    socket at least :data:`READ_SIZE` bytes at a time: the transport of the client
    ttstream creates when aiohttp's is not used (trio, or no ``aiohttp`` extra). Only
    this transport's reads change, nothing process-wide; a transport that does not hold
    httpcore's pool where expected is returned as it is (reads of httpcore's size)."""
    transport = httpx2.AsyncHTTPTransport(**kwargs)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore2.AsyncConnectionPool) and backend is not None:
        pool._network_backend = _WideReads(backend)
    return transport


class _WideReads(httpcore2.AsyncNetworkBackend):
    """httpcore's network backend, with every read asking for :data:`READ_SIZE` bytes at
    least: on asyncio anyio then hands over what the event loop received (up to 256 KiB)
    in one piece instead of slicing it into 64 KiB ones, one loop turn each; on trio the
    socket is read that much at once. Each read still waits for the first byte only."""

    def __init__(self, inner: httpcore2.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore2.AsyncNetworkStream:
        return _WideStream(await self._inner.connect_tcp(*args, **kwargs))

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore2.AsyncNetworkStream:
        return _WideStream(await self._inner.connect_unix_socket(*args, **kwargs))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _WideStream(httpcore2.AsyncNetworkStream):
    """On asyncio, where httpcore's stream holds an anyio byte stream, each read goes to
    that stream directly, bounded by one timer per connection: it sleeps until the
    pending read's deadline and, once a read has waited its ``timeout``, shuts the
    socket's receiving side, so that the read ends and raises ``httpcore2.ReadTimeout``
    (httpcore's own read opens two context managers and a cancel scope with a timer of
    its own per read: ``benchmarks/RESULTS.md``). The errors are httpcore's: a broken or
    closed stream is ``httpcore2.ReadError``, the end of the stream ``b""``.

    On trio, where httpcore's stream holds a plain ``trio.SocketStream``, each read goes
    to its socket (:func:`_read_trio_socket`): the bytes received are not held across a
    yield to the scheduler (trio's own read yields after the ``recv``: at 200 streams
    that kept a read's bytes, 0.26 MB, per stream alive). Elsewhere (TLS on trio, or a
    stream of another shape), httpcore's own read is used."""

    def __init__(self, inner: httpcore2.AsyncNetworkStream) -> None:
        self._inner = inner
        self._direct: anyio.abc.ByteReceiveStream | None = None
        self._socket = inner.get_extra_info("socket")
        held = getattr(inner, "_stream", None)  # httpcore2's AnyIOStream keeps it there
        on_asyncio = _on_asyncio()
        if on_asyncio and isinstance(held, anyio.abc.ByteReceiveStream) and self._socket:
            self._direct = held
        self._trio_socket = None if on_asyncio else _trio_socket_of(held)
        self._timer: asyncio.TimerHandle | None = None
        self._since: float | None = None  # when the pending read began
        self._timeout = 0.0
        self._expired = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 (httpcore's interface)
        stream = self._direct
        if stream is None:
            if self._trio_socket is not None:
                return await _read_trio_socket(
                    self._trio_socket, max(max_bytes, READ_SIZE), timeout
                )
            return await self._inner.read(max(max_bytes, READ_SIZE), timeout)
        if timeout is not None:
            loop = asyncio.get_running_loop()
            self._since, self._timeout = loop.time(), timeout
            deadline = self._since + timeout
            # a timer set for a longer timeout of an earlier read is moved forward
            if self._timer is None or self._timer.when() > deadline:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = loop.call_at(deadline, self._check, loop)
        try:
            return await stream.receive(max(max_bytes, READ_SIZE))
        except anyio.EndOfStream:
            if self._expired:
                raise httpcore2.ReadTimeout(TimeoutError()) from None
            return b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            if self._expired:
                raise httpcore2.ReadTimeout(TimeoutError()) from None
            raise httpcore2.ReadError(exc) from exc
        finally:
            self._since = None

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer: ends a read pending for its timeout; sleeps until the pending
        read's deadline; stops while no read is pending (the next read starts it)."""
        since, now = self._since, loop.time()
        self._timer = None
        if since is None:
            return
        if now - since < self._timeout:
            self._timer = loop.call_at(since + self._timeout, self._check, loop)
            return
        self._expired = True
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RD)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        await self._inner.aclose()

    async def start_tls(self, *args: Any, **kwargs: Any) -> httpcore2.AsyncNetworkStream:
        return _WideStream(await self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)
