"""RedisRelay: SSERelay's Server-Sent Events, served from a Redis stream by any worker.

A generation written by :class:`~ttstream.sinks.RedisStreamSink` (in any process) is read
back here and sent to browsers in exactly the frames of
:class:`~ttstream.sinks.SSERelay` (the same functions build them), except that each
event's ``id`` is its Redis entry id. A browser that reconnects to another worker sends
``Last-Event-ID`` and resumes after exactly that entry; a late browser gets the replay
of what Redis still holds; the response ends after the terminal entry.

Within one worker, the browsers watching one stream share its reads: one of them at a
time runs ``XREAD BLOCK`` for the whole worker, and the newest ``window`` frames are
kept encoded in memory, so each entry crosses from Redis to a worker once and is
encoded once, whatever the number of browsers. A browser behind that window (a
reconnection, a late or slow browser) catches up with ``XRANGE`` pages of its own.

Every wait is bounded: each ``XREAD BLOCK`` lasts ``block`` seconds at most, each
command ``timeout`` seconds more, a missing stream is waited for ``wait`` seconds, and
a stream that gets no new entry for ``idle_timeout`` seconds (or, with ``claims``,
whose generation's claim expired) ends with an ``error`` event. When Redis fails, the
browsers get an ``error`` event and the response ends. Runs on asyncio and trio.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from .._bounds import validate_seconds
from .._exceptions import ValidationError
from ._redis import (
    EntryId,
    MalformedEntryError,
    RedisStreamError,
    Terminal,
    call,
    claim_key,
    decode_entry,
    format_id,
    last_entry,
    parse_id,
)
from ._sse_frames import (
    SSE_HEADERS,
    Frame,
    Receive,
    Scope,
    Send,
    answered_other_than_get,
    cancel_on_disconnect,
    frame_of,
    plain_response,
)

if TYPE_CHECKING:
    from ._redis import RedisClient

__all__ = ["RedisRelay"]

_KEY = re.compile(r"[A-Za-z0-9._:\-]{1,200}")
_START = (0, 0)
_POLL = 0.1  # seconds between two looks for a stream that does not exist yet


class _Tail:
    """What one worker has read of one stream: the frames of every entry after ``base``
    up to ``last`` (the newest ``window`` of them), the end, and who is reading."""

    def __init__(self, key: str, base: EntryId) -> None:
        self.key = key
        self.frames: deque[tuple[EntryId, Frame[str]]] = deque()
        self.base = base
        self.last = base
        self.end: tuple[EntryId, Frame[str]] | None = None
        self.failure: str | None = None  # the stream cannot go on: why
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
    for name, value in scope.get("headers", ()):
        if name.lower() == b"last-event-id":
            return parse_id(value)
    return None


class RedisRelay:
    """An ASGI application serving ``GET /previews/{key}`` from the Redis stream
    ``prefix + key`` as :class:`~ttstream.sinks.SSERelay` serves one generation.

    Mount it as ``Route("/previews/{key}", relay)`` (Starlette, FastAPI), or serve it on
    its own (the key is then the last segment of the path). Keys are 1 to 200 of
    ``A-Z a-z 0-9 . _ : -``; other paths get 404, methods other than ``GET`` and
    ``HEAD`` 405.

    Each connection gets ``retry: <retry>``, then one event per entry after the
    request's ``Last-Event-ID`` (from the oldest entry Redis holds without one), with
    ``id: <Redis entry id>`` and SSERelay's ``event``/``data``, until the terminal
    entry's ``end`` or ``error`` event; then the response ends. A request whose
    ``Last-Event-ID`` is the terminal entry's id (or later) gets ``204 No Content``,
    which stops ``EventSource``. A key that does not exist gets 404 after ``wait``
    seconds (a browser may connect before the first entry is written). A comment line
    breaks ``keepalive`` seconds of silence. When the stream cannot go on (Redis fails,
    no new entry for ``idle_timeout`` seconds, or with ``claims`` the generation's
    claim expired), the browser gets ``event: error`` with ``{"type": "error",
    "message": ...}``, its ``id`` the last one sent, and the response ends; if Redis
    fails before the response started, the answer is 503.

    Args:
        redis: an entered coredis client (``Redis`` or ``RedisCluster``) made with
            ``decode_responses=False``, used from the event loop that serves the app.
        prefix: put before the key from the path (only streams under it are served).
        claims: the streams are started with :func:`ttstream.relay.start_once`: a stream
            with no terminal entry whose claim (``ttstream.relay.claim_key(key)``) is
            gone has lost its worker and ends with an error event.
        window: frames kept in memory per stream being watched (at least 1); each costs
            its image's base64 size, shared by that stream's browsers in this worker.
        retry: the reconnection time sent to browsers, in milliseconds.
        keepalive: seconds of silence after which a comment line is sent (> 0).
        wait: seconds a request for a missing key waits before its 404 (>= 0).
        block: seconds each ``XREAD BLOCK`` waits for new entries (> 0).
        idle_timeout: seconds without a new entry after which a stream with no terminal
            entry is given up (> 0).
        timeout: seconds each Redis command may take, beyond its ``BLOCK`` (> 0).

    Raises:
        ValueError: a setting out of range, or a client that decodes responses.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str = "",
        claims: bool = False,
        window: int = 8,
        retry: int = 3000,
        keepalive: float = 15.0,
        wait: float = 10.0,
        block: float = 1.0,
        idle_timeout: float = 600.0,
        timeout: float = 5.0,
    ) -> None:
        if not isinstance(window, int) or window < 1:
            raise ValidationError("window", window, "an int >= 1 (frames)")
        if not isinstance(retry, int) or retry < 0:
            raise ValidationError("retry", retry, "an int >= 0 (milliseconds)")
        if wait != 0:
            validate_seconds("wait", wait)
        for name, value in (
            ("keepalive", keepalive),
            ("block", block),
            ("idle_timeout", idle_timeout),
            ("timeout", timeout),
        ):
            validate_seconds(name, value)
        if getattr(redis, "decode_responses", False):
            raise ValidationError("redis", redis, "a coredis client with decode_responses=False")
        self.redis = redis
        self.prefix = prefix
        self.claims = claims
        self.window = window
        self.retry = retry
        self.keepalive = keepalive
        self.wait = wait
        self.block = block
        self.idle_timeout = idle_timeout
        self.timeout = timeout
        self._tails: dict[str, _Tail] = {}
        self.connections = 0
        """Connections being served right now."""
        self.reads = 0
        """``XREAD`` and ``XRANGE`` commands run so far (shared reads count once)."""

    def __repr__(self) -> str:
        return (
            f"<RedisRelay prefix={self.prefix!r} streams={len(self._tails)} "
            f"connections={self.connections}>"
        )

    def _key_of(self, scope: Scope) -> str | None:
        key = scope.get("path_params", {}).get("key")
        if key is None:
            key = str(scope.get("path", "")).rstrip("/").rpartition("/")[2]
        return f"{self.prefix}{key}" if isinstance(key, str) and _KEY.fullmatch(key) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serves one browser (ASGI 3); answers ``lifespan``, refuses ``websocket``."""
        if await answered_other_than_get(scope, receive, send):
            return
        key = self._key_of(scope)
        if key is None:
            await plain_response(send, 404, b"no such preview stream")
            return
        after = _last_event_id(scope)
        try:
            if not await self._exists(key):
                # 404 also stops the browser's EventSource from reconnecting.
                await plain_response(send, 404, b"no such preview stream")
                return
            # Only a resumption needs the newest entry: to answer 204 after the end.
            newest = None if after is None else await last_entry(self.redis, key, self.timeout)
        except RedisStreamError:
            await plain_response(send, 503, b"the preview store is unavailable")
            return
        if after is not None and newest is not None:
            newest_id = parse_id(newest[0]) or _START
            if newest[1] and after >= newest_id:
                await plain_response(send, 204, b"")
                return
            if after > newest_id:
                after = None  # not an id of this stream: the replay from the start
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        tail = self._tails.get(key)
        if tail is None:
            tail = self._tails[key] = _Tail(key, after or _START)
        tail.viewers += 1
        self.connections += 1
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(cancel_on_disconnect, receive, tasks.cancel_scope)
                with contextlib.suppress(OSError):  # the browser left while we sent
                    await self._serve(send, tail, after or _START)
                tasks.cancel_scope.cancel()
        finally:
            self.connections -= 1
            tail.viewers -= 1
            if tail.viewers == 0 and self._tails.get(key) is tail:
                del self._tails[key]

    async def _exists(self, key: str) -> bool:
        """Whether ``key`` holds a stream, waiting ``wait`` seconds for it to appear.

        It polls ``TYPE`` every 0.1 s rather than blocking in an ``XREAD`` of its own:
        many browsers wait for a job about to start, and one blocking read each would
        hold as many connections and fetch its first entry once per browser."""
        deadline = anyio.current_time() + self.wait
        while True:
            kind = await call("TYPE", key, self.timeout, lambda: self.redis.type(key))
            if kind == b"stream":
                return True
            if kind not in (None, b"none"):
                return False
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return False
            await anyio.sleep(min(_POLL, remaining))

    async def _serve(self, send: Send, tail: _Tail, after: EntryId) -> None:
        """Sends the frames after ``after``, reading on as needed, until the end."""

        async def write(data: bytes, *, more: bool = True) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": more})

        await write(f"retry: {self.retry}\n\n".encode())
        quiet_since = anyio.current_time()
        while True:
            if after < tail.base:  # behind the window: catch up from Redis on our own
                try:
                    batch = await self._range(tail.key, after)
                except (RedisStreamError, MalformedEntryError) as exc:
                    await write(self._error(after, exc), more=False)
                    return
                if not batch:  # trimmed (MAXLEN) or expired: what is left is the window
                    after = tail.base
                for entry_id, frame, terminal in batch:
                    await write(frame.data, more=not terminal)
                    after = entry_id
                    if terminal:
                        return
                quiet_since = anyio.current_time()
                continue
            pending = [(i, frame) for i, frame in tail.frames if i > after]
            for entry_id, frame in pending:
                await write(frame.data)
                after = entry_id
            if pending:
                quiet_since = anyio.current_time()
                continue
            if tail.end is not None:
                end_id, frame = tail.end
                await write(frame.data if end_id > after else b"", more=False)
                return
            if tail.failure is not None:
                await write(self._error(after, tail.failure), more=False)
                return
            if not tail.reading:
                await self._read(tail)
            else:
                changed = tail.changed
                with anyio.move_on_after(self.block + self.timeout):
                    await changed.wait()
            if anyio.current_time() - quiet_since >= self.keepalive:
                await write(b":\n\n")
                quiet_since = anyio.current_time()

    def _error(self, after: EntryId, reason: BaseException | str) -> bytes:
        payload = Terminal(outcome="error", message=str(reason)).payload()
        return Frame.of(format_id(after), *payload).data

    def _frames_of(self, entries: Any) -> list[tuple[EntryId, Frame[str], bool]]:
        """Decodes and encodes entries: ``(id, frame, terminal)`` each, in order, up to
        the first terminal one."""
        frames: list[tuple[EntryId, Frame[str], bool]] = []
        for entry in entries:
            raw = entry.identifier
            text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
            entry_id = parse_id(text)
            if entry_id is None:
                raise MalformedEntryError(f"entry id {text!r} is not a stream entry id")
            item = decode_entry(text, entry.field_values)
            if isinstance(item, Terminal):
                frames.append((entry_id, Frame.of(text, *item.payload()), True))
                break
            frames.append((entry_id, frame_of(text, item), False))
        return frames

    async def _range(self, key: str, after: EntryId) -> list[tuple[EntryId, Frame[str], bool]]:
        """A page of the entries after ``after`` (``XRANGE key (after + COUNT window``)."""
        self.reads += 1
        entries = await call(
            "XRANGE",
            key,
            self.timeout,
            lambda: self.redis.xrange(key, f"({format_id(after)}", "+", count=self.window),
        )
        return self._frames_of(entries)

    async def _read(self, tail: _Tail) -> None:
        """One shared ``XREAD BLOCK`` after ``tail.last``: appends the frames, or, when
        nothing came, checks that the generation is still alive."""
        tail.reading = True
        try:
            self.reads += 1
            found = await call(
                "XREAD",
                tail.key,
                self.block + self.timeout,
                lambda: self.redis.xread(
                    {tail.key: format_id(tail.last)},
                    count=self.window,
                    block=max(1, round(self.block * 1000)),
                ),
            )
            entries = next(iter(found.values()), ()) if found else ()
            for entry_id, frame, terminal in self._frames_of(entries):
                tail.read_at = anyio.current_time()
                tail.last = entry_id
                if terminal:
                    tail.end = (entry_id, frame)
                    break
                tail.frames.append((entry_id, frame))
                while len(tail.frames) > self.window:
                    tail.base = tail.frames.popleft()[0]
            if not entries:
                tail.failure = await self._gone(tail)
        except (RedisStreamError, MalformedEntryError) as exc:
            tail.failure = str(exc)
            if self._tails.get(tail.key) is tail:
                del self._tails[tail.key]  # later browsers start over with a new tail
        finally:
            tail.reading = False
            tail.notify()

    async def _gone(self, tail: _Tail) -> str | None:
        """Why a stream that got nothing new cannot go on, or ``None`` if it can."""
        if anyio.current_time() - tail.read_at > self.idle_timeout:
            return f"no new entry for {self.idle_timeout:g} s: the generation is lost"
        if self.claims:
            claim = claim_key(tail.key)
            held = await call("EXISTS", claim, self.timeout, lambda: self.redis.exists([claim]))
            if not held:
                return "the worker running this generation stopped before its end"
        return None
