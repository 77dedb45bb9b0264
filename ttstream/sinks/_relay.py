"""SSERelay: one generation re-emitted to any number of browsers as Server-Sent Events.

The relay is a sink on one side (fed by :func:`~ttstream.sinks.pump`) and an ASGI
application on the other, which browsers read with
``new EventSource(url)``. Feeding never waits for a browser: an item is encoded once
into a frame, kept in a bounded replay buffer, and every connection copies frames from
that buffer at its own pace, so a slow or vanished browser holds up nobody else. A
browser that falls further behind than the buffer skips the frames it lost (their ids
show the gap) and catches up with the newest ones; the final image, the newest frame,
is never skipped.

The frames follow WHATWG HTML, "Server-sent events": a ``retry`` field opens each
connection; each event has an ``id`` (1, 2, 3... in the order fed), so a browser that
reconnects sends ``Last-Event-ID`` and gets only the frames after it; a connection after
the end gets the buffered frames and the end frame, and once it has seen the end frame,
a reconnecting browser is answered ``204 No Content``, which stops ``EventSource``.

Viewers may be restricted (``authorize=``, ``token_secret=``: ``docs/live-previews.md``,
"Who may watch"), a viewer that stops reading is dropped after ``send_timeout`` seconds,
and a viewer may cancel the generation (``on_cancel=``, an HTTP ``DELETE``).

Only anyio primitives are used, so the relay runs on asyncio and trio. The feeding task
and the connections must run in the same event loop.
"""

from __future__ import annotations

import functools
import inspect
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio

from .._bounds import require_int, require_seconds, validate_seconds
from .._browser import frames
from .._browser.audience import ViewerCounts, ViewerGate
from .._browser.frames import Receive, Scope, Send
from .._browser.items import public_message
from .._browser.resume import last_event_id
from .._browser.viewers import FORBIDDEN, Authorize
from .._checks import require_callable
from .._delegate import Delegated
from .._event_types import StreamItem
from .._exceptions import ClosedError, ValidationError
from ..events import Completed

__all__ = ["SSERelay"]

_MAX_ID_DIGITS = 19  # ids this relay issues fit in 64 bits; longer ones are not ours


def _last_event_id(scope: Scope, issued: int) -> int:
    """The ``Last-Event-ID`` request header as an int; 0 (the start) when absent, not
    an id as this relay writes them (ASCII digits, no leading zero), longer than any id
    issued, or above ``issued`` (the newest id this relay assigned: a browser that read
    an earlier relay at the same URL starts over)."""

    def issued_id(text: str) -> int | None:
        if not (text.isascii() and text.isdigit() and len(text) <= _MAX_ID_DIGITS):
            return None
        number = int(text)
        return number if number <= issued and text == str(number) else None

    return last_event_id(scope, issued_id) or 0


class SSERelay:
    """Re-emits one generation to browsers as Server-Sent Events.

    As a sink: ``await pump(stream, relay)``; if the stream fails, ``pump`` calls
    :meth:`fail` and the browsers get the error's message. As an ASGI application:
    ``Route("/events", relay)`` in Starlette or FastAPI, or served on its own. Browsers
    connect with ``GET`` (``new EventSource(url)``); other methods get 405 (DELETE is a
    cancel when ``on_cancel`` is given). A GET of ``<path>/ttstream.js`` (under a
    ``Mount``) answers the browser module, :data:`~ttstream.sinks.BROWSER_MODULE`.

    Each connection gets, as ``text/event-stream``:

    - ``retry: <retry>`` first, the reconnection time in milliseconds;
    - one event per item, with ``id: <n>`` (1, 2, 3...), ``event: partial_image``,
      ``completed`` or ``reconnecting``, and one ``data:`` line of JSON: the metadata
      object of :class:`~ttstream.sinks.WebSocketSink`'s text frames (``type``,
      ``operation``, ``index``, ``size``, ``quality``, ``background``,
      ``output_format``, ``created_at``, ``usage``, ``bytes``, ``media_type``; for
      ``reconnecting``: ``attempt``, ``delay``, ``regenerating``, ``reason``, redacted)
      plus, for images,
      ``"image": "data:image/png;base64,..."`` (the event's own base64; a URL when the
      server answered with one);
    - at the end, one more event with the next id: ``event: end`` with
      ``{"type": "end", "images": <final images relayed>}`` (and ``"cancelled": true``
      after a viewer's cancel), or ``event: error`` with
      ``{"type": "error", "message": "..."}``; then the response ends. A browser's
      ``EventSource`` fires its own ``error`` events on network errors too: those carry
      no ``data``;
    - a comment line (``:``) every ``keepalive`` seconds of silence, so that proxies do
      not time the connection out.

    A connection that sends ``Last-Event-ID: k`` gets the buffered events after ``k``;
    a new connection (no header) gets the buffered events from the oldest, and so does
    one whose ``k`` this relay did not issue (above its newest id, or not a number).
    When ``k`` is the end event's id or later, the answer is ``204 No Content``.
    Feeding never waits for a browser; a browser that falls more than ``replay`` events
    behind skips to the oldest event still buffered. The feeding task and the
    connections must share one event loop (asyncio or trio).

    Memory per viewer: the frames are shared (the replay buffer); a viewer holds at most
    :data:`~ttstream._browser.frames.WRITE_CHUNK` (64 KiB) handed to the server and not
    yet taken by its socket, plus the server's own write buffer (uvicorn: 64 KiB).

    Args:
        replay: how many events the replay buffer keeps for late, slow and reconnecting
            browsers (the end event is kept apart, always). The default, 4, holds the
            three previews and the final image of a generation with
            ``partial_images=3``; each costs its base64 size in memory, shared by all
            connections.
        retry: the reconnection time sent to browsers, in milliseconds.
        keepalive: seconds of silence after which a comment line is sent; ``None``: never.
        authorize: ``authorize(scope, job_key) -> bool`` (or awaitable): whether the
            viewer of this ASGI request may watch; ``False`` answers 403.
        token_secret: with it (bytes, at least 16), a viewer must present a token of
            :func:`~ttstream.sinks.sign_viewer_token` for ``job_key`` (query parameter
            ``token`` or ``Authorization: Bearer``); else 403 with
            :data:`~ttstream._browser.viewers.FORBIDDEN` and nothing else.
        job_key: the job's key, as tokens name it (required with ``token_secret``).
        send_timeout: seconds a viewer may take to read what was sent (> 0): a viewer
            that does not read for that long is dropped (its connection ended, its
            memory released). Default 30.
        on_cancel: called (sync or async) when an allowed viewer sends ``DELETE`` to the
            relay's URL (the browser module's cancel button): it should cancel the task
            running ``pump`` (e.g. ``cancel_scope.cancel``). The relay then ends with
            ``{"type": "end", "images": n, "cancelled": true}`` and answers 202; 409 when
            the relay had already ended. Without it, DELETE gets 405.

    Raises:
        ValidationError: ``replay`` below 1, ``retry`` below 0, ``keepalive`` or
            ``send_timeout`` not a positive number of seconds, ``token_secret`` not bytes
            of at least 16 or without ``job_key``, ``authorize`` or ``on_cancel`` not
            callable. (A ``ValueError`` too.)
        ClosedError: from ``send``: the relay has already ended (also a ``RuntimeError``).
    """

    relays_base64 = True
    """The sink's declaration that it forwards the events' base64 rather than their
    bytes (a :class:`~ttstream.sinks.Base64ForwardingSink`): :func:`~ttstream.sinks.pump`
    keeps a stream that feeds only such sinks as text when pybase64 is missing
    (docs/fast.md, "Choosing the mode per stream")."""

    def __init__(
        self,
        *,
        replay: int = 4,
        retry: int = 3000,
        keepalive: float | None = 15.0,
        authorize: Authorize | None = None,
        token_secret: bytes | None = None,
        job_key: str = "",
        send_timeout: float = 30.0,
        on_cancel: Callable[[], object] | None = None,
    ):
        require_int("replay", replay, 1, "events")
        require_int("retry", retry, 0, "milliseconds")
        validate_seconds("keepalive", keepalive)
        timeout = require_seconds("send_timeout", send_timeout)
        if token_secret is not None and not (isinstance(job_key, str) and job_key):
            raise ValidationError("job_key", job_key, "the job's key (a non-empty str)")
        self.replay = replay
        self.retry = retry
        self.keepalive = keepalive
        self.send_timeout = timeout
        self.job_key = job_key
        self._gate = ViewerGate(authorize, token_secret)
        self._on_cancel = (
            None
            if on_cancel is None
            else require_callable("on_cancel", on_cancel, "None or a function, sync or async")
        )
        self._frames: deque[frames.Frame[int]] = deque(maxlen=replay)
        self._last_id = 0
        self._end: frames.Frame[int] | None = None
        self._images = 0
        self._changed: anyio.Event | None = None  # made on demand: needs a running loop
        self._counts = ViewerCounts()

    def __repr__(self) -> str:
        state = "ended" if self._end is not None else "live"
        return (
            f"<SSERelay {state} last_id={self._last_id} buffered={len(self._frames)} "
            f"connections={self.connections}>"
        )

    connections: Delegated[int] = Delegated("_counts")
    """Connections being served right now."""
    dropped: Delegated[int] = Delegated("_counts")
    """Viewers dropped because they did not read for ``send_timeout`` seconds."""

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 before the first), the end event included."""
        return self._last_id

    @property
    def ended(self) -> bool:
        """Whether the end or error event was emitted; nothing more can be fed."""
        return self._end is not None

    # The sink side.

    async def send(self, event: StreamItem) -> None:
        """Encodes ``event`` into the next frame and wakes the connections; never waits
        for a browser.

        Raises:
            ClosedError: the relay has already ended (also a ``RuntimeError``).
        """
        if self._end is not None:
            raise ClosedError(f"{self!r} has ended: it cannot relay more events")
        self._last_id += 1
        self._frames.append(frames.frame_of(self._last_id, event))
        if isinstance(event, Completed):
            self._images += 1
        self._notify()

    async def fail(self, error: BaseException | str) -> None:
        """Ends the relay with ``event: error`` and ``{"type": "error", "message": ...}``
        (:func:`~ttstream._browser.items.public_message` of the error: redacted, at most
        500 characters; a fixed sentence for a ``SinkError``):
        the generation failed. :func:`~ttstream.sinks.pump` calls this when the stream
        fails. Does nothing if the relay has already ended."""
        if self._end is None:
            self._finish("error", {"type": "error", "message": public_message(error)})

    async def aclose(self) -> None:
        """Ends the relay: ``event: end`` if at least one final image was relayed, else
        ``event: error`` (the generation ended before its final image). Does nothing if
        the relay has already ended. Connections still open send what they have not sent
        yet, then the end event, then end their responses."""
        if self._end is not None:
            return
        if self._images:
            self._finish("end", {"type": "end", "images": self._images})
        else:
            self._finish(
                "error", {"type": "error", "message": "the generation ended before its final image"}
            )

    async def cancel(self) -> bool:
        """Ends the relay with ``{"type": "end", "images": n, "cancelled": true}`` and
        calls ``on_cancel``; what a viewer's DELETE does. ``False`` (and nothing done)
        when the relay had already ended."""
        if self._end is not None:
            return False
        self._finish("end", {"type": "end", "images": self._images, "cancelled": True})
        if self._on_cancel is not None:
            outcome = self._on_cancel()
            if inspect.isawaitable(outcome):
                await outcome
        return True

    def _finish(self, name: str, payload: dict[str, Any]) -> None:
        self._last_id += 1
        self._end = frames.Frame.of(self._last_id, name, payload)
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # The ASGI side.

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serves one browser (ASGI 3). ``lifespan`` is answered, so the relay can be
        the whole application of a server; ``websocket`` connections are refused."""
        cancellable = self._on_cancel is not None
        if await frames.answered_other_than_get(scope, receive, send, allow_delete=cancellable):
            return
        if not await self._gate.allows(scope, self.job_key):
            await frames.plain_response(send, 403, FORBIDDEN)
            return
        if scope.get("method") == "DELETE":
            if await self.cancel():
                await frames.plain_response(send, 202, b"cancelled\n")
            else:
                await frames.plain_response(send, 409, b"the generation has already ended\n")
            return
        after = _last_event_id(scope, self._last_id)
        if self._end is not None and after >= self._end.event_id:
            await frames.plain_response(send, 204, b"")
            return
        if await frames.start_event_stream(scope, send):
            serve = functools.partial(self._serve, send, after)
            await self._counts.watch(receive, self.send_timeout, serve)

    async def _serve(self, send: Send, after: int, guard: frames.ViewerGuard) -> None:
        """Sends the frames after id ``after``, waiting for new ones, until the end;
        each piece bounded by ``guard``."""

        async def write(data: bytes) -> None:
            await frames.write_body(send, data, guard=guard)

        await write(f"retry: {self.retry}\n\n".encode())
        while True:
            frame = next((f for f in self._frames if f.event_id > after), None)
            if frame is not None:
                await frames.write_pieces(send, frame.pieces(), guard=guard)
                after = frame.event_id
                continue
            if self._end is not None:
                await frames.write_pieces(send, self._end.pieces(), more=False, guard=guard)
                return
            if self._changed is None:
                self._changed = anyio.Event()
            changed = self._changed
            if self.keepalive is None:
                await changed.wait()
                continue
            with anyio.move_on_after(self.keepalive) as waited:
                await changed.wait()
            if waited.cancelled_caught:
                await write(b":\n\n")
