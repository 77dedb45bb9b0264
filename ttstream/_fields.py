"""Typed fields out of one JSON object, and error objects as errors, for every protocol
module (the Images API events and bodies, the Responses API events): a field of the
wrong type or a missing required one is :class:`~ttstream.MalformedEventError`; nothing
is coerced. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from ._exceptions import MalformedEventError, StreamError, short_repr

__all__ = ["Fields", "error_event", "stream_error", "text_of"]

_T = TypeVar("_T")


class Fields:
    """Takes typed fields out of one JSON object; what is not taken is :meth:`extra`.

    ``where`` names the object in messages (the event type, ``response data[0]``, ...):
    a field of the wrong type raises ``"<where> field 'key' should be int, got str
    '1'"``, a missing one ``"<where> has no 'key' field"``. An empty ``where`` is the
    event itself: ``"field 'key' should be ..."``, ``"the event has no 'key' field"``.
    ``event`` and ``event_id`` go on every error (the SSE ``event:`` and ``id:``).
    """

    __slots__ = ("_event", "_event_id", "_rest", "_where")

    def __init__(
        self, obj: Mapping[str, Any], where: str = "", *, event: str = "", event_id: str = ""
    ) -> None:
        self._rest = dict(obj)
        self._where = where
        self._event = event
        self._event_id = event_id

    @property
    def where(self) -> str:
        """The object's name in messages (empty: the event itself)."""
        return self._where

    def malformed(self, reason: str) -> MalformedEventError:
        """The error for this object's event, with ``reason`` as its message."""
        return MalformedEventError(reason, event=self._event, event_id=self._event_id)

    def peek(self, key: str, kind: type[_T]) -> _T | None:
        """Field ``key`` (``None`` when absent or null), checked, left in :meth:`extra`."""
        return self._check(key, self._rest.get(key), kind)

    def take(self, key: str, kind: type[_T]) -> _T | None:
        """Field ``key`` (``None`` when absent or null), checked, out of :meth:`extra`."""
        return self._check(key, self._rest.pop(key, None), kind)

    def required(self, key: str, kind: type[_T], *, keep: bool = False) -> _T:
        """Field ``key``, checked, which must be there (not null); left in :meth:`extra`
        when ``keep``."""
        value = self.peek(key, kind) if keep else self.take(key, kind)
        if value is None:
            raise self.malformed(f"{self._where or 'the event'} has no {key!r} field")
        return value

    def pop(self, key: str) -> Any:
        """Field ``key`` as it is (``None`` when absent), out of :meth:`extra`."""
        return self._rest.pop(key, None)

    def put(self, key: str, value: Any) -> None:
        """Puts ``value`` back under ``key`` (a field taken, found to be another shape)."""
        self._rest[key] = value

    def nested(self, key: str) -> Fields | None:
        """The fields of the JSON object under ``key`` (named ``<where>.key`` in
        messages), or ``None`` when it is absent."""
        value = self.take(key, dict)
        if value is None:
            return None
        where = f"{self._where}.{key}" if self._where else ""
        return Fields(value, where, event=self._event, event_id=self._event_id)

    def extra(self) -> dict[str, Any]:
        """The fields not taken (a new dict: the object given is never changed)."""
        return self._rest

    def _check(self, key: str, value: object, kind: type[_T]) -> _T | None:
        if value is None:
            return None
        # bool is an int subclass in Python, but not a JSON integer.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            prefix = f"{self._where} field" if self._where else "field"
            raise self.malformed(
                f"{prefix} {key!r} should be {kind.__name__}, "
                f"got {type(value).__name__} {short_repr(value, 40)}"
            )
        return value


def text_of(body: Mapping[str, Any], key: str) -> str | None:
    """``body[key]`` as text (``str()`` of what the server sent), ``None`` when absent."""
    value = body.get(key)
    return None if value is None else str(value)


def stream_error(
    body: Mapping[str, Any],
    *,
    fallback: str,
    default_type: str | None = None,
    event_id: str = "",
    sequence_number: int | None = None,
    response_id: str | None = None,
) -> StreamError:
    """The :class:`~ttstream.StreamError` of an error object ``{"message", "code",
    "param", "type"}`` (each optional, taken as text): ``fallback`` is the message when
    it has none, ``default_type`` the type; ``body`` is kept as its ``body`` (openai's),
    ``None`` when empty."""
    return StreamError(
        text_of(body, "message") or fallback,
        body=dict(body) or None,
        code=text_of(body, "code"),
        param=text_of(body, "param"),
        type=text_of(body, "type") or default_type,
        event_id=event_id,
        sequence_number=sequence_number,
        response_id=response_id,
    )


def error_event(
    obj: Mapping[str, Any],
    *,
    fallback: str,
    flat_type: bool,
    event_id: str = "",
    sequence_number: int | None = None,
    response_id: str | None = None,
) -> StreamError:
    """The :class:`~ttstream.StreamError` of an error event, in its nested shape
    (``{"type": "error", "error": {...}}``) or its flat one (``{"type": "error",
    "message": ...}``; docs/hostile-servers.md, "Errors"). ``flat_type``: whether the
    flat shape's own ``type`` (``"error"``) is the error's type (the Responses API's
    way) or no type at all (the Images API's)."""
    nested = obj.get("error")
    body = nested if isinstance(nested, Mapping) else obj
    if body is obj and not flat_type:
        body = {key: value for key, value in obj.items() if key != "type"}
    return stream_error(
        body,
        fallback=fallback,
        event_id=event_id,
        sequence_number=sequence_number,
        response_id=response_id,
    )
