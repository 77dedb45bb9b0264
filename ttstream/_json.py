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
scanned, at the brackets, quotes and backslashes alone. No I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "NestedTooDeeply", "loads", "too_deep"]

MAX_DEPTH = 128
"""The deepest nesting of arrays and objects read (the APIs' bodies nest fewer than 10)."""

_SYNTAX = re.compile(r'[\[\]{}"\\]')


class NestedTooDeeply(json.JSONDecodeError):
    """JSON nested deeper than :data:`MAX_DEPTH` levels; ``pos`` is the opening bracket
    of the first level too many."""


def too_deep(text: str, start: int = 0) -> int | None:
    """The index of the first ``[`` or ``{`` at a nesting deeper than :data:`MAX_DEPTH`
    in ``text[start:]`` (brackets inside JSON strings not counted); ``None`` when there
    is none."""
    if text.count("[", start) + text.count("{", start) <= MAX_DEPTH:
        return None
    depth = 0
    in_string = False
    escaped = -1  # the index of the character a backslash escapes
    for match in _SYNTAX.finditer(text, start):
        at = match.start()
        if at == escaped:
            continue
        char = text[at]
        if in_string:
            if char == '"':
                in_string = False
            elif char == "\\":
                escaped = at + 1
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return at
        elif char in "]}":
            depth -= 1
    return None


def loads(text: str | bytes | bytearray, **options: Any) -> Any:
    """``json.loads(text, **options)`` of a text nested at most :data:`MAX_DEPTH` levels
    (bytes are decoded as ``json.loads`` decodes them: UTF-8, -16 or -32, RFC 8259
    section 8.1).

    Raises:
        NestedTooDeeply: nested deeper than :data:`MAX_DEPTH`.
        ValueError: not JSON (``json.JSONDecodeError``), or bytes that are not text
            (``UnicodeDecodeError``): ``json.loads``'s errors.
    """
    if not isinstance(text, str):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    at = too_deep(text)
    if at is not None:
        raise NestedTooDeeply(f"nested too deeply (more than {MAX_DEPTH} levels)", text, at)
    return json.loads(text, **options)
