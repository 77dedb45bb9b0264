"""The ``Last-Event-ID`` request header of a reconnecting browser, read in one place for
both relays (``ttstream.sinks.SSERelay`` and ``ttstream.redis.RedisRelay``); each relay
passes the parser of the ids it writes. No I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .frames import Scope

__all__ = ["last_event_id"]

_Id = TypeVar("_Id")


def last_event_id(scope: Scope, parse: Callable[[str], _Id | None]) -> _Id | None:
    """The ``Last-Event-ID`` header of the ASGI request ``scope`` (the id of the last
    event a reconnecting ``EventSource`` saw: HTML Living Standard, "Server-sent
    events"), decoded as Latin-1 and stripped, then given to ``parse``; ``None``
    when the header is absent or ``parse`` refuses it (returns ``None``). The first of
    repeated headers counts."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"last-event-id":
            return parse(value.decode("latin-1").strip())
    return None
