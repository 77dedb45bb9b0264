"""Typed image events, and the parsing of one ``ServerSentEvent`` into one of them.

The wire fields are those of wire-format.md, "The stream": an event's ``type`` is
``image_<operation>.partial_image`` or ``image_<operation>.completed`` (``generation``
and ``edit`` today), its ``data`` one JSON object. Fields that ttstream does not know
are kept in ``extra``; enums (``quality``, ``size``, ...) stay plain strings because
vendors add values.

No I/O happens here. Parsing is strict about what it reads: a JSON error, a field of the
wrong type or a ``b64_json`` that is not canonical base64 raises
:class:`~ttstream.MalformedEventError`; an error event raises
:class:`~ttstream.StreamError`. Nothing is silently coerced.
"""

from __future__ import annotations

import binascii
import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import attrs
from httpx_sse import ServerSentEvent

from ._exceptions import MalformedEventError, StreamError, TTStreamError, short_repr
from .sse import data_pieces

__all__ = [
    "Completed",
    "ImageEvent",
    "InputTokensDetails",
    "PartialImage",
    "Usage",
    "decode_base64",
    "decoded_length",
    "parse_event",
    "parse_response",
]

_T = TypeVar("_T")


def _repr_b64(value: str | None) -> str:
    return "None" if value is None else f"<{len(value)} base64 chars>"


def _repr_extra(extra: Mapping[str, Any]) -> str:
    return (
        "{" + ", ".join(f"{key!r}: {short_repr(value, 40)}" for key, value in extra.items()) + "}"
    )


def decoded_length(b64: str) -> int:
    """The number of bytes canonical base64 ``b64`` decodes to, computed from its length
    and padding alone (no decoding)."""
    padding = 2 if b64.endswith("==") else 1 if b64.endswith("=") else 0
    return len(b64) // 4 * 3 - padding


def decode_base64(b64: str, *, what: str, event: str = "", event_id: str = "") -> bytes:
    """Decodes canonical base64 (RFC 4648 section 4, padded, no line breaks).

    ``binascii.a2b_base64`` skips characters outside the alphabet; a decoded length
    shorter than the input's length implies is how a skipped character shows, so the
    check costs O(1) on top of the C decoder.

    Raises:
        MalformedEventError: ``b64`` is not canonical base64; ``what`` names the field.
    """
    reason = f"length {len(b64)} is not a multiple of 4" if len(b64) % 4 else None
    image = b""
    if reason is None:
        try:
            image = binascii.a2b_base64(b64)
        except (binascii.Error, ValueError) as exc:
            reason = str(exc)
        else:
            if len(image) != decoded_length(b64):
                reason = "it holds characters outside the base64 alphabet"
    if reason is not None:
        raise MalformedEventError(
            f"{what} is not valid base64: {reason}", event=event, event_id=event_id
        )
    return image


@attrs.frozen(kw_only=True)
class InputTokensDetails:
    """``usage.input_tokens_details``: input tokens split by kind."""

    image_tokens: int | None = None
    text_tokens: int | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=_repr_extra)


@attrs.frozen(kw_only=True)
class Usage:
    """Token usage of a completed image (``usage`` in wire-format.md, "The stream")."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_tokens_details: InputTokensDetails | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=_repr_extra)


@attrs.frozen(kw_only=True)
class ImageEvent:
    """The fields every image event carries; see :class:`PartialImage`, :class:`Completed`.

    ``b64_json`` is the image file (PNG, JPEG or WebP bytes) in base64; its ``repr``
    shows only its length. ``image_bytes`` decodes it on first use and caches the
    result. ``created_at`` is Unix seconds; ``size`` is ``"WxH"``.
    """

    b64_json: str | None = attrs.field(repr=_repr_b64)
    operation: str
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    created_at: int | None = None
    sequence_number: int | None = None
    # Set by the Responses API image tool only (operation "response"; docs/responses.md).
    item_id: str | None = None
    output_index: int | None = None
    response_id: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=_repr_extra)

    @functools.cached_property
    def image_bytes(self) -> bytes:
        """The decoded image file; decoded once, on first use.

        Raises:
            MalformedEventError: ``b64_json`` is not valid base64.
            TTStreamError: the image was returned as a URL, not inline
                (``response_format="url"``); ``url`` holds it.
        """
        if self.b64_json is None:
            raise TTStreamError(
                f"{type(self).__name__} carries no inline image (b64_json is None); "
                "it was returned as a URL (event.url): get the bytes with "
                "`await client.fetch_image(event)`"
            )
        return decode_base64(self.b64_json, what=f"b64_json of {self._label()}")

    def _label(self) -> str:
        return type(self).__name__


@attrs.frozen(kw_only=True)
class PartialImage(ImageEvent):
    """A progressive preview (``image_generation.partial_image`` and
    ``image_edit.partial_image``). ``index`` is the wire ``partial_image_index``,
    0-based; the server may send fewer previews than ``partial_images`` asked for.
    """

    index: int

    def _label(self) -> str:
        return f"partial image {self.index}"


@attrs.frozen(kw_only=True)
class Completed(ImageEvent):
    """The final image (``image_generation.completed`` and ``image_edit.completed``).

    ``usage`` is ``None`` when the server sent none. Non-streaming responses yield
    ``Completed`` events too: there ``url`` is set instead of ``b64_json`` when the
    request asked for ``response_format="url"``, and ``revised_prompt`` carries the
    prompt dall-e-3 actually used.
    """

    usage: Usage | None = None
    url: str | None = None
    revised_prompt: str | None = None
    safety_identifier: str | None = None


class _Fields:
    """Takes typed fields out of one JSON object; what is not taken is ``extra``.

    A field of the wrong type raises ``MalformedEventError`` naming ``where`` (the
    event type or the place in a response body), the field, and what it held.
    """

    def __init__(
        self, obj: Mapping[str, Any], where: str, *, event: str = "", event_id: str = ""
    ) -> None:
        self._rest = dict(obj)
        self._where = where
        self._event = event
        self._event_id = event_id

    def malformed(self, reason: str) -> MalformedEventError:
        return MalformedEventError(reason, event=self._event, event_id=self._event_id)

    def required(self, key: str, kind: type[_T]) -> _T:
        value = self.take(key, kind)
        if value is None:
            raise self.malformed(f"{self._where} has no {key!r} field")
        return value

    def take(self, key: str, kind: type[_T]) -> _T | None:
        value = self._rest.pop(key, None)
        if value is None:
            return None
        # bool is an int subclass in Python, but not a JSON integer.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.malformed(
                f"{self._where} field {key!r} should be {kind.__name__}, "
                f"got {type(value).__name__} {short_repr(value, 40)}"
            )
        return value

    def nested(self, key: str) -> _Fields | None:
        """The fields of the JSON object under ``key``, or None when it is absent."""
        value = self.take(key, dict)
        if value is None:
            return None
        return _Fields(value, f"{self._where}.{key}", event=self._event, event_id=self._event_id)

    def extra(self) -> dict[str, Any]:
        return self._rest


def _parse_usage(fields: _Fields) -> Usage | None:
    usage = fields.nested("usage")
    if usage is None:
        return None
    details = usage.nested("input_tokens_details")
    return Usage(
        input_tokens=usage.take("input_tokens", int),
        output_tokens=usage.take("output_tokens", int),
        total_tokens=usage.take("total_tokens", int),
        input_tokens_details=None
        if details is None
        else InputTokensDetails(
            image_tokens=details.take("image_tokens", int),
            text_tokens=details.take("text_tokens", int),
            extra=details.extra(),
        ),
        extra=usage.extra(),
    )


def _raise_error_event(obj: Mapping[str, Any], sse: ServerSentEvent) -> None:
    """Raises StreamError for the nested and the flat error shapes (wire-format.md)."""
    nested = obj.get("error")
    body = nested if isinstance(nested, Mapping) else obj

    def text(key: str) -> str | None:
        value = body.get(key)
        return None if value is None else str(value)

    sequence_number = obj.get("sequence_number")
    raise StreamError(
        text("message") or f"the server sent an error event without a message: {short_repr(obj)}",
        code=text("code"),
        param=text("param"),
        type=text("type") if body is not obj else None,
        event_id=sse.id,
        sequence_number=sequence_number if isinstance(sequence_number, int) else None,
    )


# The fast path of parse_event, for data of 64 KiB and more. A final image is megabytes of
# base64 in "b64_json", which json.loads would scan character by character for quotes,
# backslashes and control characters. Here the top-level object is parsed member by
# member with json's own scanner (JSONDecoder.raw_decode, as json.loads does), except the
# value of "b64_json": its closing quote is found with str.find (memchr), and the string
# is sliced out once it is known to hold no backslash and no control character, the only
# characters json.loads would not take verbatim (strict mode). Anything else (an escape,
# a piece boundary inside another member, a syntax error) gives up: json.loads of the
# whole data then decides, so results and errors are exactly json.loads's.
_FAST_MIN = 64 * 1024
_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON whitespace, as json.decoder skips it
_NOT_VERBATIM = ("\\", *map(chr, range(0x20)))


def _skip(text: str, i: int) -> int:
    """The index of the first character at or after ``i`` that is not JSON whitespace."""
    match = _WHITESPACE.match(text, i)
    return i if match is None else match.end()


def _fast_loads(pieces: Sequence[str]) -> dict[str, Any] | None:
    """``json.loads("".join(pieces))`` when the data is a JSON object that the fast path
    can vouch for; ``None`` when json.loads must decide (it may then raise)."""
    try:
        return _loads_object(pieces)
    except (ValueError, RecursionError):
        return None


def _loads_object(pieces: Sequence[str]) -> dict[str, Any] | None:
    """Parses a JSON object the way json's scanner does (``_parse_object`` in
    ``Modules/_json.c``), with the ``b64_json`` string spanning any number of pieces.
    Returns ``None`` where it cannot vouch for the result; json.loads then decides."""
    text = pieces[0]
    i = _skip(text, 0)
    if not text.startswith("{", i):
        return None
    i = _skip(text, i + 1)
    if text.startswith("}", i):
        return None
    obj: dict[str, Any] = {}
    spanned = False  # past the pieces: ``text`` is now the rest of the data
    while True:
        if not text.startswith('"', i):
            return None
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if not text.startswith(":", i):
            return None
        i = _skip(text, i + 1)
        if key == "b64_json" and not spanned and text.startswith('"', i):
            found = _verbatim_string(pieces, i + 1)
            if found is None:
                return None
            value, text = found
            i, spanned = 0, True
        else:
            value, i = _DECODER.raw_decode(text, i)
        obj[key] = value
        i = _skip(text, i)
        if text.startswith("}", i):
            break
        if not text.startswith(",", i):
            return None
        i = _skip(text, i + 1)
    if _skip(text, i + 1) != len(text) or (not spanned and len(pieces) > 1):
        return None
    return obj


def _verbatim_string(pieces: Sequence[str], start: int) -> tuple[str, str] | None:
    """The JSON string that starts at ``pieces[0][start]`` (after its opening quote) and
    the text after its closing quote, when the string holds no escape and no control
    character; else ``None``."""
    parts: list[str] = []
    for index, piece in enumerate(pieces):
        begin = start if index == 0 else 0
        end = piece.find('"', begin)
        span = piece[begin:] if end < 0 else piece[begin:end]  # no copy of a whole piece
        for char in _NOT_VERBATIM:
            if char in span:
                return None
        parts.append(span)
        if end >= 0:
            rest = piece[end + 1 :]
            if index + 1 < len(pieces):
                rest += "".join(pieces[index + 1 :])
            return (parts[0] if len(parts) == 1 else "".join(parts)), rest
    return None


def parse_event(sse: ServerSentEvent) -> PartialImage | Completed | None:
    """Turns one Server-Sent Event of an Images API stream into a typed event.

    Returns ``None`` for events that carry no image: ``data: [DONE]`` (sent by some
    compatible servers), a blank keep-alive, and JSON objects of other types (progress
    notices vendors may add). ``b64_json`` is not decoded here; ``image_bytes`` does it.

    Raises:
        StreamError: an error event: ``event: error``, ``"type": "error"`` (nested or
            flat shape), or an ``{"error": {...}}`` object.
        MalformedEventError: the data is not a JSON object, or a known field has the
            wrong type or is missing.
    """
    pieces = data_pieces(sse)  # the data, possibly still in the pieces it arrived in
    if (len(pieces) == 1 and pieces[0] == "[DONE]") or all(p.isspace() or not p for p in pieces):
        return None
    obj = _fast_loads(pieces) if sum(map(len, pieces)) >= _FAST_MIN else None
    if obj is None:
        try:
            obj = json.loads(sse.data)
        except ValueError as exc:
            raise MalformedEventError(
                f"data is not JSON ({exc}); data starts {short_repr(sse.data[:60])}",
                event=sse.event,
                event_id=sse.id,
            ) from exc
    if not isinstance(obj, dict):
        raise MalformedEventError(
            f"data is a JSON {type(obj).__name__}, expected an object",
            event=sse.event,
            event_id=sse.id,
        )
    event_type = obj.get("type", sse.event)
    if event_type == "error" or sse.event == "error" or isinstance(obj.get("error"), Mapping):
        _raise_error_event(obj, sse)
    if not isinstance(event_type, str):
        raise MalformedEventError(
            f"field 'type' should be str, got {short_repr(event_type, 40)}",
            event=sse.event,
            event_id=sse.id,
        )
    prefix, _, kind = event_type.rpartition(".")
    if not prefix.startswith("image_") or kind not in ("partial_image", "completed"):
        return None
    operation = prefix[len("image_") :]
    fields = _Fields(obj, event_type, event=sse.event, event_id=sse.id)
    fields.take("type", str)
    common: dict[str, Any] = {
        "b64_json": fields.required("b64_json", str),
        "operation": operation,
        "size": fields.take("size", str),
        "quality": fields.take("quality", str),
        "background": fields.take("background", str),
        "output_format": fields.take("output_format", str),
        "created_at": fields.take("created_at", int),
        "sequence_number": fields.take("sequence_number", int),
    }
    if kind == "partial_image":
        index = fields.required("partial_image_index", int)
        return PartialImage(index=index, extra=fields.extra(), **common)
    return Completed(
        usage=_parse_usage(fields),
        safety_identifier=fields.take("safety_identifier", str),
        extra=fields.extra(),
        **common,
    )


def parse_response(body: object, *, operation: str) -> list[Completed]:
    """Turns a non-streaming Images API response into one ``Completed`` per image.

    ``body`` is the parsed JSON ``{"created": ..., "data": [{"b64_json" | "url",
    "revised_prompt"}, ...], "usage": {...}}`` (OpenAI Images API reference, "The image
    generation response"); top-level ``size``, ``quality``, ``background`` and
    ``output_format``, when present, apply to every image. ``usage`` covers the whole
    request, so it rides on the last ``Completed`` only.

    Raises:
        MalformedEventError: the body is not of that shape, or an item has neither
            ``b64_json`` nor ``url``.
    """
    if not isinstance(body, Mapping):
        raise MalformedEventError(
            f"the response body is a JSON {type(body).__name__}, expected an object",
            event="(response body)",
        )
    top = _Fields(body, "response", event="(response body)")
    items = top.required("data", list)
    common: dict[str, Any] = {
        "operation": operation,
        "created_at": top.take("created", int),
        "size": top.take("size", str),
        "quality": top.take("quality", str),
        "background": top.take("background", str),
        "output_format": top.take("output_format", str),
    }
    usage = _parse_usage(top)
    unknown_top = top.extra()  # kept on every image, under the item's own unknown fields
    events = []
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise top.malformed(f"response data[{position}] is not an object")
        fields = _Fields(item, f"response data[{position}]", event="(response body)")
        b64_json, url = fields.take("b64_json", str), fields.take("url", str)
        if b64_json is None and url is None:
            raise fields.malformed(f"response data[{position}] has neither 'b64_json' nor 'url'")
        events.append(
            Completed(
                b64_json=b64_json,
                url=url,
                revised_prompt=fields.take("revised_prompt", str),
                usage=usage if position == len(items) - 1 else None,
                extra={**unknown_top, **fields.extra()},
                **common,
            )
        )
    return events
