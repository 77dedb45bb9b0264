"""The sink interface: where the events of a stream go."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..stream import Event

__all__ = ["Sink"]


@runtime_checkable
class Sink(Protocol):
    """Receives the events of one stream in order, then is closed once.

    ``send`` may be slow (a socket, a disk): the caller awaits it, which is how a sink
    paces the stream. ``aclose`` is called exactly once, also after an error.
    """

    async def send(self, event: Event) -> None: ...

    async def aclose(self) -> None: ...
