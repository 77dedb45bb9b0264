"""Bounds on waits: the overall deadline of an operation, and shielded cleanup that
cannot hang (docs/reconnection.md, "Every wait is bounded").

Cleanup (closing a response, a sink) is shielded from cancellation so that it
completes inside a cancelled scope too, and bounded by :data:`CLEANUP_TIMEOUT`, so that
a peer that never answers cannot make a cancelled operation uncancellable: this is
anyio's ``move_on_after(t, shield=True)`` pattern.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager

import anyio
import httpx2

from ._checks import require_int, require_seconds, validate_positive, validate_seconds
from ._exceptions import APITimeoutError, ValidationError

__all__ = [
    "CLEANUP_TIMEOUT",
    "CLIENT_TIMEOUT",
    "ClientTimeout",
    "Deadline",
    "close_bounded",
    "require_int",
    "require_seconds",
    "require_timeout",
    "stream_timeout",
    "validate_positive",
    "validate_seconds",
]

_NO_DEADLINE = contextlib.nullcontext()

CLEANUP_TIMEOUT = 3.0
"""Seconds a shielded cleanup step (closing a response, a sink's ``aclose``) may take
before it is abandoned."""

_TIMEOUT_ALLOWED = (
    "a finite number of seconds > 0, or an httpx2.Timeout whose connect, read, write and "
    "pool are each such a number"
)


class ClientTimeout(enum.Enum):
    """The type of :data:`CLIENT_TIMEOUT`, the default of a call's ``timeout=``."""

    CLIENT = "the client's"

    def __repr__(self) -> str:
        return "CLIENT_TIMEOUT"


CLIENT_TIMEOUT = ClientTimeout.CLIENT
"""A call's ``timeout=`` left out: the stream's requests use the client's ``timeout``.
A sentinel rather than ``None``, which is refused as the client's ``timeout=None`` is:
every wait is bounded."""


def require_timeout(name: str, value: object) -> httpx2.Timeout:
    """``value`` as an ``httpx2.Timeout``: an ``httpx2.Timeout`` as it is, or a finite
    number of seconds > 0 for every phase (connect, read, write, pool). The one check of
    a client's ``timeout=`` and of a call's.

    Raises:
        ValidationError: anything else, naming ``name`` and what is allowed: ``None``
            too, and an ``httpx2.Timeout`` with a phase of ``None`` (httpx's "no
            timeout"), 0, a negative or an infinite number: every wait is bounded.
    """
    try:
        if isinstance(value, httpx2.Timeout):
            for phase in (value.connect, value.read, value.write, value.pool):
                require_seconds(name, phase)
            return value
        return httpx2.Timeout(require_seconds(name, value))  # type: ignore[arg-type]
    except ValidationError:
        raise ValidationError(name, value, _TIMEOUT_ALLOWED) from None


def stream_timeout(
    given: float | httpx2.Timeout | ClientTimeout, client: httpx2.Timeout
) -> httpx2.Timeout:
    """The timeout of every request of one stream (its first request, retries,
    reconnections, resumes): the call's ``timeout=`` (checked by
    :func:`require_timeout`), else the ``client``'s.

    Raises:
        ValidationError: a ``given`` timeout :func:`require_timeout` refuses.
    """
    if isinstance(given, ClientTimeout):
        return client
    return require_timeout("timeout", given)


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
