"""ImageStream: one Images API response as an async iterator of typed events.

Reading is driven by the consumer: a chunk is read from the socket only when every event
decoded so far has been delivered, so nothing is read beyond one network chunk past the
event being delivered and TCP flow control slows the server down to the consumer's pace
(DESIGN.md, "Backpressure").

The response is closed, and its connection released, on every way out: the end of the
events, leaving ``async with``, ``break`` (through ``aclose()``), an exception, a
cancelled scope. Closing is shielded from cancellation so that it always completes.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeAlias

import anyio
import httpx

from ._exceptions import (
    APIStatusError,
    APITimeoutError,
    EventTooLargeError,
    IncompleteStreamError,
    ProtocolError,
    short_repr,
)
from .events import Completed, PartialImage, parse_event, parse_response
from .sse import ServerSentEvent, SSEDecoder

__all__ = ["Event", "ImageStream"]

Event: TypeAlias = "PartialImage | Completed"

_TIMEOUT_NAMES: Mapping[type[httpx.TimeoutException], str] = {
    httpx.ConnectTimeout: "connect",
    httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write",
    httpx.PoolTimeout: "pool",
}


def timeout_name(exc: httpx.TimeoutException) -> str:
    """Which httpx timeout fired: ``connect``, ``read``, ``write`` or ``pool``."""
    return next((name for kind, name in _TIMEOUT_NAMES.items() if isinstance(exc, kind)), "read")


class ImageStream:
    """The events of one generation or edit: :class:`PartialImage` previews, then one
    :class:`Completed` per image (``n`` of them).

    Use it as ``async with client.generate(...) as stream: async for event in stream``.
    Iterating without ``async with`` works too and closes the response at the end of the
    events or on an error; call :meth:`aclose` when leaving the loop early.

    Non-streaming requests (dall-e models, ``stream=False``) yield their images as
    ``Completed`` events, so one loop serves every model.

    Errors raised while iterating:
        APIStatusError: the server answered with an HTTP error (after retries).
        APIConnectionError, APITimeoutError: the request could not be sent (after
            retries), or a timeout fired mid-stream (``last_partial`` set).
        ProtocolError: a stream request answered with a ``Content-Type`` other than
            ``text/event-stream``; a non-streaming answer that is not the documented JSON.
        StreamError: the server sent an error event.
        MalformedEventError: an event's data is not valid JSON or has wrong fields.
        EventTooLargeError: an event (or a non-streaming body) passed ``max_event_bytes``.
        IncompleteStreamError: the body ended, or the connection broke, before every
            completed image arrived; ``last_partial`` holds the last preview.
    """

    def __init__(
        self,
        open_response: Callable[[], Awaitable[httpx.Response]],
        *,
        operation: str,
        streaming: bool,
        expected_images: int,
        max_event_bytes: int,
    ) -> None:
        self._open_response = open_response
        self._operation = operation
        self._streaming = streaming
        self._expected_images = expected_images
        self._max_event_bytes = max_event_bytes
        self._decoder = SSEDecoder(max_event_bytes)
        self._pending: deque[ServerSentEvent] = deque()
        self._ready: deque[Completed] = deque()  # the images of a non-streaming answer
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._closed = False
        self._completed = 0
        self.last_partial: PartialImage | None = None
        """The last preview delivered, or ``None``."""
        self.request_id: str | None = None
        """The server's ``x-request-id`` for this request, once the response arrived."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._response is not None else "new"
        return f"<ImageStream {state} request_id={self.request_id!r}>"

    async def __aenter__(self) -> ImageStream:
        try:
            await self._ensure_open()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> ImageStream:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        try:
            await self._ensure_open()
            event = await (self._next_streamed() if self._streaming else self._next_ready())
        except BaseException:
            await self.aclose()
            raise
        if event is None:
            await self.aclose()
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Closes the response and releases its connection. Idempotent; shielded from
        cancellation, so it completes inside a cancelled scope too."""
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        self._ready.clear()
        with anyio.CancelScope(shield=True):
            aclose_chunks = getattr(self._chunks, "aclose", None)
            if aclose_chunks is not None:
                await aclose_chunks()
            if self._response is not None:
                await self._response.aclose()

    async def _ensure_open(self) -> None:
        if self._response is not None:
            return
        response = self._response = await self._open_response()
        self.request_id = response.headers.get("x-request-id")
        if self._streaming:
            content_type = response.headers.get("content-type", "")
            if content_type.partition(";")[0].strip().lower() != "text/event-stream":
                raise ProtocolError(
                    "a stream request was answered with Content-Type "
                    f"{content_type!r}, expected 'text/event-stream'"
                )
            self._chunks = response.aiter_bytes()
        else:
            body = await self._read_body(response)
            self._ready.extend(parse_response(_unwrap(body, response), operation=self._operation))

    async def _read_body(self, response: httpx.Response) -> Any:
        limit = self._max_event_bytes * max(1, self._expected_images)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            if len(body) + len(chunk) > limit:
                raise EventTooLargeError(limit=limit, size=len(body) + len(chunk))
            body += chunk
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ProtocolError(
                f"the response body is not JSON ({exc}); it starts {short_repr(bytes(body[:60]))}"
            ) from exc

    async def _next_ready(self) -> Event | None:
        return self._ready.popleft() if self._ready else None

    async def _next_streamed(self) -> Event | None:
        assert self._chunks is not None
        while True:
            while self._pending:
                event = parse_event(self._pending.popleft())
                if isinstance(event, PartialImage):
                    self.last_partial = event
                    return event
                if event is not None:
                    self._completed += 1
                    return event
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._decoder.close()
                if self._completed >= self._expected_images:
                    return None
                raise self._incomplete("the body ended") from None
            except httpx.TimeoutException as exc:
                raise APITimeoutError(
                    f"{timeout_name(exc)} timeout mid-stream ({exc})",
                    timeout=timeout_name(exc),
                    last_partial=self.last_partial,
                ) from exc
            except httpx.TransportError as exc:
                raise self._incomplete(f"the connection broke ({exc!r})") from exc
            self._pending.extend(self._decoder.feed(chunk))

    def _incomplete(self, what: str) -> IncompleteStreamError:
        preview = (
            "" if self.last_partial is None else f" (last preview: #{self.last_partial.index})"
        )
        return IncompleteStreamError(
            f"{what} after {self._completed} of {self._expected_images} completed image(s)"
            f"{preview}: a stream that ends before its completed event is a failure",
            last_partial=self.last_partial,
        )


def _unwrap(body: Any, response: httpx.Response) -> Any:
    """Unwraps TTAPI's legacy envelope ``{"status", "message", "data": {...}}``; a status
    other than ``SUCCESS`` (``FAILED``, ``ON_QUEUE``...) is an error. An
    ``{"error": {...}}`` object in a 2xx body is an error too."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        raise APIStatusError(
            str(error.get("message") or "error in a successful response"),
            status_code=response.status_code,
            body=body,
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
