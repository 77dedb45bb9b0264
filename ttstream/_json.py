"""JSON from outside the process, its nesting bounded.

``json.loads`` recurses once per level of nesting. A hostile text of 100,000 ``[``
drives it to Python's recursion limit, and while it is there the garbage collector may
run the finalizers of unrelated objects with no stack left: they fail, and their
cleanup is lost ("Exception ignored" on stderr). :func:`loads` refuses a text nested
deeper than :data:`MAX_DEPTH` levels before ``json.loads`` sees it, with
:class:`NestedTooDeeply` (a ``json.JSONDecodeError``, so a ``ValueError``, at the
position of the first level too many); every JSON that ttstream reads from a server, a
browser, Redis or a file goes through it. Counting ``[`` and ``{`` (``str.count``, C
speed) settles almost every text; only a text with more of them than ``MAX_DEPTH`` is
scanned, its strings jumped over. No I/O.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "NestedTooDeeply", "loads", "too_deep"]

MAX_DEPTH = 128
"""The deepest nesting of arrays and objects read (the APIs' bodies nest fewer than 10)."""

_SHORT = 16 * 1024  # up to this length, counting every bracket settles it cheaply
_SKIPS = 64  # strings jumped over one by one before the rest is checked in bulk
_BLOCK = 64 * 1024  # characters whose brackets are added up in one go
_BRACKETS = re.compile(r"[\[\]{}]")
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
# a string from its opening quote; group 1 is its closing quote (empty: not ended)
_STRINGS = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+("?)', re.DOTALL)
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class NestedTooDeeply(json.JSONDecodeError):
    """JSON nested deeper than :data:`MAX_DEPTH` levels; ``pos`` is the opening bracket
    of the first level too many."""


def too_deep(text: str, start: int = 0, *, within: int = 0) -> int | None:
    """The index of the first ``[`` or ``{`` at a nesting deeper than :data:`MAX_DEPTH`
    in ``text[start:]`` (brackets inside JSON strings not counted), ``start`` being
    outside any string and ``within`` levels deep (a member's value inside an object is
    1 deep); ``None`` when there is none. Linear in the length, and in C for the most
    part: a short text is settled by counting its brackets; a long one has its first
    strings jumped over with ``str.find`` (an image body is a few strings, one of them
    megabytes long), the brackets between them added up, and the rest, if there are
    many strings, checked with its strings taken out by one regular expression."""
    end = len(text)
    short = end - start <= _SHORT  # then every bracket is counted, in strings or not
    if short and within + text.count("[", start) + text.count("{", start) <= MAX_DEPTH:
        return None
    at, depth = start, within
    for _ in range(_SKIPS):
        at, depth, found = _to_next_string(text, at, depth)
        if found is not None or at >= end:
            return found
    if depth + text.count("[", at) + text.count("{", at) <= MAX_DEPTH:
        return None
    outside = _STRINGS.sub("", text[at:])
    if _walk(outside, 0, len(outside), depth)[1] is None:
        return None
    while at < end:  # too deep: where, string by string (a refusal's cost only)
        at, depth, found = _to_next_string(text, at, depth)
        if found is not None:
            return found
    raise AssertionError("no level too many")  # pragma: no cover (the bulk check found one)


def _to_next_string(text: str, at: int, depth: int) -> tuple[int, int, int | None]:
    """From ``at``, outside a string: the index after the next string (``len(text)``
    when none follows), the depth there, and the index of a level too many before it."""
    quote = text.find('"', at)
    stop = len(text) if quote < 0 else quote
    openers = text.count("[", at, stop) + text.count("{", at, stop)
    if depth + openers <= MAX_DEPTH:
        depth += openers - text.count("]", at, stop) - text.count("}", at, stop)
        found = None
    else:
        depth, found = _walk(text, at, stop, depth)
    if found is not None or quote < 0:
        return stop, depth, found
    return _string_end(text, quote) + 1, depth, None


def _walk(text: str, start: int, stop: int, depth: int) -> tuple[int, int | None]:
    """The depth after the brackets of ``text[start:stop]`` (no strings in it), and the
    index of the first opening bracket that takes it past :data:`MAX_DEPTH`, if any."""
    for block in range(start, stop, _BLOCK):
        block_stop = min(stop, block + _BLOCK)
        brackets = _NOT_BRACKETS.sub("", text[block:block_stop])
        levels = list(itertools.accumulate(map(_STEP.__getitem__, brackets), initial=depth))
        if max(levels) > MAX_DEPTH:
            for match in _BRACKETS.finditer(text, block, block_stop):
                depth += _STEP[match[0]]
                if depth > MAX_DEPTH:
                    return depth, match.start()
        depth = levels[-1]
    return depth, None


def _string_end(text: str, quote: int) -> int:
    """The index of the quote that ends the string opened at ``quote`` (one not escaped
    by a backslash); ``len(text)`` when it is not ended. The next quote, found with
    ``str.find``, when no backslash precedes it (an image's base64 has none); else the
    string's regular expression decides, in C."""
    at = text.find('"', quote + 1)
    if at < 0:
        return len(text)
    if text[at - 1] != "\\":
        return at
    string = _STRINGS.match(text, quote)
    assert string is not None  # it matches at any quote
    return string.end() - 1 if string[1] else len(text)


def loads(text: str | bytes | bytearray, **options: Any) -> Any:
    """``json.loads(text, **options)`` of a text nested at most :data:`MAX_DEPTH` levels
    (bytes are decoded as ``json.loads`` decodes them: UTF-8, -16 or -32, RFC 8259
    section 8.1).

    Raises:
        NestedTooDeeply: nested deeper than :data:`MAX_DEPTH`.
        ValueError: not JSON (``json.JSONDecodeError``), or bytes that are not text
            (``UnicodeDecodeError``): ``json.loads``'s errors.
        TypeError: ``text`` is none of str, bytes, bytearray (as ``json.loads``).
    """
    if isinstance(text, bytes | bytearray):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    elif not isinstance(text, str):  # json.loads's own error
        raise TypeError(
            f"the JSON object must be str, bytes or bytearray, not {type(text).__name__}"
        )
    at = too_deep(text)
    if at is not None:
        raise NestedTooDeeply(f"nested too deeply (more than {MAX_DEPTH} levels)", text, at)
    return json.loads(text, **options)
