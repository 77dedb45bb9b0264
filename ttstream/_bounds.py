"""Bounds on waits: the overall deadline of an operation, and shielded cleanup that
cannot hang (docs/reconnection.md, "Every wait is bounded").

Cleanup (closing a response, a sink) is shielded from cancellation so that it
completes inside a cancelled scope too, and bounded by :data:`CLEANUP_TIMEOUT`, so that
a peer that never answers cannot make a cancelled operation uncancellable: this is
anyio's ``move_on_after(t, shield=True)`` pattern.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager

import anyio

from ._checks import require_int, require_seconds, validate_positive, validate_seconds
from ._exceptions import APITimeoutError

__all__ = [
    "CLEANUP_TIMEOUT",
    "Deadline",
    "close_bounded",
    "require_int",
    "require_seconds",
    "validate_positive",
    "validate_seconds",
]

_NO_DEADLINE = contextlib.nullcontext()

CLEANUP_TIMEOUT = 3.0
"""Seconds a shielded cleanup step (closing a response, a sink's ``aclose``) may take
before it is abandoned."""


async def close_bounded(*steps: Callable[[], Awaitable[object]]) -> bool:
    """Runs each cleanup step in turn, shielded from cancellation, all within
    :data:`CLEANUP_TIMEOUT` seconds. Returns ``False`` when time ran out (the steps not
    finished by then are abandoned), ``True`` otherwise. Exceptions propagate."""
    with anyio.move_on_after(CLEANUP_TIMEOUT, shield=True) as scope:
        for step in steps:
            await step()
    return not scope.cancelled_caught


class Deadline:
    """An overall deadline of ``seconds``, started by the first :meth:`scope` (``None``:
    no deadline). Each step of the operation runs inside ``with deadline.scope():``,
    which ends the step at the deadline; when it did (the ``with`` block was left
    without the step's result), the caller raises :meth:`error`.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = validate_seconds("deadline", seconds)
        self._at = math.inf

    @property
    def at(self) -> float:
        """The deadline on anyio's clock (``math.inf`` when none, or not started)."""
        return self._at

    def scope(self) -> AbstractContextManager[object]:
        """A cancel scope that ends the step at the deadline (starting the clock on the
        first call); without a deadline, a context that does nothing: a stream takes two
        steps per event, and an anyio cancel scope costs microseconds on asyncio."""
        if self.seconds is None:
            return _NO_DEADLINE
        if self._at == math.inf:
            self._at = anyio.current_time() + self.seconds
        return anyio.move_on_at(self._at)

    def error(self, what: str = "the stream") -> APITimeoutError:
        """The error for a passed deadline: :class:`APITimeoutError` with
        ``timeout="deadline"``."""
        return APITimeoutError(f"{what}'s deadline of {self.seconds} s passed", timeout="deadline")
