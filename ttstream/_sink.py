"""The sink interface: where the events of a stream go. Public as
:class:`ttstream.sinks.Sink`; it lives below both :mod:`ttstream.sinks` and
:mod:`ttstream.redis` (whose ``RedisStreamSink`` is one), ``docs/design.md``.

A sink is structural: any object with ``async send(item)`` and ``async aclose()`` is one,
no base class needed. What a sink may do beyond that is declared by a protocol of its
own, one per optional capability, each with the one check
:func:`~ttstream.sinks.pump` makes and what it does when the capability is absent
(``docs/sinks.md``, "Writing a sink"):

- :class:`FailureAwareSink`: ``async fail(error)``, told when the stream itself failed;
- :class:`Base64ForwardingSink`: ``relays_base64``, the sink forwards the base64 text.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ._event_types import StreamItem

__all__ = ["Base64ForwardingSink", "FailureAwareSink", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """Receives the items of one stream in order, then is closed once.

    Items are ``PartialImage`` and ``Completed`` events and ``Reconnecting`` notices (a
    sink that has nothing to say about a reconnection ignores it). ``send`` may be slow
    (a socket, a disk): the caller awaits it, which is how a sink paces the stream.
    ``aclose`` is called exactly once, also after an error or a cancellation.

    The optional capabilities are protocols of their own, which a sink meets by having
    their members (no subclassing): :class:`FailureAwareSink` (``fail``) and
    :class:`Base64ForwardingSink` (``relays_base64``). A sink with neither is a plain
    sink, and :func:`~ttstream.sinks.pump` treats it as their docstrings say.
    """

    async def send(self, event: StreamItem) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class FailureAwareSink(Sink, Protocol):
    """A sink that is told when the stream itself failed: ``async fail(error)``.

    :func:`~ttstream.sinks.pump` calls ``fail`` once, with the stream's error (a
    :class:`~ttstream.TTStreamError` for an API or stream failure), after the items that
    came before the error and before ``aclose``; never when the stream succeeded. A
    relay uses it to tell its browsers why (``SSERelay``, ``WebSocketSink``,
    ``RedisStreamSink``). An exception from ``fail`` counts as the sink's failure
    (:class:`~ttstream.sinks.SinkError`), and ``aclose`` is still called.

    Without ``fail`` (a plain :class:`Sink`), the sink only sees ``aclose``: it learns
    that the stream ended, not that it failed (``pump`` raises the error to its caller).
    """

    async def fail(self, error: Exception) -> None: ...


@runtime_checkable
class Base64ForwardingSink(Sink, Protocol):
    """A sink that forwards each image's base64 text rather than its bytes: it declares
    ``relays_base64 = True`` (a class attribute does), as ``SSERelay`` does.

    When every sink given to :func:`~ttstream.sinks.pump` declares it true and the
    stream (an :class:`~ttstream.ImageStream` not started, ``decode_images`` left
    ``None``) has not chosen, ``pump`` keeps events as text when pybase64 is not
    installed, which saves a decode and a re-encode per image (``docs/fast.md``, "Choosing
    the mode per stream"). Without it, or set false (a plain :class:`Sink`), the stream
    decides as it does alone: images decoded on arrival.
    """

    @property
    def relays_base64(self) -> bool: ...
