"""The JSON a browser gets for one stream item, shared by every browser-facing sink
(:class:`~ttstream.sinks.WebSocketSink`, :class:`~ttstream.sinks.SSERelay`,
:class:`~ttstream.redis.RedisRelay`): :func:`item_metadata` (the description of an item)
and :func:`strict_json` (JSON that ``JSON.parse`` takes and UTF-8 carries). The shapes
are those of ``docs/live-previews.md``; ``docs/fast.md`` ("Relay frames") says why the
JSON is strict.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .._event_types import StreamItem
from .._exceptions import SinkError
from .._reconnect import Reconnecting
from .._secrets import redact
from ..events import Completed, PartialImage, Usage, image_of

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MEDIA_TYPES",
    "SINK_FAILED",
    "item_metadata",
    "media_type_of",
    "public_message",
    "strict_json",
]

MAX_MESSAGE_CHARS = 500
"""The longest error message a browser is told, or a Redis terminal entry keeps."""

MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",  # browsers render SVG only under this type
}
"""``output_format`` -> the media type of the image file."""


_FORMAT_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,31}")


def media_type_of(output_format: str | None) -> str:
    """The media type of an image file in ``output_format`` (``image/png`` when absent;
    ``image/<format>`` for a format this table does not know yet, when it is a plain
    token: ASCII letters, digits, ``.``, ``+``, ``-``, at most 32; else
    ``application/octet-stream``, so that the server's text never shapes the ``data:``
    URL of the relays, RFC 2397, beyond its type)."""
    format_ = output_format or "png"
    known = MEDIA_TYPES.get(format_)
    if known is not None:
        return known
    return f"image/{format_}" if _FORMAT_TOKEN.fullmatch(format_) else "application/octet-stream"


def _usage_dict(usage: Usage) -> dict[str, Any]:
    """``usage`` in its wire shape (as the stream's ``completed`` event carries it):
    absent fields are left out, unknown ones kept."""
    result: dict[str, Any] = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    details = usage.input_tokens_details
    if details is not None:
        result["input_tokens_details"] = {
            key: value
            for key, value in {
                "image_tokens": details.image_tokens,
                "text_tokens": details.text_tokens,
                **details.extra,
            }.items()
            if value is not None
        }
    result.update(usage.extra)
    return {key: value for key, value in result.items() if value is not None}


def item_metadata(item: StreamItem) -> dict[str, Any]:
    """The JSON-ready description of one stream item, as the browser-facing sinks send it.

    For an image event: ``type`` (``"partial_image"`` or ``"completed"``), ``operation``
    (``"generation"`` or ``"edit"``), ``index`` (previews only, 0-based), ``size``
    (``"WxH"``), ``quality``, ``background``, ``output_format``, ``created_at`` (Unix
    seconds), ``usage`` (final images only: a dict in the wire shape, or ``None``),
    ``bytes`` (the size of the image file, computed from the base64 without decoding
    it; ``None`` for an image returned as a URL) and ``media_type`` (``image/png``,
    ``image/jpeg`` or ``image/webp``). Fields the server did not send are ``None``.
    Every text is passed through the one redaction (``ttstream._secrets.redact``): a
    server may echo the key into any field.

    For a :class:`~ttstream.Reconnecting` notice: ``type`` (``"reconnecting"``),
    ``attempt`` (1 for the first), ``delay`` (seconds), ``regenerating`` (``True``: a
    new generation starts over from its first preview) and ``reason`` (through the one
    redaction, ``ttstream._secrets.redact``: it may quote what a server sent).
    """
    if isinstance(item, Reconnecting):
        return {
            "type": "reconnecting",
            "attempt": item.attempt,
            "delay": item.delay,
            "regenerating": item.regenerating,
            "reason": redact(item.reason),  # the transport's text may quote a server
        }
    metadata: dict[str, Any] = {
        "type": "partial_image" if isinstance(item, PartialImage) else "completed",
        "operation": item.operation,
    }
    if isinstance(item, PartialImage):
        metadata["index"] = item.index
    metadata.update(
        size=item.size,
        quality=item.quality,
        background=item.background,
        output_format=item.output_format,
        created_at=item.created_at,
    )
    if isinstance(item, Completed):
        metadata["usage"] = None if item.usage is None else _usage_dict(item.usage)
    image = image_of(item)
    metadata["bytes"] = None if image is None else image.size()  # neither decoded nor encoded
    metadata["media_type"] = media_type_of(item.output_format)
    # every text here is the server's and reaches browsers: a server may echo the key
    result: dict[str, Any] = _redacted(metadata)
    return result


def _redacted(value: Any) -> Any:
    """``value`` with every str (at any depth, keys included) through ``redact``."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_redacted(key): _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity (at any depth) replaced by ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def strict_json(obj: Any) -> str:
    """Compact JSON of ``obj`` that a browser's ``JSON.parse`` takes and that UTF-8 can
    carry, for the browser-facing sinks (``docs/fast.md``, "Relay frames").

    - NaN, Infinity and -Infinity (which Python's json writes as bare ``NaN``, not
      JSON) become ``null``, wherever they are (a server may put them in ``usage``);
    - a lone surrogate in a string (``"\ud800"`` in the server's JSON decodes to one,
      and UTF-8 cannot encode it) makes that text escape every non-ASCII character
      (``ensure_ascii``): the browser gets the same string back. Otherwise non-ASCII
      characters are written as they are.
    """
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # a non-finite float
        obj = _finite(obj)
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return text


SINK_FAILED = "the server could not deliver this generation"
"""What browsers are told of a :class:`~ttstream.sinks.SinkError`: its text names sinks,
Redis keys and paths, for the server's log only."""


def public_message(error: BaseException | str) -> str:
    """The message of ``error`` as it may be stored (a Redis terminal entry) and shown to
    browsers (both relays, the websocket protocol): at most :data:`MAX_MESSAGE_CHARS`
    characters (the last one ``…`` when cut), through the one redaction
    (``ttstream._secrets.redact``: registered keys, credential values); for a
    :class:`~ttstream.sinks.SinkError` (the server's own delivery failed),
    :data:`SINK_FAILED`."""
    if isinstance(error, SinkError):
        return SINK_FAILED
    text = error if isinstance(error, str) else str(error) or type(error).__name__
    text = redact(text)
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return f"{text[: MAX_MESSAGE_CHARS - 1]}\u2026"
