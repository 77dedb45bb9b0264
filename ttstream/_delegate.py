"""Attributes read from another object: the pass-through properties of a wrapper.

``done: Delegated[int] = Delegated("_tally")`` in a class body makes ``obj.done`` read
``obj._tally.done``, typed ``int`` for type checkers, read-only like a property without
a setter; :class:`Settable` also writes through. The attribute's docstring is the string
literal after it, as for any attribute (mkdocstrings and IDEs read it). Pure: no I/O.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Generic, Never, NoReturn, Self, TypeVar, overload

__all__ = ["Delegated", "Settable"]

_T = TypeVar("_T")
_MISSING: Any = object()


class Delegated(Generic[_T]):
    """A read-only attribute: the attribute of the same name of the instance's attribute
    ``via`` (a dotted path is followed). With ``default``, an object without that
    attribute reads as ``default`` (a wrapper of several kinds of objects).

    Raises:
        AttributeError: on assignment (the attribute is read-only).
    """

    __slots__ = ("_default", "_get", "_name", "_via")

    def __init__(self, via: str, *, default: _T = _MISSING) -> None:
        self._via = via
        self._default = default
        self._name = ""
        self._get: Callable[[object], _T] = operator.attrgetter(via)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name
        if self._default is _MISSING:
            self._get = operator.attrgetter(f"{self._via}.{name}")
        else:
            via, default = operator.attrgetter(self._via), self._default
            self._get = lambda instance: getattr(via(instance), name, default)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name} of {self._via}>"

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> _T: ...
    def __get__(self, instance: object, owner: type[Any] | None = None) -> _T | Self:
        return self if instance is None else self._get(instance)

    def __set__(self, instance: object, value: Never) -> NoReturn:
        raise AttributeError(f"{self._name!r} is read-only (it is {self._via}.{self._name})")


class Settable(Delegated[_T]):
    """A :class:`Delegated` attribute that can be set too: assigning it sets the
    attribute of the same name of the instance's attribute ``via``."""

    __slots__ = ()

    def __set__(self, instance: object, value: _T) -> None:  # type: ignore[override]
        setattr(operator.attrgetter(self._via)(instance), self._name, value)
