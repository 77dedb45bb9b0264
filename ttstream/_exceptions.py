"""The error taxonomy: every error ttstream raises derives from :class:`TTStreamError`.

The tree (docs/errors.md)::

    TTStreamError
    ├── APIError ·························· the API answered, or could not be reached
    │   ├── APIStatusError ················ an HTTP error status before the stream
    │   │   ├── BadRequestError ··········· 400
    │   │   ├── AuthenticationError ······· 401
    │   │   ├── PermissionDeniedError ····· 403
    │   │   ├── NotFoundError ············· 404
    │   │   ├── ConflictError ············· 409
    │   │   ├── UnprocessableEntityError ·· 422
    │   │   ├── RateLimitError ············ 429 (``retry_after`` seconds)
    │   │   └── InternalServerError ······· >= 500
    │   ├── StreamError ··················· an error event inside the stream
    │   └── APIConnectionError ············ connect, TLS, reset: no usable answer
    │       └── APITimeoutError ··········· connect / read / write / pool / deadline
    ├── ProtocolError ····················· the answer breaks the wire format or HTTP
    │   └── MalformedEventError ··········· one event's data is not what it may be
    ├── IncompleteStreamError ············· the body ended before the completed event
    ├── EventTooLargeError ················ one event grew past ``max_event_bytes``
    ├── DownloadRefusedError ·············· ``fetch_image`` refused a URL
    ├── ImageDecodeError ·················· Pillow could not decode an image
    │   └── ImageTooLargeError ············ more pixels than allowed
    ├── ValidationError ··················· a bad argument (also a ``ValueError``)
    │   └── UnknownNameError ·············· a name not among the known (also a ``KeyError``)
    ├── ClosedError ······················· used after its end (also a ``RuntimeError``)
    ├── JournalError ······················ a batch journal cannot be used
    ├── SinkError ························· sinks that failed under ``pump``
    ├── SendTimeoutError ·················· a websocket peer took no frame in time
    ├── RedisStreamError ·················· a Redis command failed or timed out
    │   └── ClaimLostError ················ a worker's claim was taken over
    └── MalformedEntryError ··············· a Redis entry ttstream did not write

Which :class:`APIStatusError` subclass an HTTP status gets is decided in one place,
:func:`status_error_class`.

What an error shows (docs/hostile-servers.md, "Errors"):

- ``str()`` and ``repr()`` are at most :data:`MAX_MESSAGE_CHARS` characters: server
  text (an error body, an error event's message) is shortened there, and kept whole in
  the attributes (``APIStatusError.message`` and ``.body``, ``StreamError.message``);
- no message, attribute or ``repr`` contains an API key: every message goes through
  :func:`ttstream._secrets.redact` (the keys of live clients and the values of
  ``Authorization`` / ``TT-API-KEY`` / ``api-key`` fields), and so does every ``str``
  an error keeps as an attribute, as it is set (:meth:`TTStreamError.__setattr__`):
  server text parsed out of JSON (a key written with escapes) or taken from a header,
  whatever the attribute. ``APIStatusError.body`` and ``.headers`` (names and values)
  are redacted as they are read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Protocol, Self

from ._json import loads
from ._retry import parse_retry_after
from ._secrets import redact

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClaimLostError",
    "ClosedError",
    "ConflictError",
    "DownloadRefusedError",
    "EventTooLargeError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "IncompleteStreamError",
    "InternalServerError",
    "JournalError",
    "MalformedEntryError",
    "MalformedEventError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitError",
    "RedisStreamError",
    "SendTimeoutError",
    "SinkError",
    "StreamError",
    "TTStreamError",
    "UnknownNameError",
    "UnprocessableEntityError",
    "ValidationError",
    "status_error_class",
]


class Preview(Protocol):
    """What an error's ``last_partial`` is: a :class:`~ttstream.PartialImage` (the
    last preview delivered; ``isinstance`` narrows it to that class), typed here by the
    two members a UI shows, so that this module imports no event module (no import
    cycle: the events import their errors from here)."""

    @property
    def index(self) -> int: ...
    @property
    def image_bytes(self) -> bytes: ...


_MAX_SHOWN_CHARS = 80
MAX_MESSAGE_CHARS = 1000
"""The longest ``str()`` of a ttstream error, in characters."""
_MAX_SERVER_CHARS = 500  # of one server text (a message) inside an error's str()
_SLACK = 8192  # chars kept beyond a cut while redacting, so no key is cut in two first


def short_repr(value: object, limit: int = _MAX_SHOWN_CHARS) -> str:
    """``repr(value)`` redacted, then cut to ``limit`` characters with the full length
    said (redacted first, so that no cut leaves a piece of a key the redaction would
    not know).

    Used wherever a message quotes caller or server data, which may be megabytes long.
    """
    if isinstance(value, str | bytes) and len(value) > limit + _SLACK:
        text = redact(repr(value[: limit + _SLACK]))  # what is past the slack is not shown
    else:
        text = redact(repr(value))
        if len(text) <= limit:
            return text
    length = f"{len(value)} chars" if isinstance(value, str | bytes) else f"{len(text)} chars"
    return f"{text[: limit - 1]}… ({length})"


def shorten(text: str, limit: int = _MAX_SERVER_CHARS) -> str:
    """``text`` redacted and cut to at most ``limit`` characters, the full length said
    within them."""
    if len(text) <= limit:
        return redact(text)
    said = f"… ({len(text)} chars in all)"
    text = redact(text[: limit + _SLACK])
    return text[: max(0, limit - len(said))] + said


def _details(type: str | None, code: str | None, param: str | None) -> str:
    """`` (type='...', code='...', param='...')`` for the fields that are set, or ``""``."""
    fields = (("type", type), ("code", code), ("param", param))
    shown = [f"{name}={short_repr(value)}" for name, value in fields if value is not None]
    return f" ({', '.join(shown)})" if shown else ""


def _redacted_body(body: object) -> object:
    """A parsed body (a dict or a list) with keys and credential values taken out of its
    strings, redacted as JSON text (so that a ``"api_key": "..."`` member is seen whole);
    anything else as it is (a ``str`` is redacted as every attribute is)."""
    if not isinstance(body, dict | list):
        return body
    try:
        text = json.dumps(body)
        cleaned = redact(text)
        return body if cleaned == text else loads(cleaned)
    except (TypeError, ValueError, RecursionError):
        return "<a body that could not be checked for keys, not kept>"


class TTStreamError(Exception):
    """The root of every error ttstream raises.

    Its message is redacted (no API key) and at most :data:`MAX_MESSAGE_CHARS` long;
    every ``str`` set as an attribute, by any subclass, is redacted too (and not cut).
    """

    def __init__(self, *args: object) -> None:
        if args and isinstance(args[0], str):
            args = (shorten(args[0], MAX_MESSAGE_CHARS), *args[1:])
        super().__init__(*args)

    def __setattr__(self, name: str, value: object) -> None:
        # The one boundary of what an error keeps: any text may be a server's, which may
        # echo a key, in any field, decoded from any escape (see the module).
        super().__setattr__(name, redact(value) if isinstance(value, str) else value)


class ValidationError(TTStreamError, ValueError):
    """A bad argument, raised before any connection: a request parameter that the model
    does not allow, a setting out of its range or of the wrong type, or a required
    setting (a key, an endpoint) found nowhere. Also a ``ValueError``.

    ``param`` names the parameter, ``value`` is what was given, ``allowed`` says what is
    taken (for a request parameter, the per-model table of the Images API reference,
    docs/models.md), ``model`` is the model the rule comes from (``None`` for rules that
    hold for every model).
    """

    def __init__(
        self, param: str, value: object, allowed: str, *, model: str | None = None
    ) -> None:
        self.param = param
        self.value = value
        self.allowed = allowed
        self.model = model
        for_model = f" for model {model!r}" if model is not None else ""
        super().__init__(
            f"{param}={short_repr(value)} is not allowed{for_model}: {param} must be {allowed}"
        )

    @classmethod
    def missing(cls, param: str, value: object, how: str) -> Self:
        """A required setting given neither as an argument nor in the environment
        (``value`` is what was found: ``None`` or empty); ``how`` says how to give it."""
        return cls(param, value, f"given: {how}")


class UnknownNameError(ValidationError, KeyError):
    """A name that is not among the known ones (a base64 backend that is not installed);
    also a ``KeyError``, as a lookup by name was."""

    __str__ = TTStreamError.__str__  # KeyError's would quote the whole message


class ClosedError(TTStreamError, RuntimeError):
    """An object used after its end: a request on a closed ``AsyncClient``, an
    ``ImageStream`` entered or iterated again after it ended (a stream is used once),
    ``send`` on an ``SSERelay`` that has ended or a ``RedisStreamSink`` that wrote its
    terminal entry. Also a ``RuntimeError``, as it was before the tree."""


class APIError(TTStreamError):
    """The API answered with an error (a status, an error event) or could not be reached;
    openai's ``APIError`` shape. Catch it to handle every failure of a request.

    Every subclass has openai's attributes: ``message`` (str), ``body`` (the error
    object an answer carried, else ``None``), ``code``, ``param`` and ``type`` (str, or
    ``None`` when the error had none: always for a connection error or a timeout).
    """

    message: str
    body: object = None
    code: str | None = None
    param: str | None = None
    type: str | None = None


class APIStatusError(APIError):
    """The server answered with an HTTP error status before any stream started.

    Carries ``status_code``, the error body's ``message``, ``type``, ``code`` and
    ``param`` (``{"error": {...}}`` in the OpenAI shape), the parsed ``body``,
    the response ``headers`` and the ``request_id`` (header ``x-request-id``). ``body`` is
    openai's: the error object of an ``{"error": {...}}`` body (``body.get("error",
    body)``), else the parsed body, else its text.
    Every one is kept whole but redacted (no API key; a header whose name holds a key is
    kept under the redacted name); ``str()`` shows the message shortened to 500
    characters.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.message = message
        self.body = _redacted_body(body)
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        cleaned: dict[str, str] = {}
        for name, value in (headers or {}).items():  # a name may echo a key too
            name, value = redact(name), redact(value)
            # Names that differ only by a key become one: each value is kept.
            cleaned[name] = f"{cleaned[name]}, {value}" if name in cleaned else value
        self.headers: Mapping[str, str] = cleaned
        request = f" [request id {short_repr(request_id)}]" if request_id else ""
        details = _details(type, code, param)
        super().__init__(f"HTTP {status_code}: {shorten(message)}{details}{request}")


class BadRequestError(APIStatusError):
    """HTTP 400: a request the API refused (a parameter, a prompt, moderation)."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403: the key may not use this model or resource (e.g. an unverified
    organisation for gpt-image models)."""


class NotFoundError(APIStatusError):
    """HTTP 404: no such path, model, deployment or response."""


class ConflictError(APIStatusError):
    """HTTP 409: a conflict the API reports (retried before the stream)."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422: a request that parses but cannot be processed."""


class RateLimitError(APIStatusError):
    """HTTP 429: too many requests or tokens (or images) per minute, or no quota left.

    ``retry_after`` is the delay the server asked for, in seconds (``retry-after-ms``,
    else ``retry-after`` as seconds or an HTTP date), or ``None`` when it named none
    (Azure's rate-limit headers may read ``-1`` with no ``Retry-After``). It is read by
    the same parser as the retry logic (:mod:`ttstream._retry`), without its 60 s cap.
    """

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again, or ``None``: see the class."""
        return parse_retry_after({name.lower(): v for name, v in self.headers.items()})


class InternalServerError(APIStatusError):
    """HTTP 500 or above: the server failed (retried before the stream)."""


_STATUS_CLASSES: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The :class:`APIStatusError` subclass of an HTTP status, openai's mapping: 400,
    401, 403, 404, 409, 422, 429 have their own, >= 500 is
    :class:`InternalServerError`, any other status the base class."""
    if status_code >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status_code, APIStatusError)


class StreamError(APIError):
    """The server sent an error event inside the stream.

    Both shapes seen on the wire are read: nested
    ``{"type": "error", "error": {"type", "code", "message", "param"}}`` and flat
    ``{"type": "error", "code", "message", "param"}`` (docs/hostile-servers.md, "Errors").
    ``event_id`` is the SSE last event ID at the error, ``""`` when none was sent;
    ``response_id`` the Responses API response it ended (``response.failed``,
    ``response.incomplete``, an error event), else ``None``; ``body`` the error object
    the event carried (openai's ``body``), else ``None``.
    Every text is kept whole but redacted; ``str()`` shows the message shortened to 500
    characters.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        event_id: str = "",
        sequence_number: int | None = None,
        response_id: str | None = None,
        body: object = None,
    ) -> None:
        self.response_id = response_id
        self.body = _redacted_body(body)
        self.message = message
        self.code = code
        self.param = param
        self.type = type
        self.event_id = event_id
        self.sequence_number = sequence_number
        super().__init__(f"error event: {shorten(message)}{_details(type, code, param)}")


class ProtocolError(TTStreamError):
    """The server's answer does not follow the wire format: a stream request answered
    with a ``Content-Type`` other than ``text/event-stream``, or a response body that is
    not the JSON the Images API documents (docs/hostile-servers.md, "Errors").
    """


class MalformedEventError(ProtocolError):
    """An event whose data is not what the protocol allows: bad JSON, a field of the
    wrong type, or a ``b64_json`` that is not valid base64.

    ``event`` is the SSE event type, ``event_id`` the last event ID (``""`` if none),
    ``reason`` says what was wrong.
    """

    def __init__(self, reason: str, *, event: str, event_id: str = "") -> None:
        self.reason = reason
        self.event = event
        self.event_id = event_id
        # The type and id are server text of any length: shortened, so that the reason
        # (what was wrong) is always in the message.
        where = f"event {short_repr(event)}"
        if event_id:
            where += f" (id {short_repr(event_id)})"
        super().__init__(f"malformed {where}: {reason}")


class EventTooLargeError(TTStreamError):
    """One event grew past ``max_event_bytes`` before its terminating blank line.

    ``limit`` is the configured limit in bytes; ``size`` the bytes buffered when the
    limit was crossed (at most ``limit`` are ever held).
    """

    def __init__(self, *, limit: int, size: int) -> None:
        self.limit = limit
        self.size = size
        super().__init__(
            f"an event exceeded max_event_bytes={limit} (reached at least {size} bytes); "
            "raise max_event_bytes if the server legitimately sends larger images"
        )


class IncompleteStreamError(TTStreamError):
    """The body ended before the completed event (a stream that ends without a completed
    event is a failure, even if the body closed cleanly: docs/hostile-servers.md, "Errors").

    ``last_partial`` is the last preview delivered, or ``None``, so a UI can keep
    showing it.
    """

    def __init__(self, message: str, *, last_partial: Preview | None = None) -> None:
        self.last_partial = last_partial
        super().__init__(message)


class APIConnectionError(APIError):
    """The connection failed or broke: DNS, refused, reset, TLS (HTTP the client cannot
    parse is a :class:`ProtocolError`).

    ``last_partial`` is the last preview delivered before a mid-stream failure.
    """

    def __init__(self, message: str, *, last_partial: Preview | None = None) -> None:
        self.last_partial = last_partial
        self.message = message
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """A timeout fired. ``timeout`` names which: ``"connect"``, ``"read"``,
    ``"write"``, ``"pool"`` or ``"deadline"`` (the optional overall stream deadline).
    """

    def __init__(self, message: str, *, timeout: str, last_partial: Preview | None = None) -> None:
        self.timeout = timeout
        super().__init__(message, last_partial=last_partial)


class DownloadRefusedError(TTStreamError):
    """``AsyncClient.fetch_image`` refused to fetch a URL: not ``http``/``https``, a
    redirect from ``https`` to ``http``, more than 5 redirects, a malformed URL or
    port, or the caller's ``url_filter`` said no (docs/hostile-servers.md, "Downloads").

    ``url`` is the URL refused, ``reason`` says why.
    """

    def __init__(self, reason: str, *, url: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"not fetching {short_repr(self.url)}: {reason}")


class ImageDecodeError(TTStreamError):
    """``to_pil`` / ``PillowSink`` could not decode an event's image: Pillow does not
    recognise it, the file is truncated or damaged (``__cause__`` is Pillow's error)."""


class ImageTooLargeError(ImageDecodeError):
    """The image has more pixels than allowed (a decompression bomb, or a size far
    beyond what the models produce). ``pixels`` is width x height (``None`` when
    Pillow's own process-wide limit refused the image), ``max_pixels`` the limit
    (docs/hostile-servers.md, "Images")."""

    def __init__(self, *, pixels: int | None, max_pixels: int, detail: str = "") -> None:
        self.pixels = pixels
        self.max_pixels = max_pixels
        size = f"{pixels} pixels" if pixels is not None else f"too many pixels ({detail})"
        super().__init__(
            f"the image has {size}, more than max_pixels={max_pixels} allows; "
            "raise max_pixels if such images are expected"
        )


class SinkError(TTStreamError):
    """One or more sinks failed while ``ttstream.sinks.pump`` fed them; the others were
    fed to the end. ``failures`` lists ``(sink, exception)`` in the order they happened (a sink
    that failed in ``send`` and again in ``aclose`` appears twice); the first exception
    is also the ``__cause__``.

    The message counts the sinks, not the failures. It names each sink by its repr and
    each exception by its repr, for logs: a repr may hold a Redis key or a path, so the
    message is not for browsers (the relays, the websocket protocol and the Redis
    entries carry a fixed sentence instead: ``ttstream._browser.items.public_message``)."""

    def __init__(self, failures: Sequence[tuple[object, BaseException]]) -> None:
        self.failures = list(failures)
        described = "; ".join(f"{sink!r} raised {exc!r}" for sink, exc in self.failures)
        count = len({id(sink) for sink, _ in self.failures})
        verb = "sink failed and was" if count == 1 else "sinks failed and were"
        super().__init__(f"{count} {verb} detached: {described}")


class SendTimeoutError(TTStreamError, TimeoutError):
    """A peer took no frame within the sink's ``send_timeout`` (seconds, ``timeout``):
    ``WebSocketSink.send`` gives up on a browser that stopped reading, so a stuck socket
    never holds the generation. Also a ``TimeoutError``, as it was before the tree."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"the peer took no frame within send_timeout={timeout:g} s")


class RedisStreamError(TTStreamError):
    """A Redis command of ttstream's Redis layer failed or got no answer in time.

    The message names the command, the key and what went wrong (coredis's error, or the
    timeout in seconds); the coredis exception, if any, is the ``__cause__``.
    """


class ClaimLostError(RedisStreamError):
    """The worker no longer holds the claim of the job it was writing (its claim expired
    and another worker took the job over): nothing was written, and nothing more will be.
    Raised by fenced writes and by ``ttstream.redis.start_once`` (docs/redis.md,
    "Fencing")."""


class MalformedEntryError(TTStreamError):
    """A stream entry that ``RedisStreamSink`` did not write: an unknown ``type``,
    a missing field, or a field that does not parse (the message names the entry id,
    the field and what it held)."""


class JournalError(TTStreamError):
    """A batch journal (``client.batch(journal=...)``) cannot be opened, read or written:
    not a SQLite database, a read-only directory, a full disk. The message names the
    file (docs/batch.md, "The journal")."""
