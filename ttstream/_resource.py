"""``Resource``: the synchronous counterpart of ``anyio.abc.AsyncResource``.

``with resource:`` returns the object and calls its :meth:`Resource.close` on the way out,
however the block ends; the async classes of ttstream derive from
``anyio.abc.AsyncResource`` for the same with ``async with`` and ``aclose()``. Pure: no I/O.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self

__all__ = ["Resource"]


class Resource(abc.ABC):
    """A closeable object used as ``with resource:`` (entering may do more, e.g. start
    it: a subclass overrides ``__enter__`` then)."""

    __slots__ = ()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @abc.abstractmethod
    def close(self) -> None:
        """Releases what the object holds; idempotent."""
