"""The frames and the ASGI plumbing both relays share (:class:`~ttstream.sinks.SSERelay`
and :class:`~ttstream.redis.RedisRelay`), so that their bytes are the same, byte for byte:
the response headers, one encoded event (:class:`Frame`), the frame of a stream item
(:func:`frame_of`), the preamble that answers what a relay serves no stream to (and
serves the browser module, :data:`BROWSER_MODULE`, at ``<mount>/ttstream.js``), and the
bounded writer of a viewer's bytes (:func:`write_body`). See ``docs/live-previews.md``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio

from .._event_types import StreamItem
from .._reconnect import Reconnecting
from .._secrets import holds_secret, redact
from ..events import Completed, InlineImage, image_of
from .items import item_metadata, strict_json

__all__ = [
    "BROWSER_MODULE",
    "SSE_HEADERS",
    "WRITE_CHUNK",
    "Frame",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "ViewerGuard",
    "answered_other_than_get",
    "frame_of",
    "plain_response",
    "start_event_stream",
    "write_body",
    "write_pieces",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass the frames through as they come
]


BROWSER_MODULE = Path(__file__).with_name("static") / "ttstream.js"
"""The browser module (an ES module, no dependency): ``<ttstream-preview src="...">`` and
``connect(src)``; the relays serve it at ``<mount>/ttstream.js``. Shipped in the wheel,
for applications that bundle or serve it themselves (``docs/live-previews.md``)."""

WRITE_CHUNK = 64 * 1024
"""Bytes handed to the server per ``send``: a frame of several MiB is written in pieces
of this size, each awaited, so that a viewer that does not read holds at most one piece
(plus the server's own write buffer) in memory, not a copy of the whole frame."""

_MODULE_HEADERS = [
    (b"content-type", b"text/javascript; charset=utf-8"),
    (b"cache-control", b"public, max-age=300"),
    (b"x-content-type-options", b"nosniff"),
]

_Id = TypeVar("_Id", int, str)


class Frame(Generic[_Id]):
    """One encoded event: its id (a counter, or a Redis entry id for ``RedisRelay``) and
    the bytes every connection sends."""

    __slots__ = ("_data", "_pieces", "event_id")

    def __init__(self, event_id: _Id, event: str, data: bytes) -> None:
        self.event_id: _Id = event_id
        self._data: bytes | None = data
        self._pieces: tuple[bytes, ...] | None = None

    @property
    def data(self) -> bytes:
        """The frame's bytes (joined again when only its :meth:`pieces` are kept)."""
        if self._data is not None:
            return self._data
        assert self._pieces is not None
        return b"".join(self._pieces)

    def pieces(self) -> tuple[bytes, ...]:
        """The bytes in pieces of :data:`WRITE_CHUNK`, cut once and shared by every
        connection that sends the frame (:func:`write_pieces`); from then on the frame
        keeps only them, the same memory as its bytes."""
        if self._pieces is None:
            self._pieces = tuple(_cut(self.data) or [b""])
            self._data = None
        return self._pieces

    @classmethod
    def in_pieces(cls, event_id: _Id, event: str, pieces: tuple[bytes, ...]) -> Frame[_Id]:
        """A frame made in its pieces (at most :data:`WRITE_CHUNK` bytes each), never
        joined unless :attr:`data` is asked for."""
        frame = cls(event_id, event, b"")
        frame._data, frame._pieces = None, pieces
        return frame

    @classmethod
    def of(cls, event_id: _Id, event: str, payload: dict[str, Any]) -> Frame[_Id]:
        return cls(event_id, event, _encode(f"id: {event_id}\nevent: {event}\ndata: ", payload))


def _cut(data: bytes) -> list[bytes]:
    """``data`` in pieces of :data:`WRITE_CHUNK` bytes, the last one shorter (none for
    empty data)."""
    with memoryview(data) as view:
        return [bytes(view[at : at + WRITE_CHUNK]) for at in range(0, len(data), WRITE_CHUNK)]


def _encode(head: str, payload: dict[str, Any]) -> bytes:
    """``head``, the strict JSON of ``payload`` and the blank line."""
    return f"{head}{strict_json(payload)}\n\n".encode()


def _spliced(head: str, payload: dict[str, Any], image: InlineImage) -> tuple[bytes, ...]:
    """The pieces of ``head``, the strict JSON of ``payload`` with ``image``'s base64
    spliced in as the value of a last member ``"image"`` (whose text
    ``payload["image"]`` begins), and the blank line: at most :data:`WRITE_CHUNK` bytes
    each, the base64 encoded (or copied) piece by piece, never whole and never as a str."""
    body = strict_json(payload)
    assert body.endswith('"}')
    start, end = f"{head}{body[:-2]}".encode(), b'"}\n\n'
    pieces = _cut(start)
    heads = len(pieces)
    pieces += image.utf8_pieces((WRITE_CHUNK - len(pieces[-1])) // 4 * 4, WRITE_CHUNK)
    if len(pieces) > heads and len(pieces[heads - 1]) + len(pieces[heads]) <= WRITE_CHUNK:
        pieces[heads - 1 : heads + 1] = [pieces[heads - 1] + pieces[heads]]
    if len(pieces[-1]) + len(end) <= WRITE_CHUNK:
        pieces[-1] += end
    else:
        pieces.append(end)
    return tuple(pieces)


def frame_of(event_id: _Id, item: StreamItem) -> Frame[_Id]:
    """The frame of one item. An image's ``image`` member is a ``data:`` URL made from
    the event's own base64, spliced in as bytes (encoded once when the event holds the
    decoded image, copied once when it holds base64 known to need no JSON escaping),
    or the image's URL when the server answered with one; ``null`` when the base64
    holds a key (a server echoed it into the image). Byte for byte what ``json.dumps``
    of the whole object gives (``docs/fast.md``, "Relay frames")."""
    metadata = item_metadata(item)
    name = str(metadata["type"])
    head = f"id: {event_id}\nevent: {name}\ndata: "
    if isinstance(item, Reconnecting):
        return Frame(event_id, name, _encode(head, metadata))
    image = image_of(item)
    prefix = f"data:{metadata['media_type']};base64,"
    if image is None:
        url = item.url if isinstance(item, Completed) else None  # previews have none
        metadata["image"] = url if url is None else redact(url)  # the server's text
        return Frame(event_id, name, _encode(head, metadata))
    if not image.verbatim:  # text that json.loads unescaped: let json write it
        text = image.text()
        if holds_secret([text.encode("utf-8", "surrogatepass")]):
            return _without_image(event_id, name, head, metadata)
        metadata["image"] = prefix + text
        return Frame(event_id, name, _encode(head, metadata))
    metadata["image"] = prefix
    pieces = _spliced(head, metadata, image)
    if holds_secret(pieces):
        return _without_image(event_id, name, head, metadata)
    return Frame.in_pieces(event_id, name, pieces)


def _without_image(event_id: _Id, name: str, head: str, metadata: dict[str, Any]) -> Frame[_Id]:
    """The frame of an image whose base64 holds a key (``ttstream._secrets.holds_secret``:
    a server echoed it there, where no redaction can take it out without breaking the
    image): its metadata with ``"image": null``, as for an image that never came."""
    metadata["image"] = None
    return Frame(event_id, name, _encode(head, metadata))


async def answered_other_than_get(
    scope: Scope, receive: Receive, send: Send, *, allow_delete: bool = False
) -> bool:
    """Answers what a relay serves no stream to: ``lifespan`` (so a relay can be a whole
    application), ``websocket`` (refused), a GET of a path ending in ``/ttstream.js``
    (the browser module, :data:`BROWSER_MODULE`) and methods other than GET and HEAD
    (405; with ``allow_delete``, DELETE is left to the caller: a viewer's cancel).
    ``True`` when it answered; the one preamble of :class:`SSERelay` and ``RedisRelay``."""
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
        return True
    if kind == "websocket":
        await send({"type": "websocket.close", "code": 1003, "reason": ""})
        return True
    if is_browser_module(scope):
        await send_browser_module(scope, send)
        return True
    allowed = ("GET", "HEAD", "DELETE") if allow_delete else ("GET", "HEAD")
    if scope.get("method", "GET") not in allowed:
        allow = ", ".join(allowed).encode()
        await plain_response(send, 405, b"only " + allow, [(b"allow", allow)])
        return True
    return False


def is_browser_module(scope: Scope) -> bool:
    """Whether the request is a GET (or HEAD) of ``<anything>/ttstream.js``."""
    path = scope.get("path", "")
    method = scope.get("method", "GET")
    return isinstance(path, str) and path.endswith("/ttstream.js") and method in ("GET", "HEAD")


_module_bytes: list[bytes] = []  # read once, on first use


async def send_browser_module(scope: Scope, send: Send) -> None:
    """Answers with :data:`BROWSER_MODULE` (``text/javascript``, cached 5 minutes)."""
    if not _module_bytes:
        _module_bytes.append(await anyio.Path(BROWSER_MODULE).read_bytes())
    body = _module_bytes[0]
    headers = [*_MODULE_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    head = scope.get("method") == "HEAD"
    await send({"type": "http.response.body", "body": b"" if head else body})


class ViewerGuard:
    """The one helper task of a viewer's response (:meth:`run`, in the viewer's task
    group: :meth:`~ttstream._browser.audience.ViewerCounts.watch`). It cancels that
    group when the browser disconnects (``http.disconnect``) before its response is
    sent, and when a piece handed to the server has not been taken within
    ``send_timeout`` seconds (the viewer does not read). A piece costs one clock
    read (:attr:`since`) instead of a timer of its own: at 100 viewers the timers of a
    deadline per piece were most of SSERelay's CPU above a raw forwarder's
    (benchmarks/RESULTS.md). Made inside the event loop that serves the viewer.

    The waits for the deadline and for ``http.disconnect`` are one: ``receive()``
    under a cancel scope whose deadline is the pending piece's (or ``send_timeout``
    from now when none is pending), so it is cancelled and called again at most twice
    every ``send_timeout`` seconds while the viewer reads. The server's ``receive()``
    must let that cancellation through (uvicorn's and Hypercorn's do); an
    ``http.disconnect`` answered as the deadline passed is checked by asking again.
    """

    def __init__(self, receive: Receive, send_timeout: float) -> None:
        self.send_timeout = send_timeout
        self.expired = False
        """Whether :meth:`run` ended the viewer: a piece waited ``send_timeout`` seconds."""
        self.clock = _event_loop_clock()
        """The event loop's clock (the one anyio's deadlines are on)."""
        self.since: float | None = None
        """When the piece being sent was handed over; ``None`` while none is pending."""
        self._receive = receive
        self._served = False
        self._running = True

    async def run(self, scope: anyio.CancelScope) -> None:
        """Watches the viewer until :meth:`stop`; cancels ``scope`` (the viewer's task
        group) on a disconnect or a piece not taken in time."""
        timeout = self.send_timeout
        try:
            while not self._served:
                since, now = self.since, self.clock()
                if since is not None and now - since >= timeout:
                    self.expired = True
                    scope.cancel()
                    return
                deadline = (now if since is None else since) + timeout
                message = None  # stays None when the deadline cancelled receive()
                with anyio.CancelScope(deadline=deadline) as waiting:
                    message = await self._receive()
                if message is None or message["type"] != "http.disconnect":
                    continue
                if self._served:
                    return
                if not waiting.cancel_called:
                    scope.cancel()
                    return
                # The deadline passed as it came: a server may have answered the
                # cancellation with it (gunicorn's ASGI worker did). Ask again: a real
                # disconnect is answered again at once (ASGI: every receive() after it).
        finally:
            self._running = False

    async def stop(self, scope: anyio.CancelScope) -> None:
        """Ends :meth:`run` once the response is sent. A server that answers a pending
        ``receive()`` once the response is complete (uvicorn answers it
        ``http.disconnect``) lets it return by itself within one checkpoint; else
        ``scope`` (the viewer's task group) is cancelled. Not cancelled at once because
        on asyncio anyio's ``CancelScope.cancel()``, called from a task, formats that
        task's repr: tens of microseconds per viewer."""
        self._served = True
        await anyio.lowlevel.checkpoint()
        if self._running:
            scope.cancel()


def _event_loop_clock() -> Callable[[], float]:
    """The running event loop's clock, the one anyio's deadlines are on, looked up
    once (``anyio.current_time`` finds the backend on every call). The standard
    library's loops read ``time.monotonic()`` behind a Python method: it is called
    directly."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio
        return anyio.current_time
    if getattr(loop.time, "__func__", None) is asyncio.BaseEventLoop.time:
        return time.monotonic  # not patched on the loop either (test clocks are)
    return loop.time


async def write_body(send: Send, data: bytes, *, more: bool = True, guard: ViewerGuard) -> None:
    """:func:`write_pieces` of ``data`` cut in pieces of :data:`WRITE_CHUNK` bytes."""
    await write_pieces(send, _cut(data) or [b""], more=more, guard=guard)


async def write_pieces(
    send: Send, pieces: Sequence[bytes], *, more: bool = True, guard: ViewerGuard
) -> None:
    """Sends ``pieces`` as response body, a message each (``more``: whether body
    follows the last one), each bounded by ``guard``: the server's send waits while the
    viewer's socket is full, and a piece not taken in time ends the viewer
    (:meth:`ViewerGuard.run`). A frame's are the pieces it cut once for every
    connection (:meth:`Frame.pieces`)."""
    # each piece's start is noted before it is handed over, and nothing is pending
    # once the last one was taken
    clock = guard.clock
    last = len(pieces)
    try:
        for number, piece in enumerate(pieces, 1):
            guard.since = clock()
            await send(
                {"type": "http.response.body", "body": piece, "more_body": more or number < last}
            )
    finally:
        guard.since = None


async def start_event_stream(scope: Scope, send: Send) -> bool:
    """Answers ``200`` with :data:`SSE_HEADERS`. Returns ``False`` for a ``HEAD``
    request (its empty body is sent: nothing follows), ``True`` when the events follow."""
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    if scope.get("method") == "HEAD":
        await send({"type": "http.response.body", "body": b""})
        return False
    return True


async def plain_response(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])]
    if status == 204:
        head = []
    else:
        head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """ASGI lifespan: nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
