"""Signatures of methods whose ``**kwargs`` stand for a known list of keywords.

A method typed ``**options: Unpack[SomeTypedDict]`` (PEP 692) lets type checkers and IDEs
see every keyword with its type, but at run time Python accepts any keyword and
``inspect.signature`` (``help()``) shows ``**options``. The decorators here close that gap
without writing the keywords out again: the method refuses an unknown keyword with the
``TypeError`` Python raises for a function with explicit keywords, and its signature lists
each keyword on its own. Pure: no I/O.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

__all__ = ["forwards_to", "with_keywords"]

_F = TypeVar("_F", bound=Callable[..., Any])


def with_keywords(method: _F, keywords: Iterable[inspect.Parameter], *, first: bool) -> _F:
    """``method`` with its ``**kwargs`` replaced by ``keywords`` (keyword-only
    parameters): a keyword that is neither one of them nor one of the method's own raises
    ``TypeError`` at the call, naming the method and the closest known keyword (``image``:
    "did you mean 'images'?", openai's name for an edit's input), and
    ``inspect.signature`` lists them after the method's own keyword-only parameters, or
    before them when ``first`` (a wrapper's extra keywords, such as the sync client's
    ``backend``, come last)."""
    signature = inspect.signature(method)
    own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    added = [p for p in keywords if p.name not in {q.name for q in own}]
    known = frozenset(p.name for p in (*own, *added))

    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for name in kwargs:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(
                    f"{method.__qualname__}() got an unexpected keyword argument {name!r}{hint}"
                )
        return method(*args, **kwargs)

    leading = [p for p in own if p.kind is not p.KEYWORD_ONLY]
    trailing = [p for p in own if p.kind is p.KEYWORD_ONLY]
    parameters = [*leading, *added, *trailing] if first else [*own, *added]
    checked.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return cast("_F", checked)


def forwards_to(*targets: Callable[..., Any], options: Any) -> Callable[[_F], _F]:
    """A decorator for a method that passes its ``**options: Unpack[options]`` (a
    ``TypedDict`` of keywords of ``targets``) on unchanged: the method takes those
    keywords with the targets' defaults and annotations, in the targets' order, as
    :func:`with_keywords` describes. The defaults live once, in the targets.

    Raises:
        TypeError: at decoration, a key of ``options`` that is no keyword of a target
            (the lists drifted apart).
    """
    names = options.__required_keys__ | options.__optional_keys__
    found: dict[str, inspect.Parameter] = {}
    for target in targets:
        for p in inspect.signature(target).parameters.values():
            if p.name in names and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                found.setdefault(p.name, p.replace(kind=p.KEYWORD_ONLY))  # the first one's
    keywords = list(found.values())
    if stray := sorted(names - found.keys()):
        raise TypeError(f"{targets[0].__qualname__}() takes no keyword {', '.join(stray)}")
    return lambda method: with_keywords(method, keywords, first=True)
