"""The checks of numeric settings, each in one place: integers with a minimum, and
seconds (or other units) that must be finite and positive; and of path and callable
arguments. Pure: no I/O, so that the protocol core checks its settings with them too;
``ttstream._bounds`` re-exports them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable
from typing import TypeVar

from ._exceptions import ValidationError

__all__ = [
    "require_callable",
    "require_hashable",
    "require_int",
    "require_non_negative",
    "require_path",
    "require_seconds",
    "validate_positive",
    "validate_seconds",
]

_T = TypeVar("_T")


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


def require_non_negative(name: str, value: float, unit: str) -> float:
    """``value`` if it is a finite number >= 0 (of ``unit``, named in the error): for a
    wait or a budget that may be zero.

    Raises:
        ValidationError: NaN, an infinity, a negative number or a non-number.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValidationError(name, value, f"a finite number of {unit} >= 0")
    return value


def require_hashable(name: str, value: Hashable) -> Hashable:
    """``value`` if it is hashable (a key of a dict).

    Raises:
        ValidationError: ``value`` is not hashable.
    """
    try:
        hash(value)
    except TypeError:
        raise ValidationError(name, value, "a hashable key, e.g. a str or a tuple") from None
    return value


def require_path(name: str, value: str | os.PathLike[str]) -> str:
    """``value`` as a ``str`` (``os.fspath``) if it is a ``str`` or an ``os.PathLike``
    of one, without NUL characters.

    Raises:
        ValidationError: anything else (a number, ``None``, a ``bytes`` path, a NUL).
    """
    path = os.fspath(value) if isinstance(value, str | os.PathLike) else None
    if not isinstance(path, str) or "\0" in path:
        raise ValidationError(name, value, "a path (a str or os.PathLike) without NUL")
    return path


def require_callable(name: str, value: _T, allowed: str) -> _T:
    """``value`` if it can be called; ``allowed`` says, in the error, what the argument
    takes (e.g. "a function of the item, sync or async"). Checked where the argument is
    given, before the work that would call it starts.

    Raises:
        ValidationError: ``value`` is not callable.
    """
    if not callable(value):
        raise ValidationError(name, value, allowed)
    return value
