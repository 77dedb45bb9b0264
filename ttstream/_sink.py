"""The sink interface: where the events of a stream go. Public as
:class:`ttstream.sinks.Sink`; it lives below both :mod:`ttstream.sinks` and
:mod:`ttstream.redis` (whose ``RedisStreamSink`` is one), ``docs/design.md``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .stream import StreamItem

__all__ = ["Sink"]


@runtime_checkable
class Sink(Protocol):
    """Receives the items of one stream in order, then is closed once.

    Items are ``PartialImage`` and ``Completed`` events and ``Reconnecting`` notices (a
    sink that has nothing to say about a reconnection ignores it). ``send`` may be slow
    (a socket, a disk): the caller awaits it, which is how a sink paces the stream.
    ``aclose`` is called exactly once, also after an error or a cancellation.

    A sink may also define ``async fail(error: Exception)``: :func:`~ttstream.sinks.pump`
    calls it once, before ``aclose``, when the stream itself failed (a relay tells its
    browsers why).
    """

    async def send(self, event: StreamItem) -> None: ...

    async def aclose(self) -> None: ...
