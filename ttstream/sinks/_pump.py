"""pump: one stream fanned out to many sinks, each behind its own bounded buffer.

docs/sse.md, "Backpressure" and "Sinks": a reader task runs ahead of the sinks, so every
sink has a bounded buffer and the policy is named:

- ``"block"``: the reader waits for room in every sink's buffer, so the slowest sink
  paces the stream, down to the socket (TCP flow control slows the server).
- ``"latest"``: the reader never waits; a slow sink's buffer keeps only the newest
  preview of the image in progress, and drops it when that image's final arrives.
  ``Completed`` events and ``Reconnecting`` notices are never dropped; a sink's buffer
  holds at most one preview, the final images (``n`` at most) and the notices.

A sink that raises is detached and closed; the others go on; once the stream has ended,
``pump`` raises :class:`SinkError` (when every sink is detached it stops reading at
once). If the stream itself fails, each :class:`~ttstream.sinks.FailureAwareSink` (a sink
with ``async fail(error)``) is told, after the items that came before the error and
before ``aclose``. Every sink is closed
exactly once, on success, on an error and on cancellation, and the stream is closed too.

Every wait is bounded: a sink's ``aclose`` (and the stream's) is shielded but abandoned
after ``ttstream._bounds.CLEANUP_TIMEOUT`` seconds; the stream's overall deadline
(``deadline=``) bounds the sinks too, so a sink whose ``send`` never returns (a
websocket peer that stopped reading) is detached at the deadline with
:class:`SinkError`, and the API connection is released. A cancellation or a
``KeyboardInterrupt`` leaves ``pump`` as itself, not inside an exception group.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import AsyncIterable, Iterator
from typing import Literal, Protocol, runtime_checkable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._base64 import decode_on_arrival
from .._bounds import close_bounded, require_int
from .._event_types import StreamItem
from .._exceptions import APITimeoutError, SinkError, ValidationError
from .._reconnect import Reconnecting
from .._sink import Base64ForwardingSink, FailureAwareSink, Sink
from ..events import Completed, PartialImage
from ..stream import ImageStream

__all__ = ["Policy", "SinkError", "pump"]

Policy = Literal["block", "latest"]


class _Outbox(Protocol):
    """One sink's buffer: the reader puts, the sink's task gets (``None`` at the end)."""

    async def put(self, item: StreamItem) -> None: ...

    async def get(self) -> StreamItem | None: ...

    def end(self) -> None: ...

    def detach(self) -> None: ...

    @property
    def detached(self) -> bool: ...


@runtime_checkable
class _AsyncClosable(Protocol):
    """What ``pump`` closes when it has it: an ``ImageStream``, an async generator. The
    ``stream`` argument is any ``AsyncIterable``, whose type promises no ``aclose`` (an
    ``AsyncIterator`` need not have one), so this stays a check at runtime."""

    async def aclose(self) -> None: ...


class _BlockingOutbox:
    """The ``block`` policy: a memory object stream of ``size`` items; ``put`` waits."""

    def __init__(self, size: int) -> None:
        self._send: MemoryObjectSendStream[StreamItem]
        self._receive: MemoryObjectReceiveStream[StreamItem]
        self._send, self._receive = anyio.create_memory_object_stream[StreamItem](size)
        self._detached = False

    async def put(self, item: StreamItem) -> None:
        """Waits for room; a detached sink's buffer takes nothing more."""
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._send.send(item)

    async def get(self) -> StreamItem | None:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            return None

    def end(self) -> None:
        self._send.close()

    def detach(self) -> None:
        self._detached = True
        self._receive.close()

    @property
    def detached(self) -> bool:
        return self._detached


class _LatestOutbox:
    """One sink's buffer under the ``latest`` policy: ``put`` never waits, and a new
    preview replaces the previews still waiting for the image in progress."""

    def __init__(self) -> None:
        self._items: deque[StreamItem] = deque()
        self._arrived = anyio.Event()
        self._ended = self._detached = False

    async def put(self, item: StreamItem) -> None:
        if self._detached:
            return
        if isinstance(item, PartialImage | Completed):
            # A waiting preview belongs to the image in progress (its final, on arrival,
            # dropped the previews before it): a newer preview or that final supersedes it.
            self._items = deque(w for w in self._items if not isinstance(w, PartialImage))
        self._items.append(item)
        self._arrived.set()

    async def get(self) -> StreamItem | None:
        while not self._items:
            if self._ended or self._detached:
                return None
            await self._arrived.wait()
            self._arrived = anyio.Event()
        return self._items.popleft()

    def end(self) -> None:
        self._ended = True
        self._arrived.set()

    def detach(self) -> None:
        self._detached = True
        self._items.clear()
        self._arrived.set()

    @property
    def detached(self) -> bool:
        return self._detached


async def _feed(
    sink: Sink,
    outbox: _Outbox,
    failures: list[tuple[Sink, BaseException]],
    stream_errors: list[Exception],
    stuck: list[Sink],
) -> None:
    """Feeds one sink from its buffer, tells it if the stream failed, then closes it
    exactly once (shielded, bounded). A sink cancelled inside ``send`` goes to ``stuck``."""
    try:
        while (item := await outbox.get()) is not None:
            try:
                await sink.send(item)
            except anyio.get_cancelled_exc_class():
                stuck.append(sink)
                raise
        if stream_errors and isinstance(sink, FailureAwareSink):
            await sink.fail(stream_errors[0])
    except Exception as exc:
        failures.append((sink, exc))
    finally:
        outbox.detach()  # the reader puts nothing more here, and never waits on it
        try:
            if not await close_bounded(sink.aclose):
                failures.append((sink, TimeoutError("aclose() did not return in time")))
        except Exception as exc:
            failures.append((sink, exc))


class _SinkTimeout(TimeoutError):
    """A sink still busy when the stream's deadline passed."""

    def __init__(self) -> None:
        super().__init__("the sink was still busy when the stream's deadline passed")


async def pump(
    stream: AsyncIterable[StreamItem],
    *sinks: Sink,
    policy: Policy = "block",
    buffer: int = 8,
) -> list[Completed]:
    """Feeds every item of ``stream`` to every sink; returns the ``Completed`` events.

    Args:
        stream: an :class:`~ttstream.ImageStream` (or any async iterable of items); it
            and its iterator are closed (those that have ``aclose``) when ``pump``
            returns or raises, except for the ``ValidationError`` of a bad argument,
            which leaves the stream as it was (not started). Only an
            ``ImageStream``'s deadline bounds the sinks.
        sinks: where the items go, each fed in order by its own task: any
            :class:`~ttstream.sinks.Sink`; a :class:`~ttstream.sinks.FailureAwareSink`
            is also told the stream's error, and when every one is a
            :class:`~ttstream.sinks.Base64ForwardingSink` the stream may keep its
            images as text.
        policy: ``"block"`` or ``"latest"`` (see the module docstring).
        buffer: items each sink's buffer holds under ``"block"`` (at least 1).

    Raises:
        ValidationError: a ``stream`` that is no async iterable (a client, a
            ``SyncImageStream``), a sink that is not a :class:`~ttstream.sinks.Sink`
            instance (a class, an object without ``send`` and ``aclose``), an unknown
            ``policy``, or a ``buffer`` that is no int >= 1; all checked before the
            stream is read, so no request is made.
        SinkError: a sink raised in ``send``, ``fail`` or ``aclose``, once the stream
            has ended (or as soon as every sink is detached); or a sink was still busy
            when the stream's deadline passed (its failure is a ``TimeoutError``).
        APITimeoutError: the stream's deadline passed while no sink was busy.
        TTStreamError: the stream's own error, after every sink got the items before it
            and was closed (it takes precedence over sink failures).
    """
    if not isinstance(stream, AsyncIterable):  # a client, a sync stream: no bare TypeError
        allowed = "an ImageStream (client.generate(...)) or another async iterable of items"
        raise ValidationError("stream", stream, allowed)
    for index, sink in enumerate(sinks):
        _check_sink(index, sink)
    if policy not in ("block", "latest"):
        raise ValidationError("policy", policy, "'block' or 'latest'")
    require_int("buffer", buffer, 1, "items")
    outboxes: list[_Outbox] = [
        _BlockingOutbox(buffer) if policy == "block" else _LatestOutbox() for _ in sinks
    ]
    failures: list[tuple[Sink, BaseException]] = []
    completed: list[Completed] = []
    stream_errors: list[Exception] = []  # the stream's own error, for the sinks' fail()
    if (
        sinks
        and isinstance(stream, ImageStream)
        and not stream.started
        and stream.decode_images is None
        and all(isinstance(sink, Base64ForwardingSink) and sink.relays_base64 for sink in sinks)
    ):
        # Every sink forwards the base64 text (SSERelay): without pybase64, decoding
        # on arrival would cost a decode plus a re-encode (docs/fast.md).
        stream.decode_images = decode_on_arrival(relays_base64=True)
    items = stream.__aiter__()
    stuck: list[Sink] = []  # sinks cancelled inside send()
    try:
        with _unwrapped_group(), anyio.CancelScope(deadline=_deadline_of(stream)) as deadline:
            async with anyio.create_task_group() as tasks:
                for sink, outbox in zip(sinks, outboxes, strict=True):
                    tasks.start_soon(_feed, sink, outbox, failures, stream_errors, stuck)
                try:
                    async for item in items:
                        deadline.deadline = _deadline_of(stream)  # known once it started
                        if isinstance(item, Completed):
                            completed.append(item)
                        elif isinstance(item, Reconnecting) and item.regenerating:
                            completed.clear()  # a new generation yields every image again
                        for outbox in outboxes:
                            await outbox.put(item)
                        if outboxes and all(outbox.detached for outbox in outboxes):
                            break  # nobody is listening any more
                except Exception as exc:  # raised once the sinks got what came before it
                    stream_errors.append(exc)
                finally:
                    for outbox in outboxes:
                        outbox.end()
        if deadline.cancelled_caught and stuck:
            # The deadline passed while a sink was busy: the sink is the culprit.
            failures.extend((sink, _SinkTimeout()) for sink in stuck)
            stream_errors[:] = [e for e in stream_errors if not _is_deadline(e)]
        elif deadline.cancelled_caught and not stream_errors:
            raise APITimeoutError("the stream's deadline passed", timeout="deadline")
    finally:
        for closable in (items,) if items is stream else (items, stream):
            if isinstance(closable, _AsyncClosable):
                await close_bounded(closable.aclose)
    if stream_errors:
        raise stream_errors[0]
    if failures:
        raise SinkError(failures) from failures[0][1]
    return completed


def _check_sink(index: int, sink: object) -> None:
    """Refuses what cannot be a sink before the stream starts (and is billed): a class
    (it has ``send`` and ``aclose`` too, as functions) or an object without them."""
    if isinstance(sink, type):
        raise ValidationError(
            f"sinks[{index}]", sink, f"a sink instance, not a class: pass {sink.__name__}(...)"
        )
    if not isinstance(sink, Sink):
        raise ValidationError(
            f"sinks[{index}]",
            sink,
            "a sink: an instance with async send(item) and aclose() (ttstream.sinks.Sink)",
        )


def _is_deadline(error: Exception) -> bool:
    return isinstance(error, APITimeoutError) and error.timeout == "deadline"


def _deadline_of(stream: AsyncIterable[StreamItem]) -> float:
    """The stream's overall deadline on anyio's clock (an ImageStream's
    ``deadline_at``), or ``math.inf`` for any other iterable."""
    return stream.deadline_at if isinstance(stream, ImageStream) else math.inf


@contextlib.contextmanager
def _unwrapped_group() -> Iterator[None]:
    """Re-raises a lone exception out of a task group's exception group as itself, so a
    cancellation or ``KeyboardInterrupt`` in a sink leaves ``pump`` unwrapped."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
