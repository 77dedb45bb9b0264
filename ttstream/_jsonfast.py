"""The JSON fast path: ``json.loads`` of an event's data without scanning its image.

An image travels as megabytes of base64 in one JSON string (``b64_json`` in the Images
API, ``result`` in the Responses API), which ``json.loads`` would scan character by
character for quotes, backslashes and control characters. :func:`loads_cutting` finds
each string value of one key with a regular expression, its closing quote with
``str.find`` (memchr), checks it for the only characters ``json.loads`` would not take
verbatim (a backslash, a control character: strict mode, RFC 8259 section 7), and hands
``json.loads`` the rest with ``NaN`` in each string's place; each ``NaN`` then becomes
the string (or ``None``). Whatever it cannot vouch for (an escape, a ``NaN`` of the data
itself, JSON that does not parse) gives ``None``: the caller's ``json.loads`` of the
whole data then decides, so results and errors are exactly ``json.loads``'s. The data
may come in pieces (as the SSE decoder collected it); the strings may span any number
of them. No I/O.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

from ._json import loads

__all__ = ["loads_cutting"]

_NOT_VERBATIM = ("\\", *map(chr, range(0x20)))


class _Refused(ValueError):
    """A ``NaN`` (or infinity) of the data itself: ``json.loads`` decides."""


@functools.cache
def _member(key: str) -> re.Pattern[str]:
    """``"key": "``, JSON whitespace allowed around the colon. Its first quote unescaped,
    it opens a member's name (or closes a string, and the text is not JSON either way)."""
    return re.compile(re.escape(json.dumps(key)) + r'[ \t\n\r]*:[ \t\n\r]*"')


def loads_cutting(pieces: Sequence[str], key: str, *, keep: bool) -> tuple[Any, list[str]] | None:
    """``json.loads("".join(pieces))``, each string value of a member named ``key`` (at
    any depth) cut out before parsing, and the strings cut, in order; ``None`` when that
    cannot be vouched for or nothing was cut (``json.loads`` then decides).

    Args:
        pieces: the JSON text, in pieces (at least one); the name of a member and the
            start of its string lie in the first piece or after a cut string.
        key: the member name whose string values are cut.
        keep: each string back in its place (the result equals ``json.loads``'s); else
            ``None`` in its place.
    """
    member = _member(key)
    text, later = pieces[0], list(pieces[1:])  # ``later``: the pieces not reached yet
    parts: list[str] = []  # the text without the strings cut
    cut: list[str] = []
    start = 0
    at = 0  # where to look for the next member; ``start``: the text not taken yet
    while (match := member.search(text, at)) is not None:
        if _escaped(text, match.start()):  # a name ending in '\\"b64_json': not a member
            at = match.start() + 1
            continue
        parts.append(text[start : match.end() - 1])
        parts.append("NaN")
        spans: list[str] = []
        begin = match.end()
        while (end := text.find('"', begin)) < 0:
            spans.append(text[begin:])  # no copy of a whole piece
            if not later:
                return None
            text, begin = later.pop(0), 0
        spans.append(text[begin:end])
        for span in spans:  # span by span: each is scanned while in the CPU cache
            for char in _NOT_VERBATIM:
                if char in span:
                    return None
        cut.append(spans[0] if len(spans) == 1 else "".join(spans))
        text, start, at = text[end + 1 :] + "".join(later), 0, 0
        later = []
    if not cut or later:
        return None
    parts.append(text[start:])
    return _parsed("".join(parts), key, cut, keep=keep)


def _escaped(text: str, at: int) -> bool:
    """Whether the quote at ``text[at]`` is escaped: an odd number of backslashes before
    it (the quote then lies inside a string)."""
    before = at
    while before > 0 and text[before - 1] == "\\":
        before -= 1
    return (at - before) % 2 == 1


class _Cut:
    """Stands for the string cut at ``index`` while ``json.loads`` runs."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def _parsed(text: str, key: str, cut: list[str], *, keep: bool) -> tuple[Any, list[str]] | None:
    """``json.loads(text)``, each ``NaN`` of ``text`` (one per string of ``cut``, in
    order) back as its string (``keep``) or ``None``; ``None`` when ``text`` is not JSON
    or holds a ``NaN`` (or an infinity) of its own."""
    seen = 0

    def constant(name: str) -> _Cut:
        nonlocal seen
        if name != "NaN" or seen == len(cut):
            raise _Refused(name)
        seen += 1
        return _Cut(seen - 1)

    def put_back(obj: dict[str, Any]) -> dict[str, Any]:
        value = obj.get(key)
        if isinstance(value, _Cut):
            obj[key] = cut[value.index] if keep else None
        if any(type(other) is _Cut for other in obj.values()):
            raise _Refused("a string cut from under another name")  # never, as a check
        return obj

    try:
        value = loads(text, parse_constant=constant, object_hook=put_back)
    except ValueError:
        return None
    return (value, cut) if seen == len(cut) else None
