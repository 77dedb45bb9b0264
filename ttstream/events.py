"""Typed image events, and the parsing of one ``ServerSentEvent`` into one of them.

The wire fields are those of the Images API reference, "Image generation streaming
events": an event's ``type`` is
``image_<operation>.partial_image`` or ``image_<operation>.completed`` (``generation``
and ``edit`` today), its ``data`` one JSON object. Fields that ttstream does not know
are kept in ``extra``; enums (``quality``, ``size``, ...) stay plain strings because
vendors add values.

No I/O happens here. Parsing is strict about what it reads: a JSON error, a field of the
wrong type or an empty ``b64_json`` raises :class:`~ttstream.MalformedEventError`, and
so does a ``b64_json`` that is not canonical base64 once it is decoded (an event kept as
text decodes in ``image_bytes``; a stream that decodes its images, the default, does so
before it delivers the event); an error event raises
:class:`~ttstream.StreamError`. Nothing is silently coerced. The one kind of data let
through is noise: data that is not JSON and does not start with ``{`` (gateways' heartbeats
such as ``data: : PING``) carries no event and is skipped, with a DEBUG log line.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from ._base64 import Base64Error, codec, decoded_length
from ._exceptions import (
    MalformedEventError,
    ProtocolError,
    StreamError,
    TTStreamError,
    short_repr,
    shorten,
)
from ._fields import Fields, error_event
from ._imagehook import (
    IMAGE_KEYS,
    IMAGE_SIZES,
    DecodedData,
    ImageLineHook,
    ImageSizes,
    decoded_data,
    image_decoder,
)
from ._json import loads
from ._jsonfast import loads_cutting
from ._secrets import redact
from .sse import ServerSentEvent, data_pieces

__all__ = [
    "IMAGE_KEYS",
    "IMAGE_SIZES",
    "Completed",
    "DecodedData",
    "ImageEvent",
    "ImageLineHook",
    "ImageSizes",
    "InlineImage",
    "InputTokensDetails",
    "PartialImage",
    "Usage",
    "decode_base64",
    "decoded_data",
    "decoded_length",
    "image_decoder",
    "parse_event",
    "parse_response",
]

logger = logging.getLogger("ttstream")


def _repr_extra(extra: Mapping[str, Any]) -> str:
    """``extra`` for a repr: each key and value shortened, a server-echoed key redacted
    before it is cut (``ttstream._secrets``), so no part of it shows."""
    shown = (
        f"{shorten(repr(key), 40)}: {shorten(repr(value), 40)}" for key, value in extra.items()
    )
    return "{" + ", ".join(shown) + "}"


def decode_base64(b64: str, *, what: str, event: str = "", event_id: str = "") -> bytes:
    """Decodes canonical base64 (RFC 4648 section 4, padded, no line breaks), with
    pybase64 when installed, else binascii: the same bytes and errors either way.

    Raises:
        MalformedEventError: ``b64`` is not canonical base64; ``what`` names the field.
    """
    try:
        return codec().decode(b64)
    except Base64Error as exc:
        raise MalformedEventError(
            f"{what} is not valid base64: {exc}", event=event, event_id=event_id
        ) from None


class InlineImage:
    """The inline image of an event: the base64 text as it arrived, or the bytes it was
    decoded to as it arrived (then the text is encoded again when asked for).

    ``verbatim`` says that the text is known to hold no character JSON escapes (no
    quote, backslash or control character), so it can be spliced into JSON as it is.
    Two images are equal when their base64 texts are.
    """

    __slots__ = ("_data", "_text", "verbatim")

    def __init__(
        self, text: str | None = None, data: bytes | None = None, *, verbatim: bool = False
    ) -> None:
        self._text = text
        self._data = data
        self.verbatim = verbatim or text is None

    @property
    def decoded(self) -> bool:
        """Whether the bytes are in hand (no decoding left to do)."""
        return self._data is not None

    def text(self) -> str:
        if self._text is not None:
            return self._text
        assert self._data is not None
        return codec().encode_text(self._data)

    def utf8(self) -> bytes:
        """The base64 text in UTF-8, for splicing a ``verbatim`` image: encoded once from
        the image bytes, or the text encoded once (a copy, for ASCII)."""
        if self._text is not None:
            return self._text.encode()
        assert self._data is not None
        return codec().encode(self._data)

    def utf8_pieces(self, first: int, size: int) -> Iterator[bytes]:
        """:meth:`utf8` in pieces: ``first`` bytes, then ``size`` bytes each (both
        multiples of 4; the last piece may be shorter; none is empty), each encoded from
        its own slice of the image bytes or cut from an ASCII text: the whole text is
        never made at once (a text that is not ASCII, never valid base64, is encoded
        whole, then cut)."""
        assert first % 4 == 0
        assert size % 4 == 0
        assert size > 0
        text = self._text
        if text is not None and not text.isascii():
            whole = text.encode()
            yield from (whole[start:end] for start, end in _spans(len(whole), first, size))
        elif text is not None:
            spans = _spans(len(text), first, size)
            yield from (text[start:end].encode() for start, end in spans)
        else:
            assert self._data is not None
            encode = codec().encode
            with memoryview(self._data) as view:
                for start, end in _spans(self.text_length(), first, size):
                    yield encode(view[start // 4 * 3 : end // 4 * 3])

    def data(self, what: str) -> bytes:
        """The image bytes: decoded on first use and kept."""
        if self._data is None:
            assert self._text is not None
            self._data = decode_base64(self._text, what=what)
        return self._data

    def decode_now(self, what: str, *, event: str, event_id: str) -> None:
        """Decodes the text now, if it is not decoded yet, and then keeps the bytes
        alone, as an image decoded on arrival (the text is encoded again when asked for:
        the same text, kept only when its padding bits are not zero, as encoding the
        bytes would not give it back).

        Raises:
            MalformedEventError: the text is not canonical base64 (``what`` names the
                field, ``event`` and ``event_id`` the event).
        """
        text = self._text
        if text is None or self._data is not None:
            return
        data = self._data = decode_base64(text, what=what, event=event, event_id=event_id)
        last = data[len(data) - (len(data) % 3 or 3) :]  # the last quantum's bytes
        if codec().encode_text(last) == text[-4:]:
            self._text, self.verbatim = None, True

    def size(self) -> int:
        """The decoded size in bytes, without decoding."""
        if self._data is not None:
            return len(self._data)
        assert self._text is not None
        return decoded_length(self._text)

    def text_length(self) -> int:
        if self._text is not None:
            return len(self._text)
        assert self._data is not None
        return (len(self._data) + 2) // 3 * 4

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InlineImage):
            return NotImplemented
        if self._data is not None and other._data is not None:
            return self._data == other._data and (
                self._text is None or other._text is None or self._text == other._text
            )
        return self.text() == other.text()

    def __hash__(self) -> int:
        return hash(self.text())

    def __repr__(self) -> str:
        return f"<{self.text_length()} base64 chars>"


def _spans(length: int, first: int, size: int) -> list[tuple[int, int]]:
    """``[0, length)`` cut after ``first``, then every ``size``; no empty span."""
    cuts = [0, *range(first or size, length, size), length]
    return [(start, end) for start, end in itertools.pairwise(cuts) if end > start]


def _to_image(value: str | InlineImage | None) -> InlineImage | None:
    return value if value is None or isinstance(value, InlineImage) else InlineImage(value)


def _event_repr(self: ImageEvent) -> str:
    """``Type(field=value, ...)`` with the constructor's names (``b64_json``)."""
    shown = []
    for field in attrs.fields(type(self)):
        if field.repr:
            value = getattr(self, field.name)
            text = field.repr(value) if callable(field.repr) else repr(value)
            shown.append(f"{field.alias}={text}")
    return redact(f"{type(self).__name__}({', '.join(shown)})")


def image_of(event: ImageEvent) -> InlineImage | None:
    """The inline image of ``event`` (``None`` for an image returned as a URL); for the
    sinks, which read its size and base64 without decoding or encoding twice."""
    return event._image


@attrs.frozen(kw_only=True)
class InputTokensDetails:
    """``usage.input_tokens_details``: input tokens split by kind."""

    image_tokens: int | None = None
    text_tokens: int | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=_repr_extra)


@attrs.frozen(kw_only=True)
class Usage:
    """Token usage of a completed image (``usage`` of a ``completed`` event)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_tokens_details: InputTokensDetails | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=_repr_extra)


@attrs.frozen(kw_only=True, repr=False)
class ImageEvent:
    """The fields every image event carries; see :class:`PartialImage`, :class:`Completed`.

    The image file (PNG, JPEG or WebP bytes) arrives in base64. An event parsed from a
    stream decoded on arrival (the default, ``docs/fast.md``) holds the bytes; one built
    from text (``decode_images=False``, non-streaming answers, or ``b64_json=...`` given
    here) holds the text. Either way both attributes work:

    - ``image_bytes``: the file. Free when the event holds the bytes; else decoded on
      first use (one pass over the base64) and kept.
    - ``b64_json``: the base64 text, exactly as it arrived. Free when the event holds the
      text; else encoded afresh on every access (one pass over the image, and a new
      string 4/3 of the image's size): keep the value if you need it twice. What each
      costs per MB, with and without pybase64: ``docs/fast.md``.

    The ``repr`` shows only the base64's length. ``created_at`` is Unix seconds;
    ``size`` is ``"WxH"``.
    """

    _image: InlineImage | None = attrs.field(alias="b64_json", converter=_to_image)
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

    __repr__ = _event_repr

    @property
    def b64_json(self) -> str | None:
        """The image file in base64, the exact text the server sent; ``None`` for an
        image returned as a URL. Encoded afresh on each access when the event holds the
        decoded bytes (see the class docstring)."""
        return None if self._image is None else self._image.text()

    @property
    def image_bytes(self) -> bytes:
        """The decoded image file (free when decoded on arrival; else decoded on first
        use, and kept).

        Raises:
            MalformedEventError: ``b64_json`` is not valid base64.
            TTStreamError: the image was returned as a URL, not inline
                (``response_format="url"``); ``url`` holds it.
        """
        if self._image is None:
            raise TTStreamError(
                f"{type(self).__name__} carries no inline image (b64_json is None); "
                "it was returned as a URL (event.url): get the bytes with "
                "`client.fetch_image(event)` (awaited on an AsyncClient)"
            )
        return self._image.data(f"b64_json of {self._label()}")

    def _label(self) -> str:
        return type(self).__name__


def decode_now(event: ImageEvent, *, sse_event: str, event_id: str) -> None:
    """Decodes the inline image of ``event`` now when it holds base64 text, and keeps
    only the bytes, as for an image decoded on arrival (:meth:`InlineImage.decode_now`):
    a stream whose images are decoded raises for an image that is not valid base64 at
    its event, before the consumer has it. Nothing to do for bytes decoded on arrival
    or an image URL.

    Raises:
        MalformedEventError: the base64 is not canonical; names the field as the API
            does (``b64_json``; the Responses API's ``partial_image_b64`` or
            ``result``), and the event (``sse_event``, ``event_id``).
    """
    image = event._image
    if image is None or image.decoded:
        return
    field = "b64_json"
    if event.operation == "response":
        field = "partial_image_b64" if isinstance(event, PartialImage) else "result"
    image.decode_now(f"{field} of {event._label()}", event=sse_event, event_id=event_id)


@attrs.frozen(kw_only=True, repr=False)
class PartialImage(ImageEvent):
    """A progressive preview (``image_generation.partial_image`` and
    ``image_edit.partial_image``). ``index`` is the wire ``partial_image_index``,
    0-based; the server may send fewer previews than ``partial_images`` asked for.
    """

    index: int

    @property
    def partial_image_index(self) -> int:
        """:attr:`index` under the wire's name, the one openai-python's event has."""
        return self.index

    def _label(self) -> str:
        return f"partial image {self.index}"


@attrs.frozen(kw_only=True, repr=False)
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


def take_image(
    fields: Fields, key: str = "b64_json", *, verbatim: bool = False, required: bool = False
) -> InlineImage | None:
    """The image under ``key`` (``b64_json`` in the Images API, ``partial_image_b64`` in
    the Responses API), taken out of ``fields``: its base64 text (``verbatim`` when
    known to need no JSON escaping), or the bytes the decoder already decoded on arrival;
    ``None`` when absent (unless ``required``).

    Raises:
        MalformedEventError: not a string, empty (an image is at least one byte), or
            absent when ``required``.
    """
    value = fields.pop(key)
    if isinstance(value, bytes):
        image = InlineImage(data=value)
    else:
        fields.put(key, value)
        text = fields.required(key, str) if required else fields.take(key, str)
        if text is None:
            return None
        image = InlineImage(text, verbatim=verbatim)
    if not image.text_length():
        empty = f"{fields.where} has an empty {key!r}" if fields.where else f"{key!r} is empty"
        raise fields.malformed(f"{empty}: an image is at least one byte")
    return image


def parse_usage(
    fields: Fields, *, details: Sequence[str] = ("image_tokens", "text_tokens")
) -> Usage | None:
    """The ``usage`` object of ``fields`` (``None`` when absent): ``input_tokens``,
    ``output_tokens``, ``total_tokens`` and, of ``input_tokens_details``, the integer
    fields named in ``details`` (the Images API's ``image_tokens`` and ``text_tokens``;
    none for the Responses API, whose details hold ``cached_tokens``); the rest in
    ``extra``.

    Raises:
        MalformedEventError: a field of the wrong type.
    """
    usage = fields.nested("usage")
    if usage is None:
        return None
    nested = usage.nested("input_tokens_details")
    return Usage(
        input_tokens=usage.take("input_tokens", int),
        output_tokens=usage.take("output_tokens", int),
        total_tokens=usage.take("total_tokens", int),
        input_tokens_details=None
        if nested is None
        else InputTokensDetails(
            **{name: nested.take(name, int) for name in details}, extra=nested.extra()
        ),
        extra=usage.extra(),
    )


def _raise_error_event(obj: Mapping[str, Any], sse: ServerSentEvent) -> None:
    """Raises StreamError for the nested and the flat error shapes (see StreamError).
    Without a message, the error quotes the object as json.loads gives it: an image
    decoded on arrival as its base64 text again, as the plain path has it."""
    sequence_number = obj.get("sequence_number")
    shown = _as_loaded(obj, "b64_json")
    raise error_event(
        obj,
        fallback=f"the server sent an error event without a message: {short_repr(shown)}",
        flat_type=False,
        event_id=sse.id,
        sequence_number=sequence_number if isinstance(sequence_number, int) else None,
    )


# The fast path of parse_event, for data of 64 KiB and more: a final image is megabytes of
# base64 in "b64_json", which json.loads would scan character by character; the one JSON
# fast path (ttstream._jsonfast) slices it out instead, with exactly json.loads's results.
_FAST_MIN = 64 * 1024


def _fast_loads_verbatim(pieces: Sequence[str]) -> tuple[dict[str, Any], bool] | None:
    """``json.loads("".join(pieces))`` when the data is a JSON object that the fast path
    can vouch for, and whether its ``b64_json`` was sliced verbatim (so holds no
    character JSON escapes); ``None`` when json.loads must decide (it may then raise)."""
    found = loads_cutting(pieces, "b64_json", keep=True)
    if found is None or not isinstance(found[0], dict):
        return None
    obj, cut = found
    image = obj.get("b64_json")
    return obj, any(image is string for string in cut)


def _as_loaded(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``obj`` as json.loads of the data gives it: an image decoded on arrival under
    ``key`` (bytes) as its base64 text again."""
    image = obj.get(key)
    if isinstance(image, bytes):
        return {**obj, key: codec().encode_text(image)}
    return dict(obj)


def _loads(sse: ServerSentEvent) -> tuple[dict[str, Any], bool] | None:
    """The JSON object of ``sse``'s data, and whether its ``b64_json`` (if a str) is
    verbatim; ``None`` for ``[DONE]``, blank data and noise (see the module docstring).

    Raises:
        StreamError: ``event: error`` whose data is not a JSON object.
        MalformedEventError: the data is not JSON (and not noise), or not an object.
    """
    decoded = decoded_data(sse)
    if decoded is not None:
        if decoded.key == "b64_json":  # its bytes, taken by take_image as they are
            return dict(decoded.members), False
        return _as_loaded(decoded.members, decoded.key), False  # another API's key
    pieces = data_pieces(sse)  # the data, possibly still in the pieces it arrived in
    if (len(pieces) == 1 and pieces[0] == "[DONE]") or all(p.isspace() or not p for p in pieces):
        return None
    found = _fast_loads_verbatim(pieces) if sum(map(len, pieces)) >= _FAST_MIN else None
    if found is not None:
        return found
    data = sse.data
    try:
        obj = loads(data)
    except ValueError as exc:
        if sse.event == "error":
            raise _error_without_object(sse) from None
        if not data.lstrip(" \t\r\n").startswith("{"):
            logger.debug("skipping data that is not JSON (a heartbeat?): %s", short_repr(data))
            return None
        raise MalformedEventError(
            f"data is not JSON ({exc}); data starts {short_repr(data, 60)}",
            event=sse.event,
            event_id=sse.id,
        ) from None
    if not isinstance(obj, dict):
        if sse.event == "error":
            raise _error_without_object(sse)
        raise MalformedEventError(
            f"data is a JSON {type(obj).__name__}, expected an object",
            event=sse.event,
            event_id=sse.id,
        )
    return obj, False


def _error_without_object(sse: ServerSentEvent) -> StreamError:
    """``event: error`` whose data is not a JSON object: its text is the message."""
    return StreamError(f"data that is not a JSON object: {short_repr(sse.data)}", event_id=sse.id)


def parse_event(sse: ServerSentEvent) -> PartialImage | Completed | None:
    """Turns one Server-Sent Event of an Images API stream into a typed event.

    Returns ``None`` for events that carry no image: ``data: [DONE]`` (sent by some
    compatible servers), a blank keep-alive, heartbeats sent as data that is not JSON
    and does not start with ``{`` (``data: : PING``; logged at DEBUG), and JSON objects
    of other types (progress notices vendors may add). An event that
    :class:`~ttstream.SSEDecoder` decoded on arrival yields an event holding the image
    bytes; otherwise the event holds the base64 text and ``image_bytes`` decodes it.

    Raises:
        StreamError: an error event: ``event: error`` (whatever its data: text that is
            not JSON is quoted, shortened), ``"type": "error"`` (nested or flat shape),
            or an ``{"error": {...}}`` object.
        MalformedEventError: the data starts with ``{`` and is not JSON (or is nested
            deeper than 128 levels), is JSON but not an object, or a known field has the
            wrong type, is missing, or (``b64_json``) is empty.
    """
    loaded = _loads(sse)
    if loaded is None:
        return None
    obj, verbatim = loaded
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
    fields = Fields(obj, event_type, event=sse.event, event_id=sse.id)
    fields.take("type", str)
    common: dict[str, Any] = {
        "b64_json": take_image(fields, verbatim=verbatim, required=True),
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
        usage=parse_usage(fields),
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

    ``body`` may also be the raw body (``bytes``, ``bytearray``, ``memoryview``): it is
    then parsed as JSON here.

    Raises:
        ProtocolError: a raw body that is not JSON, or JSON nested deeper than 128
            levels.
        MalformedEventError: the body is not of that shape, an item has neither
            ``b64_json`` nor ``url``, or its ``b64_json`` is empty.
    """
    if isinstance(body, bytes | bytearray | memoryview):
        body = loads_body(body)
    if not isinstance(body, Mapping):
        raise MalformedEventError(
            f"the response body is a JSON {type(body).__name__}, expected an object",
            event="(response body)",
        )
    top = Fields(body, "response", event="(response body)")
    items = top.required("data", list)
    common: dict[str, Any] = {
        "operation": operation,
        "created_at": top.take("created", int),
        "size": top.take("size", str),
        "quality": top.take("quality", str),
        "background": top.take("background", str),
        "output_format": top.take("output_format", str),
    }
    usage = parse_usage(top)
    unknown_top = top.extra()  # kept on every image, under the item's own unknown fields
    events = []
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise top.malformed(f"response data[{position}] is not an object")
        fields = Fields(item, f"response data[{position}]", event="(response body)")
        b64_json, url = take_image(fields), fields.take("url", str)
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


def loads_body(body: bytes | bytearray | memoryview) -> Any:
    """The JSON of a raw response body, its nesting bounded (the one parser of
    non-streaming bodies: :func:`parse_response` and ``ImageStream``).

    Raises:
        ProtocolError: the body is not JSON, quoting its start (redacted, then cut).
    """
    try:
        return loads(bytes(body) if isinstance(body, memoryview) else body)
    except ValueError as exc:
        raise ProtocolError(
            f"the response body is not JSON ({exc}); it starts {short_repr(bytes(body), 60)}"
        ) from None
