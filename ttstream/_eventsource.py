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
number of reconnections and a time budget (:class:`~ttstream.ReconnectPolicy`), capped
backoff with jitter that never waits less than the server asked, a read timeout that
reconnects like a broken connection, the skipping of events a server replays after a
resume (O(1) memory), an overall ``deadline``, a size cap per event, and cleanup that
is shielded and bounded. It knows nothing of the Images API.
"""

from __future__ import annotations

import json as jsonlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import anyio
import httpx2

from . import _secrets
from ._body import ACCEPT_ENCODING, aiter_bounded
from ._bounds import Deadline, close_bounded
from ._connect import connection_error, send, timeout_name
from ._exceptions import ProtocolError, ValidationError
from ._reconnect import Reconnecting, ReconnectPolicy
from .sse import DEFAULT_MAX_EVENT_BYTES, Comment, ServerSentEvent, SSEDecoder, id_in_body

__all__ = ["EventSource", "SourceItem"]

logger = logging.getLogger("ttstream")

SourceItem: TypeAlias = "ServerSentEvent | Comment | Reconnecting"
"""What an :class:`EventSource` yields."""

_T = TypeVar("_T")
_RECENT_IDS = 64  # delivered ids remembered to recognise a replay after a resume
_DEFAULT_POLICY = ReconnectPolicy()


class _NoContent:
    """The chunks of a 204 answer: none."""

    def __aiter__(self) -> _NoContent:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration


class EventSource:
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
            ``follow_redirects`` decides whether redirects are followed; credential
            headers never cross to another origin.
        method: ``"GET"`` or ``"POST"`` (any method httpx takes).
        url: the stream's URL.
        headers: extra request headers.
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
        decode_images: decode each event's image base64 while it arrives
            (``SSEDecoder(decode_images=...)``; docs/fast.md): ``False`` keeps events
            as text, for a consumer that only forwards the base64.
        resume: for protocols that resume at another URL than the stream's (the
            Responses API: ``GET /responses/{id}?stream=true&starting_after=n``): called
            at each reconnection, it returns the ``(method, url)`` to resume from (sent
            without a body; a resume, not a new start), or ``None`` to reconnect as
            WHATWG says.

    Errors raised while iterating:
        APIStatusError: a non-2xx answer (after retries); never reconnected.
        ProtocolError: a 2xx answer whose ``Content-Type`` is not ``text/event-stream``.
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
        headers: Mapping[str, str] | None = None,
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
        resume: Callable[[], tuple[str, str] | None] | None = None,
        decode_images: bool = True,
    ) -> None:
        if json is not None and content is not None:
            raise ValidationError("content", "<bytes>", "either json= or content=, not both")
        if not isinstance(max_event_bytes, int) or max_event_bytes <= 0:
            raise ValidationError("max_event_bytes", max_event_bytes, "an int > 0 (bytes)")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValidationError("max_retries", max_retries, "an int >= 0")
        if "\0" in last_event_id or "\n" in last_event_id or "\r" in last_event_id:
            raise ValidationError("last_event_id", last_event_id, "an id without NUL, CR or LF")
        self._http = http_client
        self._method = method
        self._url = httpx2.URL(url)
        self._headers = {
            "Accept": "text/event-stream",
            "Accept-Encoding": ACCEPT_ENCODING,
            "Cache-Control": "no-cache",
            **(headers or {}),
        }
        if json is not None:
            content = jsonlib.dumps(json, separators=(",", ":")).encode()
            self._headers.setdefault("Content-Type", "application/json")
        self._content = content
        self._policy = reconnect
        self._comments = comments
        self._max_retries = max_retries
        self._timeout = timeout
        self._deadline = Deadline(deadline)
        self._idempotent = idempotent
        self._resume = resume
        self._decoder = SSEDecoder(max_event_bytes, decode_images=decode_images)
        self._decoder.last_event_id = last_event_id
        self._pending: deque[ServerSentEvent | Comment] = deque()
        self._response: httpx2.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._read_scope: anyio.CancelScope | None = None
        self._closed = False
        self._stopped = False  # a 204 answer: the server said stop
        self._restart = False
        self._reopen_delay: float | None = None
        self._reopen_note = ""  # for the log line when the reconnection starts
        # Reconnection accounting, and replay detection after a resume: the resumed id
        # (or None outside a resumed body's replay) and hashes of recently delivered ids.
        self._attempts = 0
        self._regenerations = 0
        self._first_break_at: float | None = None
        self._replaying: str | None = last_event_id or None
        self._recent: deque[int] = deque(maxlen=_RECENT_IDS)
        self.connections = 0
        """How many 2xx stream responses were received so far."""
        self.request_id: str | None = None
        """The server's ``x-request-id`` for the latest answer."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._response is not None else "idle"
        last = _secrets.redact(self.last_event_id)  # server text: it may echo the key
        return f"<EventSource {state} {self._method} {self._url} last_event_id={last!r}>"

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

    async def __aenter__(self) -> EventSource:
        await self._guarded(self._ensure_open)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> EventSource:
        return self

    async def __anext__(self) -> SourceItem:
        if self._closed:
            raise StopAsyncIteration
        item = await self._guarded(self._next)
        if item is None:
            await self.aclose()
            raise StopAsyncIteration
        return item

    def restart(self) -> None:
        """Drops the current connection and reconnects at once (with ``Last-Event-ID``),
        for callers that detect staleness themselves. A read in progress in another task
        is interrupted; the iterator then yields a :class:`Reconnecting` notice
        (``delay=0``). A restart does not count against ``max_attempts``."""
        self._restart = True
        if self._read_scope is not None:
            self._read_scope.cancel()

    async def aclose(self) -> None:
        """Closes the current response and ends the stream. Idempotent; shielded and
        bounded (``ttstream._bounds.CLEANUP_TIMEOUT``). Called from another task while
        this one reads (a UI's "cancel"), it interrupts that read, which then ends the
        iteration; nothing is ever sent again."""
        self._closed = True
        self._pending.clear()
        if self._read_scope is not None:
            self._read_scope.cancel()
        await self._release()

    async def _release(self) -> None:
        """Closes the current response. The body's iterator is closed by the task that
        reads it: while another task is inside a read, that task closes it."""
        reading = self._read_scope is not None
        chunks, response = self._chunks, self._response
        self._response = None
        steps = []
        if not reading:
            self._chunks = None
            aclose_chunks = getattr(chunks, "aclose", None)
            if aclose_chunks is not None:
                steps.append(aclose_chunks)
        if response is not None:
            steps.append(response.aclose)
        if steps:
            await close_bounded(*steps)

    async def _guarded(self, step: Callable[[], Awaitable[_T]]) -> _T:
        """Runs one step under the deadline; closes the stream if it fails."""
        try:
            with self._deadline.scope():
                return await step()
        except BaseException:
            await self.aclose()
            raise
        await self.aclose()
        raise self._deadline.error()

    def _request(self) -> httpx2.Request:
        headers = dict(self._headers)
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return self._http.build_request(
            self._method,
            self._url,
            headers=headers,
            content=self._content,
            timeout=httpx2.USE_CLIENT_DEFAULT if self._timeout is None else self._timeout,
        )

    async def _ensure_open(self) -> None:
        if self._closed:
            raise StopAsyncIteration  # closed (maybe by another task): never send again
        if self._response is not None or self._stopped:
            return
        if self._reopen_delay is not None:
            delay, self._reopen_delay = self._reopen_delay, None
            note = _secrets.redact(self._reopen_note)  # a server may echo the key in ids
            logger.info("reconnecting to %s in %.2f s (%s)", self._url, delay, note)
            await anyio.sleep(delay)
            if self._closed:  # closed by another task while waiting
                raise StopAsyncIteration
        request = self._request()
        response = self._response = await send(self._http, request, max_retries=self._max_retries)
        self.request_id = response.headers.get("x-request-id")
        if response.status_code == 204:
            self._stopped = True  # WHATWG: 204 No Content means stop reconnecting
            self._chunks = _NoContent()
            return
        content_type = response.headers.get("content-type", "")
        if content_type.partition(";")[0].strip().lower() != "text/event-stream":
            raise ProtocolError(
                f"a stream request was answered with Content-Type {content_type[:100]!r}, "
                "expected 'text/event-stream'"
            )
        self.connections += 1
        self._chunks = aiter_bounded(response)  # decoded 64 KiB at a time at most

    async def _next(self) -> SourceItem | None:
        while True:
            if self._closed:
                await self._release()  # closed by another task during a read
                return None
            while self._pending:
                item = self._pending.popleft()
                if isinstance(item, Comment) or self._deliver(item):
                    return item
            if self._restart:
                self._restart = False
                return await self._reconnect_now()
            await self._ensure_open()
            assert self._chunks is not None
            chunk: bytes | None = None
            try:
                with anyio.CancelScope() as self._read_scope:
                    chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._decoder.close()
                if self._stopped:
                    return None
                return await self._plan("the body ended")
            except httpx2.TransportError as exc:
                self._decoder.close()
                what = (
                    f"a {timeout_name(exc)} timeout"
                    if isinstance(exc, httpx2.TimeoutException)
                    else "the connection broke"
                )
                notice = await self._plan(f"{what} ({exc})" if str(exc) else what)
                if notice is None:
                    raise connection_error(exc, self._url, "reading the stream from") from exc
                return notice
            finally:
                self._read_scope = None
            if chunk is not None:  # else restart() interrupted the read
                feed = self._decoder.feed_all if self._comments else self._decoder.feed
                self._pending.extend(feed(chunk))

    def _deliver(self, sse: ServerSentEvent) -> bool:
        """Whether to deliver ``sse``: ``False`` for an event a server replays at the
        start of a resumed body (its id was delivered before the cut), up to and
        including the resumed id itself. An id repeated within one body is never a
        replay. Memory: the hashes of the last 64 ids."""
        key = hash(sse.id)
        if self._replaying is not None:
            if not id_in_body(sse):
                self._replaying = None  # an event with no id of its own is new
            elif sse.id == self._replaying:
                self._replaying = None
                return False
            elif sse.id and key in self._recent:
                return False
            else:
                self._replaying = None  # a new event: the replay, if any, is over
        if sse.id and (not self._recent or self._recent[-1] != key):
            self._recent.append(key)
        return True

    async def _reconnect_now(self) -> Reconnecting:
        await self._release()
        self._decoder.close()
        self._replaying = self.last_event_id or None
        return Reconnecting(
            attempt=self._attempts,
            delay=0.0,
            last_event_id=self.last_event_id,
            regenerating=not self.last_event_id,
            reason="restart() was called",
        )

    async def _plan(self, reason: str) -> Reconnecting | None:
        """Plans the reconnection after a break, or returns ``None`` when none is left."""
        now = anyio.current_time()
        self._first_break_at = self._first_break_at or now
        resume_id = self.last_event_id
        target = None if self._resume is None else self._resume()
        starting_over = not resume_id and target is None
        policy = self._policy
        if (
            self._closed
            or self._attempts >= policy.max_attempts
            or now - self._first_break_at > policy.budget
            or (starting_over and not self._idempotent and self._regenerations >= policy.regenerate)
        ):
            return None
        delay = policy.backoff(self._attempts, self.retry)
        if now + delay - self._first_break_at > policy.budget:
            return None  # a wait past the budget (a server asking for hours): give up now
        self._attempts += 1
        if starting_over and not self._idempotent:
            self._regenerations += 1
        await self._release()
        self._reopen_delay = delay
        self._replaying = resume_id or None
        if target is not None:
            self._method, self._url, self._content = target[0], httpx2.URL(target[1]), None
            self._headers.pop("Content-Type", None)
        how = (
            f"resuming at {self._url}"
            if target is not None
            else f"resuming after id {resume_id[:80]!r}"
            if resume_id
            else "starting over"
        )
        self._reopen_note = f"attempt {self._attempts} of {policy.max_attempts}, {how}: {reason}"
        return Reconnecting(
            attempt=self._attempts,
            delay=delay,
            last_event_id=resume_id,
            regenerating=starting_over,
            reason=reason,
        )
