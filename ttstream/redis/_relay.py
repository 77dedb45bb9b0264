"""RedisRelay: SSERelay's Server-Sent Events, served from a Redis stream by any worker.

A generation written by :class:`~ttstream.redis.RedisStreamSink` (in any process) is read
back here and sent to browsers in exactly the frames of
:class:`~ttstream.sinks.SSERelay` (the same functions build them), except that each
event's ``id`` is its Redis entry id. A browser that reconnects to another worker sends
``Last-Event-ID`` and resumes after exactly that entry, if it is an entry of the
stream's current generation (else it restarts at that generation's start); a late
browser gets the replay of what Redis still holds; the response ends after the terminal
entry.

Within one worker, the browsers watching one generation share its reads: one of them at
a time runs ``XREAD BLOCK`` for the whole worker, and the newest ``window`` frames are
kept encoded in memory, so each entry crosses from Redis to a worker once and is
encoded once, whatever the number of browsers. A browser behind that window (a
reconnection, a late or slow browser) catches up with ``XRANGE`` pages of its own.

Every wait is bounded: each ``XREAD BLOCK`` lasts ``block`` seconds at most, each
command ``timeout`` seconds more, each send to a browser ``send_timeout``, a missing
stream is waited for ``wait`` seconds, a Redis outage is ridden out for ``outage``
seconds, and a stream that gets no new entry for ``idle_timeout`` seconds (or, with
``claims``, whose generation's claim expired) ends with an ``error`` event. Runs on
asyncio and trio.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._bounds import require_int, validate_seconds
from .._browser import frames
from .._browser.audience import ViewerCounts, ViewerGate
from .._browser.frames import Receive, Scope, Send
from .._browser.resume import last_event_id
from .._browser.viewers import FORBIDDEN, Authorize
from .._delegate import Delegated
from .._exceptions import ValidationError
from ._codec import (
    EntryId,
    Terminal,
    decode_entry,
    format_id,
    generation_of,
    is_terminal,
    parse_id,
)
from ._commands import call, check_client, claim_key, newest_entry
from ._errors import MalformedEntryError, RedisStreamError

if TYPE_CHECKING:
    from ._commands import RedisClient

__all__ = ["RedisRelay"]

_KEY = re.compile(r"[A-Za-z0-9._:\-]{1,200}")
_START = (0, 0)
_POLL = 0.1  # seconds between two looks for a stream that does not exist yet

# What browsers are told when the stream cannot go on. Fixed sentences: an error event
# never quotes a stored field, nor Redis's own error text.
UNAVAILABLE = "reading the preview store failed: Redis did not answer; try again later"
NOT_OURS = "this preview stream holds an entry ttstream did not write"
UNREADABLE = "an entry of this preview stream could not be read"
REPLACED = ""  # not a sentence: a new generation took the key over (no error event)


class _Tail:
    """What one worker has read of one generation of one stream: the frames of every
    entry after ``base`` up to ``last`` (the newest ``window`` of them), the end, and
    who is reading."""

    def __init__(self, key: str, generation: bytes, base: EntryId) -> None:
        self.key = key
        self.generation = generation
        self.frames: deque[tuple[EntryId, frames.Frame[str]]] = deque()
        self.base = base
        self.last = base
        self.end: tuple[EntryId, frames.Frame[str]] | None = None
        self.failure: str | None = None  # the stream cannot go on: why (a fixed text)
        self.replaced = False  # a new generation took the key: viewers come back
        self.failing_since: float | None = None  # Redis has failed since then
        self.reading = False
        self.read_at = anyio.current_time()  # when the newest entry was read
        self.viewers = 0
        self.changed = anyio.Event()

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


def _last_event_id(scope: Scope) -> EntryId | None:
    """The ``Last-Event-ID`` request header as an entry id; ``None`` when absent or not
    an entry id (the browser then gets the replay from the start)."""
    return last_event_id(scope, parse_id)


@attrs.frozen
class _Reading:
    """How a relay reads Redis (the arguments of :class:`RedisRelay` of the same names)."""

    window: int
    wait: float
    block: float
    idle_timeout: float
    timeout: float
    outage: float


@attrs.define
class _Counts(ViewerCounts):
    reads: int = 0  # XREAD and XRANGE commands run so far


class RedisRelay:
    """An ASGI application serving ``GET /previews/{key}`` from the Redis stream
    ``prefix + key`` as :class:`~ttstream.sinks.SSERelay` serves one generation.

    Mount it as ``Route("/previews/{key}", relay)`` (Starlette, FastAPI), or serve it on
    its own (the key is then the last segment of the path). Keys are 1 to 200 of
    ``A-Z a-z 0-9 . _ : -``; other paths get 404, methods other than ``GET`` and
    ``HEAD`` 405. Only streams ttstream wrote are served (every entry carries its
    generation's marker, ``docs/redis.md``); any other key gets 404.

    Viewers: with ``token_secret``, a request must present a token made by
    :func:`~ttstream.sinks.sign_viewer_token` for the key of its URL (the ``token`` query
    parameter or ``Authorization: Bearer``); with ``authorize``, ``authorize(scope,
    key)`` must return (or await to) ``True``. A refused viewer gets 403 with a fixed
    sentence and nothing else.

    Each connection gets ``retry: <retry>``, then one event per entry after the
    request's ``Last-Event-ID`` (from the oldest entry Redis holds without one, or when
    it names no entry of the stream's current generation), with ``id: <Redis entry
    id>`` and SSERelay's ``event``/``data``, until the terminal entry's ``end`` or
    ``error`` event; then the response ends. A request whose ``Last-Event-ID`` is the
    terminal entry's id gets ``204 No Content``, which stops ``EventSource``. A key
    that does not exist gets 404 after ``wait`` seconds (a browser may connect before
    the first entry is written). A comment line breaks ``keepalive`` seconds of silence.

    When Redis fails, browsers are made to come back rather than give up (a non-200
    answer ends an ``EventSource`` for good): before the response started, the answer
    is 200 with ``retry:`` and an immediate end (the browser reconnects after ``retry``
    ms); during it, keepalive comments hold the browser while the reads are retried for
    up to ``outage`` seconds. When the stream cannot go on (Redis failed for longer, no
    new entry for ``idle_timeout`` seconds, an entry ttstream did not write, or with
    ``claims`` the generation's claim expired), the browser gets ``event: error`` with
    ``{"type": "error", "message": <a fixed sentence>}``, its ``id`` the last one sent,
    and the response ends. When a new generation takes the key over, its viewers'
    responses end without an event, and their reconnection starts at its start.

    A browser that does not take a frame within ``send_timeout`` seconds is dropped:
    its response ends and what the relay held for it is released. Per browser the relay
    holds at most one piece of 64 KiB handed to the server (the frames are shared, and
    written in the pieces each cuts once, as :class:`~ttstream.sinks.SSERelay` does),
    plus one ``XRANGE`` page of ``window`` frames while it catches up; the server's
    socket buffers are the ASGI server's.

    Args:
        redis: an entered coredis client (``Redis`` or ``RedisCluster``) made with
            ``decode_responses=False``, used from the event loop that serves the app.
        prefix: put before the key from the path (only streams under it are served;
            not empty).
        claims: the streams are started with :func:`ttstream.redis.start_once`: a stream
            with no terminal entry whose claim (``ttstream.redis.claim_key(key)``) is
            gone has lost its worker and ends with an error event.
        authorize: ``authorize(scope, key)`` (sync or async) decides who may watch.
        token_secret: the secret viewer tokens are signed with (at least 16 bytes).
        window: frames kept in memory per stream being watched (at least 1); each costs
            its image's base64 size, shared by that stream's browsers in this worker.
        retry: the reconnection time sent to browsers, in milliseconds.
        keepalive: seconds of silence after which a comment line is sent (> 0).
        wait: seconds a request for a missing key waits before its 404 (>= 0).
        block: seconds each ``XREAD BLOCK`` waits for new entries (> 0).
        idle_timeout: seconds without a new entry after which a stream with no terminal
            entry is given up (> 0).
        timeout: seconds each Redis command may take, beyond its ``BLOCK`` (> 0).
        send_timeout: seconds a browser may take to accept one frame (> 0).
        outage: seconds a Redis failure is ridden out while a response runs (> 0).

    Raises:
        ValidationError: a setting out of range, ``token_secret`` not bytes of at least
            16, ``authorize`` not callable, or a client that decodes responses.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str = "ttstream:",
        claims: bool = False,
        authorize: Authorize | None = None,
        token_secret: bytes | None = None,
        window: int = 8,
        retry: int = 3000,
        keepalive: float = 15.0,
        wait: float = 10.0,
        block: float = 1.0,
        idle_timeout: float = 600.0,
        timeout: float = 5.0,
        send_timeout: float = 30.0,
        outage: float = 10.0,
    ) -> None:
        require_int("window", window, 1, "frames")
        require_int("retry", retry, 0, "milliseconds")
        if not isinstance(prefix, str) or not prefix:
            raise ValidationError("prefix", prefix, "a non-empty key prefix, e.g. 'ttstream:'")
        if wait != 0:
            validate_seconds("wait", wait)
        for name, value in (
            ("keepalive", keepalive),
            ("block", block),
            ("idle_timeout", idle_timeout),
            ("timeout", timeout),
            ("send_timeout", send_timeout),
            ("outage", outage),
        ):
            validate_seconds(name, value)
        check_client(redis, ("xrange", "xread", "xrevrange", "type", "exists"))  # reads only
        self.redis = redis
        self.prefix = prefix
        self.claims = claims
        self._gate = ViewerGate(authorize, token_secret)
        self.retry = retry
        self.keepalive = keepalive
        self.send_timeout = send_timeout
        self._reading = _Reading(window, wait, block, idle_timeout, timeout, outage)
        self._tails: dict[tuple[str, bytes], _Tail] = {}
        self._counts = _Counts()

    # The options, as given (read-only).

    authorize: Delegated[Authorize | None] = Delegated("_gate")
    """The ``authorize(scope, job_key)`` callback, or ``None``."""
    token_secret: Delegated[bytes | None] = Delegated("_gate")
    """The secret viewer tokens are checked with, or ``None``."""
    window: Delegated[int] = Delegated("_reading")
    """Frames kept in memory per stream being watched (>= 1)."""
    wait: Delegated[float] = Delegated("_reading")
    """Seconds a request for a missing key waits before its 404 (>= 0)."""
    block: Delegated[float] = Delegated("_reading")
    """Seconds each ``XREAD BLOCK`` waits for new entries (> 0)."""
    idle_timeout: Delegated[float] = Delegated("_reading")
    """Seconds without a new entry after which a stream with no terminal entry is lost."""
    timeout: Delegated[float] = Delegated("_reading")
    """Seconds each Redis command may take, beyond its ``BLOCK`` (> 0)."""
    outage: Delegated[float] = Delegated("_reading")
    """Seconds a Redis failure is ridden out while a response runs (> 0)."""

    # The counters.

    connections: Delegated[int] = Delegated("_counts")
    """Connections being served right now."""
    reads: Delegated[int] = Delegated("_counts")
    """``XREAD`` and ``XRANGE`` commands run so far (shared reads count once)."""
    dropped: Delegated[int] = Delegated("_counts")
    """Browsers dropped for not taking a frame within ``send_timeout``."""

    def __repr__(self) -> str:
        return (
            f"<RedisRelay prefix={self.prefix!r} streams={len(self._tails)} "
            f"connections={self.connections}>"
        )

    def _job_of(self, scope: Scope) -> str | None:
        key = scope.get("path_params", {}).get("key")
        if key is None:
            key = str(scope.get("path", "")).rstrip("/").rpartition("/")[2]
        return key if isinstance(key, str) and _KEY.fullmatch(key) else None

    async def _come_back(self, send: Send) -> None:
        """200 with ``retry:`` and an immediate end: the browser reconnects after
        ``retry`` ms (a 503 would end its ``EventSource`` for good)."""
        await send({"type": "http.response.start", "status": 200, "headers": frames.SSE_HEADERS})
        await send({"type": "http.response.body", "body": f"retry: {self.retry}\n\n".encode()})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serves one browser (ASGI 3); answers ``lifespan``, refuses ``websocket``."""
        if await frames.answered_other_than_get(scope, receive, send):
            return
        job = self._job_of(scope)
        if job is None:
            await frames.plain_response(send, 404, b"no such preview stream")
            return
        if not await self._gate.allows(scope, job):
            await frames.plain_response(send, 403, FORBIDDEN)
            return
        key = self.prefix + job
        after = _last_event_id(scope)
        try:
            newest = await self._newest(key) if await self._exists(key) else None
            if newest is not None and after is not None:
                after = await self._resumable(key, after, newest)
        except RedisStreamError:
            await self._come_back(send)
            return
        if newest is None or generation_of(newest[1]) is None:
            # 404 also stops the browser's EventSource from reconnecting.
            await frames.plain_response(send, 404, b"no such preview stream")
            return
        generation = generation_of(newest[1]) or b""
        if (
            after is not None
            and is_terminal(newest[1])
            and after >= (parse_id(newest[0]) or _START)
        ):
            await frames.plain_response(send, 204, b"")
            return
        if not await frames.start_event_stream(scope, send):
            return
        tail = self._tails.get((key, generation))
        if tail is None:
            # From the generation's start, whoever comes first: a window that began at a
            # resuming browser's id would send every later browser from the start to
            # catch up on its own (a page of frames each, encoded for it alone).
            tail = self._tails[key, generation] = _Tail(key, generation, _START)
        tail.viewers += 1
        try:
            serve = functools.partial(self._serve, send, tail, after or _START)
            await self._counts.watch(receive, self.send_timeout, serve)
        finally:
            tail.viewers -= 1
            if tail.viewers == 0 and self._tails.get((key, generation)) is tail:
                del self._tails[key, generation]

    async def _newest(self, key: str) -> tuple[str, Any] | None:
        return await newest_entry(self.redis, key, self._reading.timeout)

    async def _resumable(self, key: str, after: EntryId, newest: tuple[str, Any]) -> EntryId | None:
        """``after`` when it names an entry of the stream's current generation (or one
        trimmed from it, older than what Redis holds); ``None`` (start over) for an id of
        another generation."""
        if after == parse_id(newest[0]):
            return after
        text = format_id(after)
        self._counts.reads += 1
        found = await call(
            "XRANGE",
            key,
            self._reading.timeout,
            lambda: self.redis.xrange(key, text, text, count=1),
        )
        if not found:
            return None
        ours = generation_of(newest[1])
        return after if generation_of(found[0].field_values) == ours else None

    async def _exists(self, key: str) -> bool:
        """Whether ``key`` holds a stream, waiting ``wait`` seconds for it to appear.

        It polls ``TYPE`` every 0.1 s rather than blocking in an ``XREAD`` of its own:
        many browsers wait for a job about to start, and one blocking read each would
        hold as many connections and fetch its first entry once per browser."""
        deadline = anyio.current_time() + self._reading.wait
        while True:
            kind = await call("TYPE", key, self._reading.timeout, lambda: self.redis.type(key))
            if kind == b"stream":
                return True
            if kind not in (None, b"none"):
                return False
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return False
            await anyio.sleep(min(_POLL, remaining))

    async def _serve(
        self, send: Send, tail: _Tail, after: EntryId, guard: frames.ViewerGuard
    ) -> None:
        """Sends the frames after ``after``, reading on as needed, until the end; each
        one bounded by ``guard`` (a frame not taken within ``send_timeout`` ends the
        viewer)."""

        async def write(data: bytes, *, more: bool = True) -> None:
            await frames.write_pieces(send, (data,), more=more, guard=guard)

        async def put(frame: frames.Frame[str], *, more: bool = True) -> None:
            # in the pieces the frame cut once for every viewer: a viewer holds one
            # piece handed to the server, never a copy of the whole frame
            await frames.write_pieces(send, frame.pieces(), more=more, guard=guard)

        await write(f"retry: {self.retry}\n\n".encode())
        quiet_since = anyio.current_time()
        failing_since: float | None = None
        while True:
            if after < tail.base:  # behind the window: catch up from Redis on our own
                try:
                    batch, stop = await self._range(tail, after)
                except RedisStreamError:
                    now = anyio.current_time()
                    failing_since = now if failing_since is None else failing_since
                    if now - failing_since >= self._reading.outage:
                        await write(self._error(after, UNAVAILABLE), more=False)
                        return
                    await anyio.sleep(min(self._reading.block, self._reading.outage))
                else:
                    failing_since = None
                    if not batch and stop is None:  # trimmed or expired: the window is left
                        after = tail.base
                    for entry_id, frame, terminal in batch:
                        await put(frame, more=not terminal)
                        after = entry_id
                        if terminal:
                            return
                    if stop == REPLACED:  # a new generation: the browser comes back to it
                        await write(b"", more=False)
                        return
                    if stop is not None:
                        await write(self._error(after, stop), more=False)
                        return
                    quiet_since = anyio.current_time()
                    continue
            else:
                pending = [(i, frame) for i, frame in tail.frames if i > after]
                for entry_id, frame in pending:
                    await put(frame)
                    after = entry_id
                if pending:
                    quiet_since = anyio.current_time()
                    continue
                if tail.end is not None:
                    end_id, frame = tail.end
                    if end_id > after:
                        await put(frame, more=False)
                    else:
                        await write(b"", more=False)
                    return
                if tail.replaced:  # a new generation: the browser comes back to it
                    await write(b"", more=False)
                    return
                if tail.failure is not None:
                    await write(self._error(after, tail.failure), more=False)
                    return
                if not tail.reading:
                    await self._read(tail)
                else:
                    changed = tail.changed
                    with anyio.move_on_after(self._reading.block + self._reading.timeout):
                        await changed.wait()
            if anyio.current_time() - quiet_since >= self.keepalive:
                await write(b":\n\n")
                quiet_since = anyio.current_time()

    def _error(self, after: EntryId, reason: str) -> bytes:
        payload = Terminal(outcome="error", message=reason).payload()
        return frames.Frame.of(format_id(after), *payload).data

    def _frames_of(
        self, tail: _Tail, entries: Any
    ) -> tuple[list[tuple[EntryId, frames.Frame[str], bool]], str | None]:
        """Decodes and encodes entries: ``(id, frame, terminal)`` each, in order, up to
        the first terminal one, and why the stream cannot go on after them, if it
        cannot: :data:`REPLACED` (an entry of another generation: the key was reused),
        or a fixed sentence (an entry ttstream did not write, or cannot read; no stored
        field is quoted)."""
        encoded: list[tuple[EntryId, frames.Frame[str], bool]] = []
        for entry in entries:
            raw = entry.identifier
            text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
            entry_id = parse_id(text)
            generation = generation_of(entry.field_values)
            if entry_id is None or generation is None:
                return encoded, NOT_OURS
            if generation != tail.generation:
                return encoded, REPLACED
            try:
                item = decode_entry(text, entry.field_values)
            except MalformedEntryError:
                return encoded, UNREADABLE
            if isinstance(item, Terminal):
                encoded.append((entry_id, frames.Frame.of(text, *item.payload()), True))
                break
            encoded.append((entry_id, frames.frame_of(text, item), False))
        return encoded, None

    async def _range(
        self, tail: _Tail, after: EntryId
    ) -> tuple[list[tuple[EntryId, frames.Frame[str], bool]], str | None]:
        """A page of the entries after ``after`` (``XRANGE key (after + COUNT window``)."""
        self._counts.reads += 1
        key = tail.key
        entries = await call(
            "XRANGE",
            key,
            self._reading.timeout,
            lambda: self.redis.xrange(key, f"({format_id(after)}", "+", count=self._reading.window),
        )
        return self._frames_of(tail, entries)

    async def _read(self, tail: _Tail) -> None:
        """One shared ``XREAD BLOCK`` after ``tail.last``: appends the frames, or, when
        nothing came, checks that the generation is still alive. A Redis failure is
        retried (the next read, after ``block`` seconds) for ``outage`` seconds."""
        tail.reading = True
        try:
            self._counts.reads += 1
            found = await call(
                "XREAD",
                tail.key,
                self._reading.block + self._reading.timeout,
                lambda: self.redis.xread(
                    {tail.key: format_id(tail.last)},
                    count=self._reading.window,
                    block=max(1, round(self._reading.block * 1000)),
                ),
            )
            tail.failing_since = None
            entries = next(iter(found.values()), ()) if found else ()
            encoded, stop = self._frames_of(tail, entries)
            for entry_id, frame, terminal in encoded:
                tail.read_at = anyio.current_time()
                tail.last = entry_id
                if terminal:
                    tail.end = (entry_id, frame)
                    break
                tail.frames.append((entry_id, frame))
                while len(tail.frames) > self._reading.window:
                    tail.base = tail.frames.popleft()[0]
            if stop == REPLACED:
                tail.replaced = True
                self._forget(tail)
            elif stop is not None:
                self._give_up(tail, stop)
            elif not entries:
                tail.failure = await self._gone(tail)
        except RedisStreamError:
            now = anyio.current_time()
            if tail.failing_since is None:
                tail.failing_since = now
            if now - tail.failing_since >= self._reading.outage:
                self._give_up(tail, UNAVAILABLE)
            else:
                await anyio.sleep(min(self._reading.block, self._reading.outage))
        finally:
            tail.reading = False
            tail.notify()

    def _give_up(self, tail: _Tail, reason: str) -> None:
        tail.failure = reason
        self._forget(tail)

    def _forget(self, tail: _Tail) -> None:
        """Later browsers start over with a new tail."""
        if self._tails.get((tail.key, tail.generation)) is tail:
            del self._tails[tail.key, tail.generation]

    async def _gone(self, tail: _Tail) -> str | None:
        """Why a stream that got nothing new cannot go on, or ``None`` if it can."""
        if anyio.current_time() - tail.read_at > self._reading.idle_timeout:
            return f"no new entry for {self._reading.idle_timeout:g} s: the generation is lost"
        if self.claims:
            claim = claim_key(tail.key)
            held = await call(
                "EXISTS", claim, self._reading.timeout, lambda: self.redis.exists([claim])
            )
            if not held:
                return "the worker running this generation stopped before its end"
        return None
