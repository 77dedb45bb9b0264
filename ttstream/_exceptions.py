"""The error taxonomy: every error ttstream raises derives from :class:`TTStreamError`.

No error message ever contains an API key: messages are built from response bodies,
parameter names and values the caller passed as image parameters, never from headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import PartialImage

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "EventTooLargeError",
    "IncompleteStreamError",
    "MalformedEventError",
    "ProtocolError",
    "StreamError",
    "TTStreamError",
    "ValidationError",
]

_MAX_SHOWN_CHARS = 80


def short_repr(value: object, limit: int = _MAX_SHOWN_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters with the full length said.

    Used wherever a message quotes caller or server data, which may be megabytes long.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    length = f"{len(value)} chars" if isinstance(value, str | bytes) else f"{len(text)} chars"
    return f"{text[: limit - 1]}… ({length})"


def _details(type: str | None, code: str | None, param: str | None) -> str:
    """`` (type='...', code='...', param='...')`` for the fields that are set, or ``""``."""
    fields = (("type", type), ("code", code), ("param", param))
    details = ", ".join(f"{name}={value!r}" for name, value in fields if value is not None)
    return f" ({details})" if details else ""


class TTStreamError(Exception):
    """The root of every error ttstream raises."""


class ValidationError(TTStreamError, ValueError):
    """A request parameter that the model does not allow, raised before any connection.

    ``param`` names the parameter, ``value`` is what was given, ``allowed`` says what
    the model takes (the per-model table of the Images API reference), ``model`` is the
    model the rule comes from (``None`` for rules that hold for every model).
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


class APIStatusError(TTStreamError):
    """The server answered with an HTTP error status before any stream started.

    Carries ``status_code``, the error body's ``message``, ``type``, ``code`` and
    ``param`` (``{"error": {...}}`` in the OpenAI shape), the whole parsed ``body``,
    the response ``headers`` and the ``request_id`` (header ``x-request-id``).
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
        self.body = body
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.headers: Mapping[str, str] = dict(headers or {})
        request = f" [request id {request_id}]" if request_id else ""
        super().__init__(f"HTTP {status_code}: {message}{_details(type, code, param)}{request}")


class StreamError(TTStreamError):
    """The server sent an error event inside the stream.

    Both shapes seen on the wire are read: nested
    ``{"type": "error", "error": {"type", "code", "message", "param"}}`` and flat
    ``{"type": "error", "code", "message", "param"}`` (wire-format.md, "Errors").
    ``event_id`` is the SSE last event ID at the error, ``""`` when none was sent;
    ``response_id`` the Responses API response it ended (``response.failed``,
    ``response.incomplete``, an error event), else ``None``.
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
    ) -> None:
        self.response_id = response_id
        self.message = message
        self.code = code
        self.param = param
        self.type = type
        self.event_id = event_id
        self.sequence_number = sequence_number
        super().__init__(f"error event: {message}{_details(type, code, param)}")


class ProtocolError(TTStreamError):
    """The server's answer does not follow the wire format: a stream request answered
    with a ``Content-Type`` other than ``text/event-stream``, or a response body that is
    not the JSON the Images API documents (wire-format.md).
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
        where = f"event {event!r}" + (f" (id {event_id!r})" if event_id else "")
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
    """The body ended before the completed event (wire-format.md: a stream that ends
    without a completed event is a failure, even if the body closed cleanly).

    ``last_partial`` is the last preview delivered, or ``None``, so a UI can keep
    showing it.
    """

    def __init__(self, message: str, *, last_partial: PartialImage | None = None) -> None:
        self.last_partial = last_partial
        super().__init__(message)


class APIConnectionError(TTStreamError):
    """The connection failed or broke: DNS, refused, reset, TLS, a protocol error.

    ``last_partial`` is the last preview delivered before a mid-stream failure.
    """

    def __init__(self, message: str, *, last_partial: PartialImage | None = None) -> None:
        self.last_partial = last_partial
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """A timeout fired. ``timeout`` names which: ``"connect"``, ``"read"``,
    ``"write"``, ``"pool"`` or ``"deadline"`` (the optional overall stream deadline).
    """

    def __init__(
        self, message: str, *, timeout: str, last_partial: PartialImage | None = None
    ) -> None:
        self.timeout = timeout
        super().__init__(message, last_partial=last_partial)
