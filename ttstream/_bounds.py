"""Bounds on waits: the overall deadline of an operation, and shielded cleanup that
cannot hang (docs/reconnection.md, "Every wait is bounded").

Cleanup (closing a response, a sink) is shielded from cancellation so that it
completes inside a cancelled scope too, and bounded by :data:`CLEANUP_TIMEOUT`, so that
a peer that never answers cannot make a cancelled operation uncancellable: this is
anyio's ``move_on_after(t, shield=True)`` pattern.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import anyio

from ._exceptions import APITimeoutError, ValidationError

__all__ = [
    "CLEANUP_TIMEOUT",
    "Deadline",
    "close_bounded",
    "require_seconds",
    "validate_positive",
    "validate_seconds",
]

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


def validate_seconds(name: str, value: float | None) -> float | None:
    """``value`` if it is ``None`` or a finite number of seconds > 0.

    Raises:
        ValidationError: NaN, an infinity, zero, a negative number or a non-number.
    """
    return validate_positive(name, value, "seconds")


def require_seconds(name: str, value: float | None) -> float:
    """``value`` as a float if it is a finite number of seconds > 0 (``None`` is refused:
    for a setting that must bound its wait, docs/reconnection.md, "Every wait is bounded").

    Raises:
        ValidationError: ``None``, NaN, an infinity, zero, a negative number or a
            non-number.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(name, value, "a finite number of seconds > 0")
    return float(value)


def require_int(name: str, value: int, minimum: int, unit: str = "") -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum`` (of ``unit``, named
    in the error): the one check of the integer settings.

    Raises:
        ValidationError: a non-int, a bool, or an int below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(name, value, f"an int >= {minimum}" + (f" ({unit})" if unit else ""))
    return value


def validate_positive(name: str, value: float | None, unit: str) -> float | None:
    """``value`` as a float if it is ``None`` or a finite number > 0 (of ``unit``, named
    in the error).

    Raises:
        ValidationError: NaN, an infinity, zero, a negative number or a non-number.
    """
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(name, value, f"None or a finite number of {unit} > 0")
    return float(value)


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

    def scope(self) -> anyio.CancelScope:
        """A cancel scope that ends the step at the deadline (starting the clock on the
        first call)."""
        if self.seconds is not None and self._at == math.inf:
            self._at = anyio.current_time() + self.seconds
        return anyio.move_on_at(self._at)

    def error(self, what: str = "the stream") -> APITimeoutError:
        """The error for a passed deadline: :class:`APITimeoutError` with
        ``timeout="deadline"``."""
        return APITimeoutError(f"{what}'s deadline of {self.seconds} s passed", timeout="deadline")
