"""Caller's headers and query parameters: a client's ``default_headers`` /
``default_query`` and a call's ``extra_headers`` / ``extra_query`` (openai's names).

They are checked once, where they are given (before any request), merged once per
stream (:meth:`RequestExtras.over`), and then sent as they are by every request of the
stream: its retries, its reconnections and resumes. Headers merge without regard to
case, a later layer winning (``extra_headers`` over ``default_headers`` over ttstream's
own); a header given as ``None`` is not sent at all, even one ttstream would send
(openai's rule for ``None`` / ``Omit``), and a query parameter given as ``None`` is left
out, even one ``default_query`` sets. The value of a header or query parameter whose
name says it is a secret (``ttstream._secrets.names_a_secret``: ``api-key``,
``Ocp-Apim-Subscription-Key``, ``access_token``, ``sig``...) is registered for redaction
for as long as the :class:`RequestExtras` that holds it exists (the client's, or the one
of a call's stream). Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TypeAlias

import attrs

from ._exceptions import ValidationError
from ._secrets import hidden, names_a_secret, register

__all__ = ["HeaderValues", "QueryValues", "RequestExtras", "merge_headers", "sendable"]

HeaderValues: TypeAlias = Mapping[str, str | None]
"""Header names to values; ``None`` removes the header."""
QueryValues: TypeAlias = Mapping[str, str | int | float | bool | None]
"""Query parameter names to values (``True`` is sent as ``true``, numbers as text);
``None`` leaves the parameter out."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2
_VALUE = re.compile(r"[\t\x20-\x7e]*")  # visible ASCII, spaces and tabs: no CR, LF, NUL
_HEADER_RULE = "a mapping of header names (RFC 9110 tokens) to str values or None"
_QUERY_RULE = "a mapping of str names to str, int, float or bool values or None"


def _checked_headers(param: str, headers: object) -> dict[str, str | None]:
    """``headers`` as a dict, checked. Values are never echoed (they may be keys).

    Raises:
        ValidationError: not a mapping, a name that is no str or no token (a space, a
            colon, CR/LF) or that is given twice in different cases, or a value that is
            neither ``None`` nor a str of visible ASCII characters, spaces and tabs (CR
            or LF would split the header).
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ValidationError(param, type(headers).__name__, _HEADER_RULE)
    checked: dict[str, str | None] = {}
    seen: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValidationError(f"{param} name", name, f"{_HEADER_RULE}; this name is not")
        if (twin := seen.setdefault(name.lower(), name)) != name:
            raise ValidationError(
                f"{param} name", name, f"given once, whatever its case (also given as {twin!r})"
            )
        if value is not None and not (isinstance(value, str) and _VALUE.fullmatch(value)):
            raise ValidationError(
                f"{param}[{name!r}]",
                hidden(value),
                "None or a str of visible ASCII characters, spaces and tabs (no CR or LF)",
            )
        checked[name] = value
    return checked


def _query_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than sys.get_int_max_str_digits() allows
            return None
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return None


def _checked_query(param: str, query: object) -> dict[str, str | None]:
    """``query`` as text values, checked; a ``None`` stays, to remove the parameter from
    an earlier layer (:func:`sendable` drops it).

    Raises:
        ValidationError: not a mapping, a name that is no str, or a value that is not
            ``None``, a str, an int (of no more digits than
            ``sys.get_int_max_str_digits()``), a finite float or a bool.
    """
    if query is None:
        return {}
    if not isinstance(query, Mapping):
        raise ValidationError(param, type(query).__name__, _QUERY_RULE)
    checked: dict[str, str | None] = {}
    for name, value in query.items():
        if not isinstance(name, str):
            raise ValidationError(f"{param} name", name, _QUERY_RULE)
        text = _query_text(value)
        if text is None and value is not None:
            raise ValidationError(f"{param}[{name!r}]", hidden(value), _QUERY_RULE)
        checked[name] = text
    return checked


def _refuse_own(param: str, query: Mapping[str, str | None], own: Mapping[str, str]) -> None:
    """Refuses a parameter of ``query`` that the client sets itself (``own``: its names
    to the argument that sets each): the client's would silently replace it.

    Raises:
        ValidationError: naming the parameter and the argument to use instead.
    """
    for name, value in query.items():
        if name in own:
            raise ValidationError(
                f"{param}[{name!r}]",
                hidden(value),
                f"left out: the client sends {name!r} itself, from its {own[name]}= argument",
            )


def merge_headers(*layers: HeaderValues) -> dict[str, str | None]:
    """The layers merged, later ones winning, names compared without regard to case
    (spelt as the winning layer spells them); a ``None`` stays, to remove the header
    from what an earlier step adds (:func:`sendable` drops it)."""
    merged: dict[str, tuple[str, str | None]] = {}
    for layer in layers:
        for name, value in layer.items():
            merged[name.lower()] = (name, value)
    return dict(merged.values())


def sendable(headers: HeaderValues) -> dict[str, str]:
    """``headers`` (or query parameters) without the ones given as ``None``."""
    return {name: value for name, value in headers.items() if value is not None}


def _register_credentials(owner: object, headers: HeaderValues, query: Mapping[str, str]) -> None:
    """Redacts the value of each header and query parameter whose name says it carries
    a secret (:func:`~ttstream._secrets.names_a_secret`), and a header's token after a
    scheme (``Bearer <token>``), for as long as ``owner`` exists."""
    for name, value in [*headers.items(), *query.items()]:
        if value is not None and names_a_secret(name):
            register(owner, value)
            scheme, _, token = value.partition(" ")
            if token and scheme.isalpha():
                register(owner, token.strip())


@attrs.frozen
class RequestExtras:
    """What a request carries besides its body (never shown: it holds keys): the
    client's ``credentials`` (its key's header, which the client registers itself) and
    the caller's ``headers`` and ``query``, and ``own_query``: the query parameters the
    client sets itself (each to the argument that sets it), refused in the caller's.
    Made by :meth:`checked` for a client, then :meth:`over` for each call; the secrets in
    ``headers`` and ``query`` are redacted for as long as it exists."""

    credentials: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    headers: dict[str, str | None] = attrs.field(factory=dict, repr=False)
    query: dict[str, str] = attrs.field(factory=dict, repr=False)
    own_query: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        _register_credentials(self, self.headers, self.query)

    @classmethod
    def checked(
        cls, credentials: Mapping[str, str], headers: object, query: object
    ) -> RequestExtras:
        """A client's ``credentials`` with its ``default_headers`` and
        ``default_query``, checked.

        Raises:
            ValidationError: as :meth:`over`, naming ``default_headers`` or
                ``default_query``.
        """
        return cls(
            credentials,
            _checked_headers("default_headers", headers),
            sendable(_checked_query("default_query", query)),
        )

    def owning(self, credentials: Mapping[str, str], own_query: Mapping[str, str]) -> RequestExtras:
        """These, with other ``credentials`` and the client's ``own_query`` (query
        parameter names to the argument that sets each, e.g. ``{"api-version":
        "api_version"}``), which the caller's query may not name.

        Raises:
            ValidationError: ``default_query`` names one of ``own_query``.
        """
        _refuse_own("default_query", self.query, own_query)
        return attrs.evolve(self, credentials=credentials, own_query=own_query)

    def over(self, extra_headers: object, extra_query: object) -> RequestExtras:
        """A call's ``extra_headers`` and ``extra_query``, checked, merged over these.

        Raises:
            ValidationError: headers that are not a mapping of token names to ``None``
                or str values without CR or LF, or a query that is not a mapping of str
                names to ``None`` (left out, even if ``default_query`` sets it) or str,
                int, float or bool values, or one that names a parameter
                of ``own_query``; naming the argument (and the header or parameter),
                never the value.
        """
        headers = _checked_headers("extra_headers", extra_headers)
        query = _checked_query("extra_query", extra_query)
        _refuse_own("extra_query", query, self.own_query)
        if not headers and not query:
            return self
        return attrs.evolve(
            self,
            headers=merge_headers(self.headers, headers),
            query=sendable({**self.query, **query}),
        )
