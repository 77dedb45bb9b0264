"""aiohttp's errors as httpx2's, with texts that quote no server bytes (docs/errors.md).

httpx-aiohttp lets aiohttp's parser errors escape as ``aiohttp.ClientResponseError`` (a
bad status line, a header without a colon, a NUL in a header, an invalid chunk size,
``Content-Length`` with ``Transfer-Encoding: chunked``), maps every
``aiohttp.ClientConnectionError`` (a refused connection, a server that disconnected) to
``httpx2.ConnectTimeout``, and quotes the server's bytes in its messages. Here each
becomes the ``httpx2.TransportError`` httpcore raises for the same fault, so that the
rest of ttstream sees one transport: a malformed answer is ``httpx2.RemoteProtocolError``,
a broken connection ``httpx2.ConnectError`` or ``httpx2.ReadError``, a timeout stays
a timeout. :func:`ttstream._connect.connection_error` then maps those to the tree, in
one place, for every transport.

aiohttp is never imported here: an error is recognised through the module that is
already loaded when aiohttp raised it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Literal, Protocol

import anyio
import httpx2

__all__ = ["AiohttpBody", "NormalizedStream", "normalized", "safe_text", "without_server_bytes"]

Phase = Literal["connect", "read"]

_MAX_TEXT = 200
_QUOTED_BYTES = re.compile(r"(?:bytearray\()?b['\"]")


def safe_text(text: str) -> str:
    """The part of a transport's message that is its own words: the first line, cut
    before the first quoted bytes (``b'...'``, ``bytearray(b'...')``: where h11 and
    aiohttp quote what they refused), at most 200 characters.
    ``"illegal header line: bytearray(b'...')"`` is ``"illegal header line"``; an
    SSL error's text stays whole."""
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    match = _QUOTED_BYTES.search(first)
    if match is not None:
        first = first[: match.start()]
    return first.strip().rstrip(":,;= ").strip()[:_MAX_TEXT]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions chained to it (``__cause__``, else ``__context__``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def without_server_bytes(exc: BaseException) -> None:
    """Takes the server's bytes out of ``exc``, in place, when it or an exception chained
    to it quotes them (h11 and aiohttp quote the bytes they refused, and a traceback of the
    ttstream error raised ``from exc`` prints every exception of the chain): its message
    becomes :func:`safe_text` of it, and the chain below it is cut."""
    if not any(_QUOTED_BYTES.search(str(link)) for link in _chain(exc)):
        return
    exc.args = (safe_text(str(exc)) or type(exc).__name__,)
    exc.__cause__ = exc.__context__ = None


def _aiohttp_error(exc: BaseException) -> BaseException | None:
    """``exc`` or its ``__cause__`` when it is an aiohttp client error, else ``None``."""
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return None
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, aiohttp.ClientError):
            found: BaseException = candidate
            return found
    return None


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__


def normalize(exc: BaseException, phase: Phase) -> httpx2.TransportError | None:
    """The httpx2 error for an aiohttp error (raw, or already mapped by httpx-aiohttp with
    aiohttp's as its ``__cause__``) raised while ``phase`` (connecting and reading the
    head, or reading the body); ``None`` for anything else, which is left as it is."""
    cause = _aiohttp_error(exc)
    if cause is None:
        return None
    aiohttp = sys.modules["aiohttp"]
    parse_error = cause.__cause__ if cause.__cause__ is not None else cause.__context__
    processing = aiohttp.http_exceptions.HttpProcessingError
    # A body cut short ("Not enough data to satisfy ... length header") is a broken
    # connection; any other parser error in a body is malformed HTTP.
    cut_short = (
        isinstance(parse_error, processing) and "not enough data" in str(parse_error).lower()
    )
    if isinstance(cause, aiohttp.ClientResponseError) or (
        isinstance(cause, aiohttp.ClientPayloadError)
        and isinstance(parse_error, processing)
        and not cut_short
    ):
        detail = getattr(parse_error, "message", None) or getattr(cause, "message", "")
        return httpx2.RemoteProtocolError(
            f"malformed HTTP response ({safe_text(str(detail)) or type(cause).__name__})"
        )
    if _is_timeout(cause):
        if isinstance(exc, httpx2.TimeoutException):
            return exc
        kind = httpx2.ConnectTimeout if phase == "connect" else httpx2.ReadTimeout
        return kind(f"{phase} timeout")
    text = safe_text(str(cause)) or type(cause).__name__
    if isinstance(cause, aiohttp.ClientPayloadError):
        return httpx2.ReadError(
            "peer closed connection without sending complete message body" if cut_short else text
        )
    return (httpx2.ConnectError if phase == "connect" else httpx2.ReadError)(text)


@contextlib.contextmanager
def normalized(phase: Phase) -> Iterator[None]:
    """Raises the httpx2 error of an aiohttp error escaping the block (see
    :func:`normalize`), its original as the ``__cause__``."""
    try:
        yield
    except Exception as exc:
        mapped = normalize(exc, phase)
        if mapped is None or mapped is exc:
            raise
        raise mapped from _aiohttp_error(exc)


class AiohttpBody(Protocol):
    """What :class:`NormalizedStream` uses of aiohttp's body (``aiohttp.StreamReader``)."""

    async def read(self, n: int = -1) -> bytes: ...

    def set_exception(self, exc: BaseException) -> None: ...


class NormalizedStream(httpx2.AsyncByteStream):
    """An aiohttp response body whose errors are httpx2's (see :func:`normalize`);
    ``on_close`` runs once, after the body is closed (it frees the pool slot).

    Each read is bounded by ``read_timeout`` seconds here too (``httpx2.ReadTimeout``
    past it): aiohttp drops its own read timer when its parser fails in the middle of
    a body (an invalid chunk size after the first chunks) and would then wait for ever.

    With ``body`` (aiohttp's reader of this response), the body is read from it directly,
    ``read_size`` bytes at most at a time, instead of through ``inner``'s iterator, and
    the reads are bounded by one timer per stream: it sleeps until the pending read's
    deadline and, once a read has waited ``read_timeout`` seconds, ends it with
    ``httpx2.ReadTimeout`` through ``body.set_exception``. Without ``body``, each read
    of ``inner`` is bounded by a cancel scope of its own.
    """

    def __init__(
        self,
        inner: httpx2.AsyncByteStream,
        on_close: Callable[[], None],
        read_timeout: float | None = None,
        *,
        body: AiohttpBody | None = None,
        read_size: int = 64 * 1024,
    ) -> None:
        self._inner = inner
        self._on_close: Callable[[], None] | None = on_close
        self._read_timeout = read_timeout
        self._body = body
        self._read_size = read_size
        self._timer: asyncio.TimerHandle | None = None
        self._since: float | None = None  # when the pending read of ``body`` began

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._body is None:
            async for chunk in self._bounded_reads():
                yield chunk
            return
        body, size = self._body, self._read_size
        loop = asyncio.get_running_loop()
        if self._read_timeout is not None:
            self._timer = loop.call_later(self._read_timeout, self._check, loop)
        try:
            with normalized("read"):
                while True:
                    self._since = loop.time()
                    chunk = await body.read(size)
                    self._since = None
                    if not chunk:
                        return
                    yield chunk
        finally:
            self._stop_timer()

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer: ends a read pending for ``read_timeout`` seconds, else sleeps until
        the pending read's deadline (``read_timeout`` from now when none is pending)."""
        assert self._read_timeout is not None
        assert self._body is not None
        since, now = self._since, loop.time()
        if since is not None and now - since >= self._read_timeout:
            self._timer = None
            self._body.set_exception(httpx2.ReadTimeout(f"no data for {self._read_timeout} s"))
            return
        self._timer = loop.call_at(
            (now if since is None else since) + self._read_timeout, self._check, loop
        )

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    async def _bounded_reads(self) -> AsyncIterator[bytes]:
        chunks = aiter(self._inner)
        with normalized("read"):
            while True:
                with anyio.move_on_after(self._read_timeout) as waited:
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        return
                if waited.cancelled_caught:
                    raise httpx2.ReadTimeout(f"no data for {self._read_timeout} s")
                yield chunk

    async def aclose(self) -> None:
        self._stop_timer()
        try:
            with normalized("read"):
                await self._inner.aclose()
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()
