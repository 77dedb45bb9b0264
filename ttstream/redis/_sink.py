"""RedisStreamSink: every item of a stream appended to a Redis stream, for other processes.

Each item becomes one entry (``XADD``), so any process that reads the stream
(:class:`~ttstream.redis.RedisRelay`, ``redis-cli XRANGE``, a service in another
language) sees the generation as it happens, with Redis's entry ids as its order. The
entries are those of the codec (:mod:`ttstream.redis`'s ``encode_item``,
``decode_entry``; ``docs/redis.md``, "Entries"). Writes within ``start_once`` are fenced
by the job's claim (``docs/redis.md``, "Fencing").

The client is ``coredis`` (``pip install 'ttstream[redis]'``), imported only in the Redis
modules, lazily: ``import ttstream.redis`` works without it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

import anyio
import attrs

from .._bounds import require_int, validate_seconds
from .._browser.items import public_message
from .._event_types import StreamItem
from .._exceptions import ClosedError, TTStreamError
from ..events import Completed
from ._codec import Terminal, encode_item, encode_terminal, new_generation
from ._commands import append, check_client, fence_of
from ._errors import ClaimLostError, RedisStreamError

if TYPE_CHECKING:
    from ._commands import RedisClient

__all__ = ["RedisStreamSink"]


@attrs.define
class _Backlog:
    """The entries Redis has not taken yet, oldest first, each with its size in bytes;
    ``size`` is their total, ``failing_since`` when (anyio clock) Redis began failing
    (``None`` while it works)."""

    entries: deque[tuple[Mapping[str, str | bytes], int]] = attrs.Factory(deque)
    size: int = 0
    failing_since: float | None = None

    def push(self, fields: Mapping[str, str | bytes]) -> None:
        size = sum(len(name) + len(value) for name, value in fields.items())
        self.entries.append((fields, size))
        self.size += size

    def pop(self) -> None:
        self.size -= self.entries.popleft()[1]

    def clear(self) -> None:
        self.entries.clear()
        self.size = 0


class RedisStreamSink:
    """Appends every item of a stream to the Redis stream ``key``, then a terminal entry.

    Items are ``PartialImage`` and ``Completed`` events (the image file as the binary
    ``image`` field) and ``Reconnecting`` notices; ``fail(error)`` (called by
    :func:`~ttstream.sinks.pump` when the stream fails) appends the ``error`` entry and
    ``aclose`` appends ``end`` (or ``error`` when no final image came), unless a
    terminal entry was already written. Every ``XADD`` trims the stream to about
    ``maxlen`` entries (``MAXLEN ~``; exactly with ``approximate=False``) and sets its
    expiry to ``ttl`` seconds from now (``PEXPIRE``), so Redis keeps a bounded, expiring
    log. Entry layout: ``docs/redis.md``.

    Under :func:`~ttstream.sinks.pump` it gets the ``block`` and ``latest`` policies and
    the failure isolation of every sink.

    A short Redis outage (a restart, a failover) is ridden out: an entry Redis did not
    take is kept, with the ones after it, in order, in a buffer of at most
    ``max_buffer`` bytes, and written as soon as Redis answers again (each ``send``
    tries first; ``fail`` and ``aclose`` wait for it). Only when Redis has failed for
    ``outage`` seconds, or the buffer would pass ``max_buffer``, does the sink fail:
    ``send`` raises, ``pump`` detaches it and raises :class:`~ttstream.sinks.SinkError`
    at the end. An entry whose command timed out may have been applied before the
    timeout: it is then written twice (same fields, a later id). Entries survive a
    Redis restart only if Redis persists them (``appendonly yes``); ``docs/redis.md``,
    "Outages".

    Within :func:`ttstream.redis.start_once` for the same key, every write is fenced by
    the job's claim: a worker that lost it writes nothing more and raises
    :class:`ClaimLostError`.

    Args:
        redis: an entered coredis client (``async with coredis.Redis(...) as redis``),
            ``Redis`` or ``RedisCluster``, made with ``decode_responses=False``.
        key: the stream's key.
        maxlen: entries kept (at least 1); a generation writes ``n * (partial_images +
            1) + 1`` entries plus its ``Reconnecting`` notices.
        ttl: seconds the stream lives after its last entry (> 0).
        approximate: ``MAXLEN ~`` (Redis trims whole nodes, cheaper; the stream may hold
            a few more than ``maxlen`` entries) or ``MAXLEN =``.
        timeout: seconds each command may take (> 0).
        outage: seconds a Redis failure is ridden out before the sink fails (> 0).
        max_buffer: bytes of entries kept while Redis is away (at least 1; default
            64 MiB: a few images at full size).

    Raises:
        ValidationError: a setting out of range, or a client that decodes responses.
        RedisStreamError: from ``send``, ``fail`` and ``aclose``: Redis refused the
            entries or did not answer for ``outage`` seconds, or the buffer was full.
        ClaimLostError: from the same, under ``start_once``: the claim was lost.
        ClosedError: from ``send``: the terminal entry was already written (also a
            ``RuntimeError``).
    """

    def __init__(
        self,
        redis: RedisClient,
        key: str,
        *,
        maxlen: int = 1000,
        ttl: float = 3600.0,
        approximate: bool = True,
        timeout: float = 5.0,
        outage: float = 10.0,
        max_buffer: int = 64 * 1024 * 1024,
    ) -> None:
        require_int("maxlen", maxlen, 1, "entries")
        require_int("max_buffer", max_buffer, 1, "bytes")
        validate_seconds("ttl", ttl)
        validate_seconds("timeout", timeout)
        validate_seconds("outage", outage)
        check_client(redis, ("eval", "pipeline"))  # append(): eval if fenced, else a pipeline
        self.redis = redis
        self.key = key
        self.maxlen = maxlen
        self.ttl = ttl
        self.approximate = approximate
        self.timeout = timeout
        self.outage = outage
        self.max_buffer = max_buffer
        self.last_id = ""
        """The id of the newest entry written (``""`` before the first)."""
        self.entries = 0
        """Entries written so far, the terminal one included."""
        self._images = 0
        self._ended = False
        self._generation = new_generation()
        self._backlog = _Backlog()

    def __repr__(self) -> str:
        state = "ended" if self._ended else "live"
        pending = self._backlog.entries
        waiting = f" buffered={len(pending)}" if pending else ""
        return f"<RedisStreamSink {state} key={self.key!r} entries={self.entries}{waiting}>"

    async def _write(self, fields: Mapping[str, str | bytes]) -> None:
        fence = fence_of(self.key)
        self.last_id = await append(
            self.redis,
            self.key,
            fields,
            maxlen=self.maxlen,
            approximate=self.approximate,
            ttl=self.ttl,
            limit=self.timeout,
            generation=self._generation if fence is None else fence.generation,
            fence=fence,
        )
        self.entries += 1

    async def _append(self, fields: Mapping[str, str | bytes], *, wait: bool = False) -> None:
        """Queues the entry behind those Redis has not taken yet, and writes what it can
        (with ``wait``, waits for Redis up to ``outage``)."""
        self._backlog.push(fields)
        await self._flush(wait=wait)

    async def _flush(self, *, wait: bool) -> None:
        backlog = self._backlog
        while True:
            try:
                while backlog.entries:
                    await self._write(backlog.entries[0][0])
                    backlog.pop()
            except ClaimLostError:
                self._drop_pending()
                raise
            except RedisStreamError as exc:
                now = anyio.current_time()
                if backlog.failing_since is None:
                    backlog.failing_since = now
                failing = now - backlog.failing_since
                if failing >= self.outage or backlog.size > self.max_buffer:
                    lost = len(backlog.entries)
                    self._drop_pending()
                    why = (
                        f"Redis failed for {failing:.1f} s"
                        if failing >= self.outage
                        else f"more than max_buffer={self.max_buffer} bytes waited for it"
                    )
                    raise RedisStreamError(f"{exc} ({why}; {lost} entries not written)") from exc
                if not wait:
                    return
                await anyio.sleep(min(0.25, self.outage - failing))
            else:
                backlog.failing_since = None
                return

    def _drop_pending(self) -> None:
        self._backlog.clear()
        self._ended = True  # a failed sink takes no more

    async def send(self, event: StreamItem) -> None:
        """Appends the entry for ``event`` (see the class docstring)."""
        if self._ended:
            raise ClosedError(f"{self!r} has written its terminal entry: it takes no more")
        await self._append(encode_item(event))
        if isinstance(event, Completed):
            self._images += 1

    async def fail(self, error: BaseException | str) -> None:
        """Appends the ``error`` terminal entry: ``error`` is the exception's type name,
        ``message`` its message (``ttstream._browser.items.public_message``: redacted, at
        most 500 characters; for a ``SinkError``, the relays' fixed sentence). Does
        nothing once ended."""
        if self._ended:
            return
        self._ended = True
        name = "" if isinstance(error, str) else type(error).__name__
        await self._append(
            encode_terminal(Terminal(outcome="error", error=name, message=public_message(error))),
            wait=True,
        )

    async def aclose(self) -> None:
        """Appends ``end`` (with the number of final images), or ``error`` when no final
        image was written; does nothing once a terminal entry was written."""
        if self._ended:
            return
        if not self._images:
            await self.fail(TTStreamError("the generation ended before its final image"))
            return
        self._ended = True
        await self._append(encode_terminal(Terminal(outcome="end", images=self._images)), wait=True)
