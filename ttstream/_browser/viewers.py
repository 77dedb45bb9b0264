"""Who may watch which job: viewer tokens and the one check both relays run.

A viewer token is ``"<expiry>.<signature>"``: ``expiry`` in Unix seconds (decimal digits),
``signature`` the hex HMAC-SHA256 (RFC 2104, :mod:`hmac` from the standard library) of
``"<job key>\\n<expiry>"`` under the relay's secret. It names one job and one expiry, so a
token for one job opens no other, and it is checked in constant time
(:func:`hmac.compare_digest`). See ``docs/live-previews.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import math
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, TypeAlias
from urllib.parse import parse_qs

from .._bounds import require_seconds
from .._exceptions import ValidationError

__all__ = [
    "FORBIDDEN",
    "Authorize",
    "check_secret",
    "sign_viewer_token",
    "verify_viewer_token",
    "viewer_allowed",
]

Authorize: TypeAlias = Callable[[MutableMapping[str, Any], str], "bool | Awaitable[bool]"]
"""``authorize(scope, job_key)``: the ASGI scope of the viewer's request and the job's key;
returns (or awaits to) ``True`` when the viewer may watch that job."""

FORBIDDEN = b"You are not allowed to watch this job.\n"
"""The fixed body of a refused viewer's 403: it says nothing of why."""

_MAX_EXPIRY_DIGITS = 12  # Unix seconds past the year 33,000: longer is forged
_MAX_TOKEN_CHARS = _MAX_EXPIRY_DIGITS + 1 + 64


def _signature(job_key: str, expiry: str, secret: bytes) -> str:
    message = f"{job_key}\n{expiry}".encode("utf-8", "surrogatepass")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def check_secret(secret: object, param: str = "secret") -> bytes:
    """``secret`` as ``bytes``, checked: bytes (or a bytearray) of at least 16.

    Raises:
        ValidationError: anything else, named ``param``; the value is never shown.
    """
    if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
        # the value is never echoed: it is a secret
        raise ValidationError(param, "<hidden>", "bytes, at least 16 of them (32 random is usual)")
    return bytes(secret)


def sign_viewer_token(job_key: str, *, secret: bytes, ttl: float = 3600.0) -> str:
    """A token that lets its holder watch ``job_key`` for ``ttl`` seconds from now.

    Args:
        job_key: the job's key, as the relay's URL names it.
        secret: the relay's ``token_secret`` (at least 16 bytes).
        ttl: seconds the token stays valid (finite, > 0).

    Returns:
        ``"<expiry>.<64 hex digits>"``, safe in a URL query and an ``Authorization`` header.

    Raises:
        ValidationError: a secret that is not bytes or shorter than 16, a ttl that is not a
            finite positive number, a key that is not a string.
    """
    key = check_secret(secret)
    if not isinstance(job_key, str):
        raise ValidationError("job_key", type(job_key).__name__, "a str")
    seconds = require_seconds("ttl", ttl)
    expiry = str(math.ceil(time.time() + seconds))
    return f"{expiry}.{_signature(job_key, expiry, key)}"


def verify_viewer_token(
    token: str, job_key: str, *, secret: bytes, now: float | None = None
) -> bool:
    """Whether ``token`` was made by :func:`sign_viewer_token` for ``job_key`` with
    ``secret`` and has not expired (at ``now``, Unix seconds; default: the clock).

    Malformed, forged, expired and other jobs' tokens all give ``False``; the signature is
    compared in constant time.

    Raises:
        ValidationError: a secret that is not bytes or shorter than 16.
    """
    key = check_secret(secret)
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        return False
    expiry, dot, signature = token.partition(".")
    if not dot or not (0 < len(expiry) <= _MAX_EXPIRY_DIGITS) or not expiry.isascii():
        return False
    if not expiry.isdigit():
        return False
    expected = _signature(job_key, expiry, key)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return False
    return int(expiry) > (time.time() if now is None else now)


def _presented_token(scope: Mapping[str, Any]) -> str | None:
    """The token of a request: the ``token`` query parameter, else ``Authorization:
    Bearer <token>``."""
    query = scope.get("query_string", b"")
    if isinstance(query, bytes) and b"token=" in query:
        try:
            values = parse_qs(query.decode("latin-1"), max_num_fields=32).get("token")
        except ValueError:  # more than 32 fields: no viewer of ours sends that many
            return None
        if values:
            return values[0]
    for name, value in scope.get("headers", ()):
        if bytes(name).lower() == b"authorization":
            scheme, _, credentials = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials:
                return credentials.strip()
    return None


async def viewer_allowed(
    scope: MutableMapping[str, Any],
    job_key: str,
    *,
    authorize: Authorize | None,
    token_secret: bytes | None,
) -> bool:
    """The one check of both relays: with ``token_secret``, the request must present a
    valid token for ``job_key``; with ``authorize``, it must also return ``True``. With
    neither, every viewer is allowed."""
    if token_secret is not None:
        token = _presented_token(scope)
        if token is None or not verify_viewer_token(token, job_key, secret=token_secret):
            return False
    if authorize is not None:
        verdict = authorize(scope, job_key)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict is not True:
            return False
    return True
