"""EventSource: one Server-Sent Events stream over HTTP, reconnected as WHATWG says.

WHATWG HTML, "Server-sent events", 9.2.2 "The EventSource interface" and 9.2.3
"Processing model" (docs/sse.md): requests carry ``Accept: text/event-stream``,
``Cache-Control: no-cache`` and, when the last event ID is not empty,
``Last-Event-ID``; after a network error or a clean end of the body the stream
reconnects after the reconnection time (the server's ``retry`` field, else the
policy's delay); a 204 answer stops it for good; any other non-2xx status or a
``Content-Type`` other than ``text/event-stream`` fails it, never reconnected.

ttstream adds what a client facing hostile servers needs (docs/reconnection.md):
retries before the first byte (``max_retries``, the official SDKs' rules), a bounded
number of consecutive failed reconnections and a time budget
(:class:`~ttstream.ReconnectPolicy`), capped backoff with jitter that never waits less
than the server asked, a read timeout that reconnects like a broken connection, the
skipping of events a server replays after a resume (same id and content; O(1) memory),
an overall ``deadline``, a size cap per event, and cleanup that is shielded and bounded.
It knows nothing of the Images API.

This module is a driver: it builds the requests, holds the response, feeds the decoder
(``ttstream.sse``) and does what the reconnection state machine
(:class:`ttstream._reconnect.Reconnection`, no I/O) decides. Every wait it makes (a read,
a reconnection wait, a reconnection's request) runs in one cancel scope that
:meth:`EventSource.aclose` and :meth:`EventSource.restart` cancel from any task.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterator,
    Mapping,
)
from types import TracebackType
from typing import Any, Self, TypeAlias, TypeVar

import anyio
import attrs
import httpx2
from anyio.abc import AsyncResource

from ._body import ACCEPT_ENCODING, aiter_bounded
from ._bounds import Deadline, close_bounded, require_int
from ._checks import require_hashable
from ._connect import connection_error, send, timeout_name
from ._exceptions import APIConnectionError, ProtocolError, ValidationError, short_repr
from ._headers import merge_headers, sendable
from ._imagehook import ImageLineHook
from ._reconnect import Reconnecting, Reconnection, ReconnectPolicy, State, require_policy
from ._secrets import redact
from .sse import DEFAULT_MAX_EVENT_BYTES, Comment, ServerSentEvent, SSEDecoder

__all__ = ["EventSource", "SourceItem"]

logger = logging.getLogger("ttstream")

SourceItem: TypeAlias = "ServerSentEvent | Comment | Reconnecting"
"""What an :class:`EventSource` yields."""

_T = TypeVar("_T")
_DEFAULT_POLICY = ReconnectPolicy()
# What an HTTP field value cannot hold (RFC 9110, section 5.5), so neither can an id sent
# as Last-Event-ID: a control character (a tab inside is allowed), a space or tab at
# either end (which one transport refuses and another strips, changing the id).
_UNSENDABLE_ID = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|\A[ \t]|[ \t]\Z")
_SENDABLE_ID = (
    "an id that is a valid header value: no control character (a tab inside is allowed) "
    "and no space or tab at either end"
)


class _NoContent:
    """The chunks of a 204 answer: none."""

    def __aiter__(self) -> _NoContent:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Nothing to close; here so that every body is closed the same way."""


@attrs.define
class _Target:
    """What each request of the stream sends (a resume hook may move it elsewhere)."""

    method: str
    url: httpx2.URL
    headers: dict[str, str]
    content: bytes | None
    timeout: httpx2.Timeout | None
    max_retries: int
    resume: Callable[[], tuple[str, str] | None] | None

    def move(self, method: str, url: str) -> None:
        """Resumes at ``url`` with ``method``, without a body."""
        self.method, self.url, self.content = method, httpx2.URL(url), None
        for name in [name for name in self.headers if name.lower() == "content-type"]:
            del self.headers[name]


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


class _PlainCancellation:
    """Re-raises an exception group made only of cancellations (trio's own nursery in a
    TCP connect, cancelled from outside) as the plain cancellation, as ``pump`` does.
    A stream enters it once per event: it is a plain class, not a generator."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, BaseExceptionGroup):
            leaves = list(_leaves(exc))
            if leaves and all(isinstance(leaf, anyio.get_cancelled_exc_class()) for leaf in leaves):
                raise leaves[0] from None


_plain_cancellation = _PlainCancellation()


class EventSource(AsyncResource):
    """An async context manager and async iterator of the items of one SSE stream:
    :class:`~ttstream.ServerSentEvent` objects, :class:`~ttstream.sse.Comment` lines
    (with ``comments=True``) and a :class:`~ttstream.Reconnecting` notice before each
    reconnection.

    .. code-block:: python

        async with EventSource(http, "GET", "https://example.org/events") as source:
            async for item in source:
                if isinstance(item, ServerSentEvent):
                    print(item.event, item.id, item.data)

    Args:
        http_client: the ``httpx2.AsyncClient`` to send with (not closed here). Its
            ``follow_redirects`` decides whether redirects are followed; a header
            whose name says it carries a secret (``Authorization``, ``X-API-Key``,
            ``X-Access-Token``...) never crosses to another origin.
        method: ``"GET"`` or ``"POST"`` (any method httpx takes).
        url: the stream's URL.
        headers: extra request headers, over its own (``Accept``, ``Accept-Encoding``,
            ``Cache-Control``, and ``Content-Type`` with ``json``), names compared
            without regard to case; ``None`` removes one. Every request of the stream
            sends them.
        json: a JSON body (encoded once, compactly), or
        content: the body's bytes; the same bytes are sent on every attempt.
        last_event_id: the ID to resume after: sent as ``Last-Event-ID`` on the first
            request and the id of events until the server sends an ``id`` field.
        reconnect: how many reconnections, how soon, within what budget.
        comments: yield comment lines as :class:`Comment` (keep-alives) instead of
            skipping them.
        max_event_bytes: the largest event accepted, in bytes
            (:class:`~ttstream.EventTooLargeError` beyond it).
        max_retries: retries of each connection attempt before its first byte, for
            connection errors, timeouts, 408, 409, 429 and >= 500.
        timeout: the httpx timeout of each request (default: the client's).
        deadline: seconds the whole stream may take, from its first request, across
            reconnections, or ``None``.
        idempotent: ``False`` when sending the request again without
            ``Last-Event-ID`` repeats a side effect (a new, billed generation): such a
            reconnection then happens only ``reconnect.regenerate`` times.
        confirm_progress: ``True``: a new event resets the reconnection attempts and
            budget only once :meth:`progressed` confirms it brought what the consumer
            waits for (an :class:`~ttstream.ImageStream` confirms its previews and
            images); ``False`` (the default): every new event does
            (docs/reconnection.md).
        decode_images: install the Images layer's fast path on the decoder: each
            event's image base64 is decoded while it arrives (the decoder's
            ``line_hook=ttstream.events.ImageLineHook()``; docs/fast.md). ``False``
            (the default: a generic stream) keeps every event as text; an
            :class:`~ttstream.ImageStream` turns it on unless its consumer only
            forwards the base64.
        image_shape: with ``decode_images``, the key (any hashable) under which the
            size of each image is remembered in the process-wide table the clients'
            streams share, and by which the stream's first image is sized
            (``ImageLineHook(shape=...)``; docs/fast.md); ``None``: neither.
        resume: for protocols that resume at another URL than the stream's (the
            Responses API: ``GET /responses/{id}?stream=true&starting_after=n``): called
            at each reconnection, it returns the ``(method, url)`` to resume from (sent
            without a body; a resume, not a new start), or ``None`` to reconnect as
            WHATWG says.

    Raises:
        ValidationError: at construction, an invalid ``url``, both ``json`` and
            ``content``, ``max_event_bytes`` not an int >= 1 or ``max_retries`` not an
            int >= 0 (bools refused), ``timeout`` neither ``None`` nor an
            ``httpx2.Timeout``, ``deadline`` not ``None`` or seconds > 0, a
            ``last_event_id`` that cannot be sent as a header value (a control
            character, a space or tab at either end), or an ``image_shape`` not hashable.

    Errors raised while iterating:
        APIStatusError: a non-2xx answer (after retries); never reconnected.
        ProtocolError: a 2xx answer whose ``Content-Type`` is not ``text/event-stream``,
            or a reconnection after an ``id`` that cannot be sent as a header value.
        APIConnectionError, APITimeoutError: a connection could not be made, or broke
            (or a read timed out) when no reconnection was left; ``timeout="deadline"``
            when the deadline passed.
        EventTooLargeError: an event passed ``max_event_bytes``.

    A clean end of the body when no reconnection is left, or a 204 answer, ends the
    iteration.
    """

    def __init__(
        self,
        http_client: httpx2.AsyncClient,
        method: str,
        url: str | httpx2.URL,
        *,
        headers: Mapping[str, str | None] | None = None,
        json: Any = None,
        content: bytes | None = None,
        last_event_id: str = "",
        reconnect: ReconnectPolicy = _DEFAULT_POLICY,
        comments: bool = False,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_retries: int = 0,
        timeout: httpx2.Timeout | None = None,
        deadline: float | None = None,
        idempotent: bool = True,
        confirm_progress: bool = False,
        resume: Callable[[], tuple[str, str] | None] | None = None,
        decode_images: bool = False,
        image_shape: Hashable = None,
    ) -> None:
        if json is not None and content is not None:
            raise ValidationError("content", "<bytes>", "either json= or content=, not both")
        require_int("max_event_bytes", max_event_bytes, 1, "bytes")
        require_int("max_retries", max_retries, 0)
        if timeout is not None and not isinstance(timeout, httpx2.Timeout):
            raise ValidationError("timeout", timeout, "None (the client's) or an httpx2.Timeout")
        try:
            parsed_url = httpx2.URL(url)
        except httpx2.InvalidURL:
            raise ValidationError("url", url, "a valid absolute http(s) URL") from None
        if _UNSENDABLE_ID.search(last_event_id):
            raise ValidationError("last_event_id", last_event_id, _SENDABLE_ID)
        own = {
            "Accept": "text/event-stream",
            "Accept-Encoding": ACCEPT_ENCODING,
            "Cache-Control": "no-cache",
        }
        if json is not None:
            content = jsonlib.dumps(json, separators=(",", ":")).encode()
            own["Content-Type"] = "application/json"
        headers = sendable(merge_headers(own, headers or {}))
        self._http = http_client
        self._target = _Target(method, parsed_url, headers, content, timeout, max_retries, resume)
        self._deadline = Deadline(deadline)
        require_hashable("image_shape", image_shape)
        hook = None
        if decode_images:
            hook = ImageLineHook(shape=image_shape, max_event_bytes=max_event_bytes)
        self._decoder = SSEDecoder(max_event_bytes, line_hook=hook)
        self._decoder.last_event_id = last_event_id
        self._feed = self._decoder.feed_all if comments else self._decoder.feed
        self._machine = Reconnection(
            require_policy(reconnect),
            clock=anyio.current_time,
            idempotent=idempotent,
            confirm_progress=confirm_progress,
        )
        self._pending: deque[ServerSentEvent | Comment] = deque()
        self._response: httpx2.Response | None = None
        self._chunks: AsyncGenerator[bytes, None] | _NoContent | None = None
        # The reader's current wait (a read, a reconnection wait, a connection): aclose()
        # and restart() from another task cancel it.
        self._scope: anyio.CancelScope | None = None
        self.request_id: str | None = None
        """The server's ``x-request-id`` for the latest answer."""

    def __repr__(self) -> str:
        closed = self._machine.state is State.CLOSED
        state = "closed" if closed else "open" if self._response is not None else "idle"
        target = self._target
        # Server text, which may echo the key: the last event ID, and a resume URL's id.
        return redact(
            f"<EventSource {state} {target.method} {target.url} "
            f"last_event_id={self.last_event_id!r}>"
        )

    @property
    def connections(self) -> int:
        """How many 2xx stream responses were received so far."""
        return self._machine.connections

    def progressed(self) -> None:
        """With ``confirm_progress``: the last event delivered brought what the consumer
        waits for; if it was new, the reconnection attempts and budget start again."""
        self._machine.progressed()

    @property
    def last_event_id(self) -> str:
        """The last event ID: what ``Last-Event-ID`` carries on the next reconnection."""
        return self._decoder.last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time the server asked for with ``retry``, in ms, or ``None``."""
        return self._decoder.retry

    @property
    def deadline_at(self) -> float:
        """The deadline on anyio's clock (``math.inf`` when none or not started)."""
        return self._deadline.at

    async def __aenter__(self) -> Self:
        await self._guarded(self._open_first)
        return self

    def __aiter__(self) -> EventSource:
        return self

    async def __anext__(self) -> SourceItem:
        if self._machine.state is State.CLOSED:
            raise StopAsyncIteration
        item = await self._guarded(self._next)
        if item is None:
            await self.aclose()
            raise StopAsyncIteration
        return item

    def restart(self) -> None:
        """Drops the current connection and reconnects at once (with ``Last-Event-ID``),
        for callers that detect staleness themselves. A read (or a reconnection wait) in
        progress in another task is interrupted; the iterator then yields a
        :class:`Reconnecting` notice (``delay=0``). A restart does not count against
        ``max_attempts``."""
        self._machine.request_restart()
        if self._scope is not None:
            self._scope.cancel()

    async def aclose(self) -> None:
        """Closes the current response and ends the stream. Idempotent; shielded and
        bounded (``ttstream._bounds.CLEANUP_TIMEOUT``). Called from another task while
        this one reads or waits to reconnect (a UI's "cancel"), it interrupts that read
        or wait at once, which then ends the iteration; nothing is ever sent again."""
        self._machine.close()
        self._pending.clear()
        if self._scope is not None:
            self._scope.cancel()
        await self._release()

    async def _release(self) -> None:
        """Closes the current response. The body's iterator is closed by the task that
        reads it: while another task is inside a read, that task closes it."""
        reading = self._scope is not None
        chunks, response = self._chunks, self._response
        self._response = None
        steps = []
        if not reading:
            self._chunks = None
            if chunks is not None:
                steps.append(chunks.aclose)
        if response is not None:
            steps.append(response.aclose)
        if steps:
            await close_bounded(*steps)

    async def _guarded(self, step: Callable[[], Awaitable[_T]]) -> _T:
        """Runs one step under the deadline; closes the stream if it fails."""
        try:
            with _plain_cancellation, self._deadline.scope():
                return await step()
        except BaseException:
            await self.aclose()
            raise
        await self.aclose()
        raise self._deadline.error()

    def _request(self) -> httpx2.Request:
        target = self._target
        headers = httpx2.Headers(target.headers)
        if self.last_event_id:
            if _UNSENDABLE_ID.search(self.last_event_id):  # the server's: checked above
                raise ProtocolError(
                    f"the server's last event id {short_repr(self.last_event_id, 80)} cannot "
                    f"be sent back as Last-Event-ID: expected {_SENDABLE_ID}"
                )
            # UTF-8, as browsers send it: an id is any text but NUL, CR and LF (WHATWG),
            # and httpx2 encodes a str value as ASCII (UnicodeEncodeError past it).
            headers.update({b"Last-Event-ID": self.last_event_id.encode()})
        return self._http.build_request(
            target.method,
            target.url,
            headers=headers,
            content=target.content,
            timeout=httpx2.USE_CLIENT_DEFAULT if target.timeout is None else target.timeout,
        )

    async def _open_first(self) -> None:
        if self._machine.state is State.CLOSED:
            raise StopAsyncIteration  # closed (maybe by another task): never send again
        if self._response is None and not self._machine.connections:
            await self._connect()

    async def _connect(self) -> Reconnecting | None:
        """Waits for the planned reconnection, if any, then sends the request. Returns a
        notice when the request failed with a network error and the machine plans
        another attempt; ``None`` when connected, or when ``aclose()`` / ``restart()``
        interrupted the wait or the request (the caller's loop then sees why)."""
        machine = self._machine
        response: httpx2.Response | None = None
        try:
            with anyio.CancelScope() as self._scope:
                if machine.state is State.WAITING:
                    await anyio.sleep(machine.wait_left())
                    machine.connecting()
                target = self._target
                response = await send(self._http, self._request(), max_retries=target.max_retries)
        except APIConnectionError as exc:  # timeouts too: a network error
            if not machine.connections:
                raise  # before the stream started, send()'s retries were the policy
            notice = self._plan(f"reconnecting failed ({exc})")
            if notice is None:
                raise
            return notice
        finally:
            self._scope = None
        if response is None:
            return None
        if machine.state is State.CLOSED:  # closed by another task as the answer came
            await close_bounded(response.aclose)
            return None
        self._response = response
        self.request_id = response.headers.get("x-request-id")
        if response.status_code == 204:
            machine.opened(no_content=True)  # WHATWG: 204 No Content means stop
            self._chunks = _NoContent()
            return None
        content_type = response.headers.get("content-type", "")
        if content_type.partition(";")[0].strip().lower() != "text/event-stream":
            raise ProtocolError(
                f"a stream request was answered with Content-Type {content_type[:100]!r}, "
                "expected 'text/event-stream'"
            )
        machine.opened()
        self._chunks = aiter_bounded(response)  # decoded 64 KiB at a time at most
        return None

    async def _next(self) -> SourceItem | None:
        machine = self._machine
        while True:
            if machine.state is State.CLOSED:
                await self._release()  # closed by another task during a read
                return None
            while self._pending:
                item = self._pending.popleft()
                if isinstance(item, Comment) or machine.deliver(item):
                    return item
            if machine.restart_requested:
                await self._release()
                self._decoder.close()
                return machine.restart(last_event_id=self.last_event_id)
            if self._chunks is None:
                notice = await self._connect()
                if notice is not None:
                    return notice
                continue
            try:
                await self._read(self._chunks)
            except StopAsyncIteration:
                self._decoder.close()
                if machine.state is State.STOPPED:
                    return None
                return await self._broke("the body ended")
            except httpx2.TransportError as exc:
                self._decoder.close()
                # First: it takes the server's bytes out of exc, which the reason quotes.
                error = connection_error(exc, self._target.url, "reading the stream from")
                what = (
                    f"a {timeout_name(exc)} timeout"
                    if isinstance(exc, httpx2.TimeoutException)
                    else "the connection broke"
                )
                notice = await self._broke(f"{what} ({exc})" if str(exc) else what)
                if notice is None:
                    raise error from exc
                return notice
            # Here the decoder has completed items, or restart() or aclose() interrupted
            # the read: the loop sees which.

    async def _read(self, chunks: AsyncIterator[bytes]) -> None:
        """Reads chunks and feeds them to the decoder until they complete an item, in
        one cancel scope (not one per chunk: an image event arrives in dozens), which
        another task's ``restart()`` or ``aclose()`` cancels to interrupt the read."""
        pending, feed = self._pending, self._feed
        try:
            with anyio.CancelScope() as self._scope:
                # An event past the cap after the events the last chunk delivered: raised
                # now, not after the server's next bytes.
                self._decoder.raise_failure()
                while not pending:
                    pending.extend(feed(await chunks.__anext__()))
        finally:
            self._scope = None

    async def _broke(self, reason: str) -> Reconnecting | None:
        """Plans the reconnection after the body ended or broke (``None``: none left),
        and releases the response."""
        notice = self._plan(reason)
        if notice is not None:
            await self._release()
        return notice

    def _plan(self, reason: str) -> Reconnecting | None:
        """Asks the machine for the next request; moves to the resume target, if any."""
        target = self._target
        resume_at = None if target.resume is None else target.resume()
        notice = self._machine.broke(
            reason,
            last_event_id=self.last_event_id,
            retry_ms=self.retry,
            resumable=resume_at is not None,
        )
        if notice is None:
            return None
        if resume_at is not None:
            target.move(*resume_at)
        how = (
            f"resuming at {target.url}"
            if resume_at is not None
            else f"resuming after id {notice.last_event_id[:80]!r}"
            if notice.last_event_id
            else "starting over"
        )
        note = redact(  # a server may echo the key in ids, and in a resume URL's id
            f"attempt {notice.attempt} of {self._machine.policy.max_attempts}, {how}: {reason}"
        )
        where = redact(str(target.url))
        logger.info("reconnecting to %s in %.2f s (%s)", where, notice.delay, note)
        return notice
