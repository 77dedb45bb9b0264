"""The counters of a batch's job results, shared by :mod:`ttstream.batch` and
``ttstream batch``; private: a user reads them as the batch's own properties."""

from __future__ import annotations

import decimal
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .batch import JobResult

__all__ = ["Tally"]


@attrs.define
class Tally:
    """Counters of jobs' results: a batch's of one run (the properties of
    :class:`~ttstream.batch.Batch` of the same names); ``ttstream batch`` also sums those
    done in earlier runs."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    resumed: int = 0
    images: int = 0
    tokens: dict[str, int] = attrs.Factory(dict)
    cost: decimal.Decimal | None = None
    unpriced: int = 0

    def succeeded(self, result: JobResult) -> None:
        self.done += 1
        self.images += len(result.events)
        for name, value in (result.usage or {}).items():
            self.tokens[name] = self.tokens.get(name, 0) + value
        if result.cost is None:
            self.unpriced += 1
        else:
            self.cost = (self.cost or decimal.Decimal(0)) + result.cost
