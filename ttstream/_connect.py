"""Sending one HTTP request: retries before the first byte, redirects, HTTP errors.

Retries follow the official SDKs (docs/reconnection.md, "Retries before the stream"):
connection errors, timeouts, HTTP 408, 409, 429 and >= 500, with the delays of
:mod:`ttstream._retry`. A request body is bytes built once, so every retry sends the
same bytes.

Redirects are followed only when the caller's ``httpx2.AsyncClient`` follows them
(``follow_redirects=True``; ttstream's own client never does), at most its
``max_redirects``, and a redirect to another origin (scheme, host or port) drops every
header whose name says it carries a secret (``ttstream._secrets.names_a_secret``:
``Authorization``, ``Proxy-Authorization``, ``TT-API-KEY``, ``X-API-Key``, ``api-key``,
and a caller's ``Ocp-Apim-Subscription-Key``, ``X-Access-Token``...), so that a key
never reaches another origin.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import httpx2

from ._body import read_prefix
from ._bounds import close_bounded
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClosedError,
    ProtocolError,
    TTStreamError,
    ValidationError,
    status_error_class,
)
from ._fields import text_of
from ._json import loads
from ._otel import note_retry
from ._retry import backoff_delay, retry_after, should_retry_status
from ._secrets import hidden, names_a_secret, redact
from ._transport_errors import safe_text, without_server_bytes

__all__ = [
    "ERROR_BODY_SECONDS",
    "MAX_ERROR_BODY",
    "check_api_key",
    "connection_error",
    "follow_redirects",
    "open_response",
    "send",
    "status_error",
    "timeout_name",
]

logger = logging.getLogger("ttstream")

MAX_ERROR_BODY = 1024 * 1024
"""The most of an HTTP error body that is read, in bytes."""
ERROR_BODY_SECONDS = 30.0
"""The longest an HTTP error body is read, in seconds; past that the status alone speaks."""

_TIMEOUT_NAMES: Mapping[type[httpx2.TimeoutException], str] = {
    httpx2.ConnectTimeout: "connect",
    httpx2.ReadTimeout: "read",
    httpx2.WriteTimeout: "write",
    httpx2.PoolTimeout: "pool",
}


def timeout_name(exc: httpx2.TimeoutException) -> str:
    """Which httpx timeout fired: ``connect``, ``read``, ``write`` or ``pool``."""
    return next((name for kind, name in _TIMEOUT_NAMES.items() if isinstance(exc, kind)), "read")


def _where(url: httpx2.URL) -> str:
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    return f"{url.host}:{port}" if port else url.host


_DISCONNECTED = ("peer closed connection", "server disconnected")


def connection_error(
    exc: httpx2.TransportError, url: httpx2.URL, what: str
) -> APIConnectionError | ProtocolError:
    """The ttstream error for a transport error while ``what`` (``"connecting to"``,
    ``"reading the stream from"``...): the one mapping of transport errors to the tree,
    for every transport (httpcore; aiohttp's errors arrive as httpx2's through
    :mod:`ttstream._transport_errors`). It names the host and port and the transport's
    own words, never the server's bytes (docs/errors.md):

    - a timeout is :class:`APITimeoutError` (``timeout`` says which);
    - HTTP the client cannot parse (a bad status line, a bad header, a bad chunk size,
      ``Content-Length`` with chunked) is :class:`ProtocolError`;
    - anything else (refused, reset, a server that disconnected) is
      :class:`APIConnectionError`.

    ``exc`` itself, the ``__cause__`` its callers raise the error from, is cut to the
    transport's own words too (:func:`~ttstream._transport_errors.without_server_bytes`).
    """
    without_server_bytes(exc)
    detail = safe_text(str(exc)) or type(exc).__name__
    if isinstance(exc, httpx2.TimeoutException):
        name = timeout_name(exc)
        return APITimeoutError(f"{name} timeout {what} {_where(url)}: {detail}", timeout=name)
    malformed = isinstance(exc, httpx2.RemoteProtocolError | httpx2.LocalProtocolError)
    if malformed and not detail.lower().startswith(_DISCONNECTED):
        return ProtocolError(f"{what} {_where(url)}: {detail}")
    return APIConnectionError(f"{what} {_where(url)} failed: {detail}")


_KEY = re.compile(r"[\x21-\x7e]+")


def check_api_key(param: str, key: str) -> None:
    """Refuses a key that cannot be sent in a header as it is: whitespace (a trailing
    newline from ``open().read()``), control or non-ASCII characters. Keys are printable
    ASCII (RFC 9110, section 5.5: a field value is visible ASCII; a key has no spaces).

    Raises:
        ValidationError: naming ``param`` and what was wrong, never the key.
    """
    if isinstance(key, str) and _KEY.fullmatch(key):
        return
    if not isinstance(key, str):
        kind = type(key).__name__
        wrong = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    elif key != key.strip():
        wrong = "whitespace around it (strip the newline read from a file)"
    elif not key.isascii():
        wrong = "a non-ASCII character"
    else:
        wrong = "whitespace or a control character inside it"
    raise ValidationError(
        param,
        hidden(key),
        f"a str of printable ASCII characters with no whitespace; this one has {wrong}",
    )


def _framing_error(response: httpx2.Response) -> httpx2.RemoteProtocolError | None:
    """``Content-Length`` together with ``Transfer-Encoding`` (RFC 9112, section 6.1: it
    "ought to be handled as an error"): refused on every transport, as aiohttp does."""
    if "content-length" in response.headers and "transfer-encoding" in response.headers:
        return httpx2.RemoteProtocolError("Content-Length with Transfer-Encoding")
    return None


async def open_response(
    http: httpx2.AsyncClient, request: httpx2.Request, *, auth: Any
) -> httpx2.Response:
    """``http.send(request, stream=True)``, never following redirects: the one place
    ttstream sends a request (API calls and image downloads).

    Raises:
        ClosedError: ``http`` is closed (a request on a closed ``AsyncClient``).
        httpx2.TransportError: as ``http.send``, and ``httpx2.RemoteProtocolError`` for
            an answer with ``Content-Length`` and ``Transfer-Encoding``; callers map it
            with :func:`connection_error`.
    """
    if http.is_closed:
        raise ClosedError(
            "the client is closed: make a new ttstream.AsyncClient "
            "(or leave its `async with` block later)"
        )
    response = await http.send(request, stream=True, follow_redirects=False, auth=auth)
    if (error := _framing_error(response)) is not None:
        await close_bounded(response.aclose)
        raise error
    return response


def _same_origin(a: httpx2.URL, b: httpx2.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


async def follow_redirects(
    http: httpx2.AsyncClient,
    request: httpx2.Request,
    *,
    is_redirect: Callable[[httpx2.Response], bool],
    redirect: Callable[[httpx2.Response, httpx2.Request], httpx2.Request],
    max_redirects: int,
    too_many: Callable[[httpx2.Response], TTStreamError],
    auth: Any = httpx2.USE_CLIENT_DEFAULT,
) -> httpx2.Response:
    """Sends ``request`` (:func:`open_response`) and follows redirects: the one redirect
    follower, for API calls (:func:`send`) and image downloads. Returns the first answer
    that is not a redirect, open, for the caller to read and close.

    A redirect is an answer ``is_redirect`` accepts (it may raise, refusing the answer);
    after it is closed and counted, ``redirect(answer, request)`` makes the next request
    (it may raise, refusing the target). A request to another origin (scheme, host,
    port) carries no header whose name says it carries a secret
    (:func:`~ttstream._secrets.names_a_secret`) and no ``auth`` (RFC 9110 section 15.4:
    a client following a redirect removes ``Authorization`` and the like). Each answer
    not returned is closed, bounded.

    Raises:
        TTStreamError: ``too_many(answer)`` after ``max_redirects`` redirects;
            what ``is_redirect`` or ``redirect`` raise.
        httpx2.TransportError: as :func:`open_response`.
    """
    hops = 0
    while True:
        response = await open_response(http, request, auth=auth)
        try:
            if not is_redirect(response):
                return response
        except BaseException:
            await close_bounded(response.aclose)
            raise
        await close_bounded(response.aclose)
        hops += 1
        if hops > max_redirects:
            raise too_many(response)
        following = redirect(response, request)
        if not _same_origin(following.url, request.url):
            for name in [name for name in following.headers if names_a_secret(name)]:
                del following.headers[name]
            auth = None  # nor the caller's client's auth=
        request = following


def _next_request(response: httpx2.Response, request: httpx2.Request) -> httpx2.Request:
    """The request httpx2 makes of a redirect (its method, body and headers rules)."""
    following = response.next_request
    assert following is not None  # the answer was accepted as a redirect for it
    if following.url.scheme not in ("http", "https"):
        raise ProtocolError(f"a redirect to a {following.url.scheme!r} URL, not http(s)")
    return following


async def _send_following(http: httpx2.AsyncClient, request: httpx2.Request) -> httpx2.Response:
    """Sends ``request``, following redirects only as ``http`` is configured to."""
    return await follow_redirects(
        http,
        request,
        is_redirect=lambda response: (
            http.follow_redirects and response.is_redirect and response.next_request is not None
        ),
        redirect=_next_request,
        max_redirects=http.max_redirects,
        too_many=lambda _: APIConnectionError(
            f"more than {http.max_redirects} redirects from {_where(request.url)}"
        ),
    )


async def send(
    http: httpx2.AsyncClient, request: httpx2.Request, *, max_retries: int
) -> httpx2.Response:
    """Sends ``request`` (streaming its answer), retrying before the first byte of the
    answer; returns a 2xx (or 204) response, whose body the caller reads and closes.

    Raises:
        APIStatusError: an HTTP error, not retried or after ``max_retries`` retries.
        APIConnectionError, APITimeoutError: the request could not be sent.
    """
    attempt = 0
    while True:
        delay: float | None = None
        try:
            response = await _send_following(http, request)
        except httpx2.TransportError as exc:
            error: TTStreamError = connection_error(exc, request.url, "connecting to")
            cause: BaseException = exc
        else:
            if response.is_success:
                return response
            error = cause = await status_error(response)
            if not should_retry_status(response.status_code, response.headers):
                raise error
            delay = retry_after(response.headers)
        if attempt >= max_retries:
            raise error from (None if cause is error else cause)
        if delay is None:
            delay = backoff_delay(attempt)
        attempt += 1
        note_retry(attempt, delay, error)
        logger.info(  # routine, not a warning: a quiet library (docs/logging.md)
            "retrying %s %s in %.2f s (retry %d of %d) after: %s",
            request.method,
            redact(str(request.url)),  # a Responses resume URL holds the server's id
            delay,
            attempt,
            max_retries,
            error,
        )
        await anyio.sleep(delay)


async def status_error(response: httpx2.Response) -> APIStatusError:
    """Reads an error response (at most :data:`MAX_ERROR_BODY` bytes, decoded within
    that, for at most :data:`ERROR_BODY_SECONDS`) into an :class:`APIStatusError` with
    the fields of an ``{"error": {"message", "type", "code", "param"}}`` body (``body``
    is that error object, as openai keeps it; a body without one is kept whole), of the
    status's subclass (``RateLimitError`` for 429...,
    :func:`ttstream._exceptions.status_error_class`): the one
    parser of HTTP error bodies. Keys and credential values are redacted from the text
    before a snippet of it is cut (no piece of a key is left), and by the error from every
    field it keeps, after parsing (a key written with JSON escapes; ``ttstream._secrets``)."""
    raw = bytearray()
    try:
        with anyio.move_on_after(ERROR_BODY_SECONDS):  # a trickled body holds nobody
            raw, _ = await read_prefix(response, limit=MAX_ERROR_BODY)
    except (httpx2.HTTPError, TTStreamError):
        pass  # the status says enough
    finally:
        await close_bounded(response.aclose)
    text = redact(raw.decode("utf-8", "replace"))
    del raw  # a body of 1 MiB is held once as bytes, once as text, never more at a time
    body: Any = text
    with contextlib.suppress(ValueError):
        body = loads(text)
    snippet = text[:1000].strip()[:200]
    del text
    error = body.get("error") if isinstance(body, dict) else None
    fields: Mapping[str, Any] = error if isinstance(error, dict) else {}
    if 300 <= response.status_code < 400:
        message = (
            f"redirect to {response.headers.get('location')!r} not followed "
            "(API requests never carry the key to another URL)"
        )
    else:
        message = text_of(fields, "message") or snippet or response.reason_phrase
    return status_error_class(response.status_code)(
        message,
        status_code=response.status_code,
        body=body.get("error", body) if isinstance(body, dict) else body,  # openai's
        type=text_of(fields, "type"),
        code=text_of(fields, "code"),
        param=text_of(fields, "param"),
        request_id=response.headers.get("x-request-id"),
        headers=response.headers,
    )
