"""ImageStream: one Images API response as an async iterator of typed events.

Reading is driven by the consumer: a chunk is read from the socket only when every event
decoded so far has been delivered, so nothing is read beyond one network chunk past the
event being delivered and TCP flow control slows the server down to the consumer's pace
(DESIGN.md, "Backpressure").

The response is closed, and its connection released, on every way out: the end of the
events, leaving ``async with``, ``break`` (through ``aclose()``), an exception, a
cancelled scope, the overall deadline. Closing is shielded from cancellation so that it
always completes.

After the stream started, a broken connection or a body that ends early is reconnected
under a :class:`~ttstream.ReconnectPolicy` (see ``ttstream._reconnect``).
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import anyio
import httpx

from ._body import aiter_bounded, read_body
from ._exceptions import (
    APIStatusError,
    APITimeoutError,
    IncompleteStreamError,
    ProtocolError,
    short_repr,
)
from ._reconnect import Reconnecting, ReconnectPolicy
from .events import Completed, PartialImage, parse_event, parse_response
from .sse import ServerSentEvent, SSEDecoder

__all__ = ["Event", "ImageStream", "OpenResponse", "StreamItem", "read_limited", "timeout_name"]

logger = logging.getLogger("ttstream")

Event: TypeAlias = "PartialImage | Completed"
"""An image event: a preview or a final image."""
StreamItem: TypeAlias = "PartialImage | Completed | Reconnecting"
"""What an :class:`ImageStream` yields: image events and reconnection notices."""
OpenResponse: TypeAlias = Callable[[Mapping[str, str]], Awaitable[httpx.Response]]
"""Sends the request (with retries) with these extra headers; answers a 2xx response."""
_T = TypeVar("_T")


class _NoContent:
    """The chunks of a 204 answer: none."""

    def __aiter__(self) -> _NoContent:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration


_NO_CONTENT = _NoContent()

_TIMEOUT_NAMES: Mapping[type[httpx.TimeoutException], str] = {
    httpx.ConnectTimeout: "connect",
    httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write",
    httpx.PoolTimeout: "pool",
}


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """The whole body of ``response``, decoded within ``limit`` bytes (:func:`read_body`).

    Raises:
        EventTooLargeError: the body is longer than ``limit``.
        ProtocolError: an unsupported ``Content-Encoding``, or a body not in its coding.
    """
    return await read_body(response, limit=limit)


def timeout_name(exc: httpx.TimeoutException) -> str:
    """Which httpx timeout fired: ``connect``, ``read``, ``write`` or ``pool``."""
    return next((name for kind, name in _TIMEOUT_NAMES.items() if isinstance(exc, kind)), "read")


class ImageStream:
    """The events of one generation or edit: :class:`PartialImage` previews, then one
    :class:`Completed` per image (``n`` of them), and a :class:`Reconnecting` notice
    whenever the stream reconnects.

    Use it as ``async with client.generate(...) as stream: async for event in stream``.
    Iterating without ``async with`` works too and closes the response at the end of the
    events or on an error; call :meth:`aclose` when leaving the loop early.

    Non-streaming requests (dall-e models, ``stream=False``) yield their images as
    ``Completed`` events, so one loop serves every model.

    Errors raised while iterating:
        APIStatusError: the server answered with an HTTP error (after retries).
        APIConnectionError, APITimeoutError: the request could not be sent (after
            retries); or a timeout fired mid-stream, or the overall ``deadline``
            passed (``timeout="deadline"``), with ``last_partial`` set.
        ProtocolError: a stream request answered with a ``Content-Type`` other than
            ``text/event-stream``; a non-streaming answer that is not the documented JSON.
        StreamError: the server sent an error event.
        MalformedEventError: an event's data is not valid JSON or has wrong fields.
        EventTooLargeError: an event (or a non-streaming body) passed ``max_event_bytes``.
        IncompleteStreamError: the body ended, or the connection broke, before every
            completed image arrived and no reconnection was allowed or left;
            ``last_partial`` holds the last preview.
    """

    def __init__(
        self,
        open_response: OpenResponse,
        *,
        operation: str,
        streaming: bool,
        expected_images: int,
        max_event_bytes: int,
        reconnect: ReconnectPolicy,
        deadline: float | None,
    ) -> None:
        self._open_response = open_response
        self._operation = operation
        self._streaming = streaming
        self._expected_images = expected_images
        self._max_event_bytes = max_event_bytes
        self._policy = reconnect
        self._deadline = deadline
        self._deadline_at = math.inf
        self._decoder = SSEDecoder(max_event_bytes)
        self._pending: deque[ServerSentEvent] = deque()
        self._ready: deque[Completed] = deque()  # the images of a non-streaming answer
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._closed = False
        self._completed = 0
        # Reconnection state: ids delivered (to skip a replay), the id to resume from,
        # the attempts made, when the first break happened, and the next reopening.
        self._delivered_ids: set[str] = set()
        self._resume_id = ""
        self._reconnects = 0
        self._regenerations = 0
        self._first_break_at: float | None = None
        self._server_said_stop = False
        self._reopen: tuple[float, dict[str, str]] | None = None
        self.last_partial: PartialImage | None = None
        """The last preview delivered, or ``None``."""
        self.request_id: str | None = None
        """The server's ``x-request-id`` for the latest request, once it answered."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._response is not None else "new"
        return f"<ImageStream {state} request_id={self.request_id!r}>"

    async def __aenter__(self) -> ImageStream:
        await self._guarded(self._ensure_open)
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

    async def __anext__(self) -> StreamItem:
        if self._closed:
            raise StopAsyncIteration
        item = await self._guarded(self._next)
        if item is None:
            await self.aclose()
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Closes the response and releases its connection. Idempotent; shielded from
        cancellation, so it completes inside a cancelled scope too."""
        self._closed = True
        self._pending.clear()
        self._ready.clear()
        await self._release()

    async def _release(self) -> None:
        """Closes the current response, if any (shielded)."""
        chunks, response = self._chunks, self._response
        self._chunks = self._response = None
        with anyio.CancelScope(shield=True):
            aclose_chunks = getattr(chunks, "aclose", None)
            if aclose_chunks is not None:
                await aclose_chunks()
            if response is not None:
                await response.aclose()

    async def _guarded(self, step: Callable[[], Awaitable[_T]]) -> _T:
        """Runs one step under the overall deadline; closes the stream if it fails."""
        if self._deadline is not None and self._deadline_at == math.inf:
            self._deadline_at = anyio.current_time() + self._deadline
        try:
            with anyio.move_on_at(self._deadline_at):
                return await step()
        except BaseException:
            await self.aclose()
            raise
        await self.aclose()
        raise APITimeoutError(
            f"the stream's deadline of {self._deadline} s passed",
            timeout="deadline",
            last_partial=self.last_partial,
        )

    async def _ensure_open(self) -> None:
        if self._response is not None:
            return
        headers: dict[str, str] = {}
        if self._reopen is not None:
            (delay, headers), self._reopen = self._reopen, None
            await anyio.sleep(delay)
        response = self._response = await self._open_response(headers)
        self.request_id = response.headers.get("x-request-id")
        if self._streaming and response.status_code == 204:
            self._chunks = _NO_CONTENT
            self._server_said_stop = True  # WHATWG: 204 No Content means stop reconnecting
        elif self._streaming:
            content_type = response.headers.get("content-type", "")
            if content_type.partition(";")[0].strip().lower() != "text/event-stream":
                raise ProtocolError(
                    "a stream request was answered with Content-Type "
                    f"{content_type!r}, expected 'text/event-stream'"
                )
            self._chunks = aiter_bounded(response)
        else:
            body = await self._read_body(response)
            self._ready.extend(parse_response(_unwrap(body, response), operation=self._operation))

    async def _read_body(self, response: httpx.Response) -> Any:
        body = await read_limited(response, self._max_event_bytes * max(1, self._expected_images))
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise ProtocolError(
                f"the response body is not JSON ({exc}); it starts {short_repr(bytes(body[:60]))}"
            ) from exc

    async def _next(self) -> StreamItem | None:
        await self._ensure_open()
        if not self._streaming:
            return self._ready.popleft() if self._ready else None
        assert self._chunks is not None
        while True:
            if (event := self._next_pending()) is not None:
                return event
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._decoder.close()
                if self._completed >= self._expected_images:
                    return None
                return await self._reconnect(self._incomplete("the body ended"))
            except httpx.TransportError as exc:
                # Every image arrived: a connection cut before the body's end loses nothing.
                if self._completed >= self._expected_images:
                    return None
                if isinstance(exc, httpx.TimeoutException):
                    raise APITimeoutError(
                        f"{timeout_name(exc)} timeout mid-stream ({exc})",
                        timeout=timeout_name(exc),
                        last_partial=self.last_partial,
                    ) from exc
                self._decoder.close()
                failure = self._incomplete(f"the connection broke ({exc!r})")
                failure.__cause__ = exc
                return await self._reconnect(failure)
            self._pending.extend(self._decoder.feed(chunk))

    def _next_pending(self) -> Event | None:
        """The next image event decoded so far, skipping events that carry no image and
        events replayed after a resume (their ``id`` was delivered already)."""
        while self._pending:
            sse = self._pending.popleft()
            if sse.id and sse.id in self._delivered_ids:
                continue
            event = parse_event(sse)
            if event is None:
                continue
            if sse.id:
                self._delivered_ids.add(sse.id)
            if isinstance(event, PartialImage):
                self.last_partial = event
            else:
                self._completed += 1
            return event
        return None

    async def _reconnect(self, failure: IncompleteStreamError) -> Reconnecting:
        """Plans the reconnection after ``failure``, or raises it when none is allowed.

        With a last event ID the server resumes after it; without one, only an opt-in
        regeneration may start the request over (a new, billed generation).
        """
        now = anyio.current_time()
        self._first_break_at = self._first_break_at or now
        resume_id = self._decoder.last_event_id or self._resume_id
        regenerating = not resume_id
        policy = self._policy
        if (
            self._server_said_stop
            or self._reconnects >= policy.max_attempts
            or now - self._first_break_at > policy.budget
            or (regenerating and self._regenerations >= policy.regenerate)
        ):
            raise failure
        delay = policy.backoff(self._reconnects, self._decoder.retry)
        self._reconnects += 1
        await self._release()
        retry = self._decoder.retry
        # A fresh decoder: events of the new body carry only ids the server sends again,
        # so that only true replays are skipped; the reconnection time carries over.
        self._decoder = SSEDecoder(self._max_event_bytes)
        self._decoder.retry = retry
        if regenerating:
            self._regenerations += 1
            self._completed = 0  # a new generation yields all of its images again
            self._reopen = (delay, {})
        else:
            self._resume_id = resume_id
            self._reopen = (delay, {"Last-Event-ID": resume_id})
        logger.warning(
            "reconnecting in %.2f s (attempt %d of %d, %s): %s",
            delay,
            self._reconnects,
            policy.max_attempts,
            "new generation" if regenerating else f"resuming after id {resume_id!r}",
            failure,
        )
        return Reconnecting(
            attempt=self._reconnects,
            delay=delay,
            last_event_id=resume_id,
            regenerating=regenerating,
            reason=str(failure),
        )

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
