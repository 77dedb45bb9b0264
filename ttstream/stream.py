"""ImageStream: one generation (or edit) as an async iterator of typed events.

The connection and its reconnection belong to :class:`~ttstream.EventSource`; an
``ImageStream`` holds only the meaning of the events (an interpreter: see
``ttstream._interpret``): typed events, the count of completed images, the last
preview, the opt-in regeneration, and the non-streaming answers of the dall-e models.

Reading is driven by the consumer: a chunk is read from the socket only when every event
decoded so far has been delivered, so nothing is read beyond one network chunk past the
event being delivered and TCP flow control slows the server down to the consumer's pace
(docs/sse.md, "Backpressure").

The response is closed, and its connection released, on every way out: the last
expected image (whatever the server sends after it), leaving ``async with``, ``break``
(through ``aclose()``), an exception, a cancelled scope, the overall deadline. Closing
is shielded from cancellation and bounded in time (``ttstream._bounds``).
"""

from __future__ import annotations

import decimal
import enum
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeAlias, TypeVar

import attrs
import httpx2
from anyio.abc import AsyncResource

from ._base64 import decode_on_arrival
from ._body import read_body
from ._bounds import Deadline, close_bounded
from ._connect import connection_error
from ._cost import estimate_cost
from ._event_types import Event, StreamItem
from ._eventsource import EventSource
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClosedError,
    IncompleteStreamError,
)
from ._interpret import Interpreter
from ._otel import Generation, observed
from ._reconnect import Reconnecting
from ._secrets import redact
from .events import Completed, PartialImage, Usage, decode_now, loads_body, parse_response
from .sse import Comment

__all__ = ["Event", "ImageStream", "Start", "StreamItem"]

Start: TypeAlias = "Callable[[bool], Awaitable[EventSource | httpx2.Response]]"
"""Starts the operation, once, given whether to decode images on arrival: an
:class:`EventSource` for a stream, or the 2xx response of a non-streaming request (with
retries done)."""
_T = TypeVar("_T")


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    ENDED = "closed"


class ImageStream(AsyncResource):
    """The events of one generation or edit: :class:`PartialImage` previews, then one
    :class:`Completed` per image (``n`` of them), and a :class:`Reconnecting` notice
    whenever the stream reconnects.

    Use it as ``async with client.generate(...) as stream: async for event in stream``.
    Iterating without ``async with`` works too and closes the response at the end of the
    events or on an error; call :meth:`aclose` when leaving the loop early. A stream is
    used once: entering or iterating it again after it ended raises
    :class:`~ttstream.ClosedError` (a ``TTStreamError``) and sends nothing.

    Non-streaming requests (dall-e models, ``stream=False``) yield their images as
    ``Completed`` events, so one loop serves every model.

    Errors raised while iterating:
        APIStatusError: the server answered with an HTTP error (after retries).
        APIConnectionError, APITimeoutError: the request could not be sent (after
            retries); or a timeout fired mid-stream with no reconnection left, or the
            overall ``deadline`` passed (``timeout="deadline"``), with ``last_partial``.
        ProtocolError: a stream request answered with a ``Content-Type`` other than
            ``text/event-stream``; a non-streaming answer that is not the documented JSON.
        StreamError: the server sent an error event.
        MalformedEventError: an event's data is not valid JSON or has wrong fields.
        EventTooLargeError: an event (or a non-streaming body) passed ``max_event_bytes``.
        IncompleteStreamError: the body ended, or the connection broke, before every
            completed image arrived and no reconnection was allowed or left;
            ``last_partial`` holds the last preview.
        TTStreamError: the stream was used again after it ended.
    """

    def __init__(
        self,
        start: Start,
        interpreter: Interpreter,
        *,
        operation: str,
        max_body_bytes: int,
        deadline: float | None,
    ) -> None:
        self._start = start
        self._interpreter = interpreter
        self._operation = operation
        self._max_body_bytes = max_body_bytes
        self._deadline = Deadline(deadline)
        self._state = _State.NEW
        self._source: EventSource | None = None
        self._ready: deque[Completed] | None = None  # the images of a non-streaming answer
        self._request_id: str | None = None
        self.decode_images: bool | None = None
        """Whether images are decoded while they arrive (docs/fast.md): ``None`` (the
        default) decides when the stream starts: decoded; :func:`~ttstream.sinks.pump`
        sets it when every sink only forwards base64
        (:class:`~ttstream.sinks.Base64ForwardingSink`). Set it before the stream starts.
        Unless ``False``, every image is decoded by the time its event is delivered, so
        an image that is not valid base64 raises :class:`~ttstream.MalformedEventError`
        from the iteration; with ``False``, from ``image_bytes``."""
        self.last_partial: PartialImage | None = None
        """The last preview delivered, or ``None``."""
        self.model: str | None = None
        """The model asked for (set by the client), for :attr:`cost`."""
        self._usages: list[Usage | None] = []  # of the Completed events delivered
        self.telemetry: Generation | None = None
        """The OpenTelemetry span of this generation (set by the client; ``None``
        without the ``otel`` extra): docs/observability.md."""

    def __repr__(self) -> str:
        # Server text: a server may echo the key in its x-request-id.
        return redact(f"<ImageStream {self._state.value} request_id={self.request_id!r}>")

    @property
    def request_id(self) -> str | None:
        """The server's ``x-request-id`` for the latest request, once it answered."""
        return self._source.request_id if self._source is not None else self._request_id

    @property
    def cost(self) -> decimal.Decimal | None:
        """The estimated price in US dollars of the images delivered so far, from their
        usage and ``genai-prices`` (the ``cost`` extra), or ``None`` when unknown: no
        image yet, an image without usage, an unknown model, or the extra missing.
        Prices are estimates (docs/batch.md, "Cost")."""
        return estimate_cost(self.model, self._usages) if self._usages else None

    @property
    def started(self) -> bool:
        """Whether the request was sent (or the stream ended)."""
        return self._state is not _State.NEW

    @property
    def deadline_at(self) -> float:
        """The overall deadline on anyio's clock (``math.inf`` when none or not started):
        :func:`ttstream.sinks.pump` bounds its sinks by it too."""
        return self._deadline.at

    async def __aenter__(self) -> Self:
        self._check_unused()
        await self._guarded(self._ensure_started)
        return self

    def __aiter__(self) -> ImageStream:
        return self

    async def __anext__(self) -> StreamItem:
        self._check_unused()
        item = await self._guarded(self._next)
        if item is None:
            self._ended_by(None)
            await self.aclose()
            raise StopAsyncIteration
        if isinstance(item, Completed):
            self._usages.append(item.usage)
        if self.telemetry is not None:
            self.telemetry.saw(item)
        return item

    async def aclose(self) -> None:
        """Closes the response and releases its connection. Idempotent; shielded from
        cancellation and bounded in time, so it completes inside a cancelled scope too."""
        self._state = _State.ENDED
        self._ready = None
        self._ended_by(None)
        await self._release()

    async def _release(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            self._request_id = source.request_id
            await source.aclose()

    def _check_unused(self) -> None:
        if self._state is _State.ENDED:
            raise ClosedError(
                "this stream has already ended: a stream is used once; "
                "call client.generate(...) or client.edit(...) again for a new one"
            )

    async def _guarded(self, step: Callable[[], Awaitable[_T]]) -> _T:
        """Runs one step under the overall deadline; closes the stream if it fails."""
        try:
            with self._deadline.scope(), observed(self.telemetry):
                return await step()
        except (APITimeoutError, APIConnectionError) as exc:
            exc.last_partial = exc.last_partial or self.last_partial
            self._ended_by(exc)
            await self.aclose()
            raise
        except BaseException as exc:
            self._ended_by(exc)
            await self.aclose()
            raise
        error = self._deadline.error()
        self._ended_by(error)
        await self.aclose()
        error.last_partial = self.last_partial
        raise error

    def _ended_by(self, error: BaseException | None) -> None:
        if self.telemetry is not None:
            self.telemetry.end(error, response_id=self.request_id)

    async def _ensure_started(self) -> None:
        if self._state is not _State.NEW:
            return
        self._state = _State.OPEN
        if self.telemetry is not None:
            self.telemetry.start()
        decode = self.decode_images
        if decode is None:
            decode = decode_on_arrival(relays_base64=False)
        started = await self._start(decode)
        if isinstance(started, EventSource):
            self._source = started
            await started.__aenter__()
            return
        try:
            self._request_id = started.headers.get("x-request-id")
            body = await self._read_body(started)
        finally:
            await close_bounded(started.aclose)
        self._ready = deque(parse_response(_unwrap(body, started), operation=self._operation))

    async def _read_body(self, response: httpx2.Response) -> Any:
        try:
            body = await read_body(response, limit=self._max_body_bytes)
        except httpx2.TransportError as exc:
            raise connection_error(exc, response.request.url, "reading the body from") from exc
        return loads_body(body)

    async def _next(self) -> StreamItem | None:
        await self._ensure_started()
        if self._ready is not None:
            if not self._ready:
                return None
            image = self._ready.popleft()
            self._check(image, "(response body)", "")
            return image
        source = self._source
        interpreter = self._interpreter
        if source is None or interpreter.done:
            return None
        while True:
            try:
                item = await source.__anext__()
            except StopAsyncIteration:
                if interpreter.incomplete() is None or self._state is _State.ENDED:
                    return None  # finished, or closed by another task (a UI's "cancel")
                raise self._incomplete("the body ended") from None
            except APITimeoutError:
                raise
            except APIConnectionError as exc:
                if not source.connections:
                    raise
                raise self._incomplete(f"the connection broke ({exc})") from (exc.__cause__ or exc)
            if isinstance(item, Reconnecting):
                missing = interpreter.incomplete()
                if missing is None:
                    return None  # nothing is missing: no reconnection for nothing
                if item.regenerating:
                    interpreter.restart()
                return attrs.evolve(item, reason=f"{item.reason}, {missing}")
            if isinstance(item, Comment):
                continue
            event = interpreter.handle(item)
            if event is not None:
                source.progressed()  # only an image resets the reconnection attempts
            if interpreter.done:
                # Finished (the last image, or the response's end): release the
                # connection now, whatever the server sends after; None ends the stream.
                await self._release()
            elif event is None:
                continue
            if event is not None:
                self._check(event, item.event, item.id)
                if isinstance(event, PartialImage):
                    self.last_partial = event
            return event

    def _check(self, event: Event, sse_event: str, event_id: str) -> None:
        """Decodes the image of ``event`` now when the stream decodes images (a no-op
        for an image decoded on arrival): one the decoder could not take on arrival, or
        one that came as text, fails here, at its event, as
        :class:`~ttstream.MalformedEventError`, before it is delivered or kept as
        ``last_partial``."""
        if self.decode_images is not False:  # None: decoded (see _ensure_started)
            decode_now(event, sse_event=sse_event, event_id=event_id)

    def _incomplete(self, what: str) -> IncompleteStreamError:
        last = self.last_partial
        preview = (  # counted from 1 in words, as the CLI and the browser element count
            ""
            if last is None
            else f" (last preview: preview {last.index + 1}, partial_image_index {last.index})"
        )
        return IncompleteStreamError(
            f"{what} {self._interpreter.incomplete()}{preview}: "
            "a stream that ends before its completed event is a failure",
            last_partial=self.last_partial,
        )


def _unwrap(body: Any, response: httpx2.Response) -> Any:
    """Unwraps TTAPI's legacy envelope ``{"status", "message", "data": {...}}``; a status
    other than ``SUCCESS`` (``FAILED``, ``ON_QUEUE``...) is an error. An
    ``{"error": {...}}`` object in a 2xx body is an error too."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        raise APIStatusError(
            str(error.get("message") or "error in a successful response"),
            status_code=response.status_code,
            body=error,  # the error object, as for an error status (openai's body)
            code=None if error.get("code") is None else str(error.get("code")),
            request_id=response.headers.get("x-request-id"),
        )
    if isinstance(body, dict) and "status" in body and isinstance(body.get("data"), dict):
        if body["status"] != "SUCCESS":
            raise APIStatusError(
                f"TTAPI job status {body['status']!r}: {body.get('message')}",
                status_code=response.status_code,
                body=body,
                code=str(body["status"]),
                request_id=response.headers.get("x-request-id"),
            )
        return body["data"]
    return body
