"""The unions of the events a stream yields, real at runtime: ``isinstance(x, Event)``
works (``types.UnionType``), and type checkers read them as type aliases. Part of the
protocol core: no I/O; sinks and the stream import them from here."""

from __future__ import annotations

from typing import TypeAlias

from ._reconnect import Reconnecting
from .events import Completed, PartialImage

__all__ = ["Event", "StreamItem"]

Event: TypeAlias = PartialImage | Completed
"""An image event: a preview or a final image."""
StreamItem: TypeAlias = PartialImage | Completed | Reconnecting
"""What an :class:`~ttstream.ImageStream` yields: image events and reconnection notices."""
