"""WebSocketSink: every image of a stream sent to a Starlette (or FastAPI) websocket.

Starlette is an optional dependency: it is imported here only for type checking, and at
run time only when ``close_on_exit`` asks the sink to close the socket, so
``import ttstream.sinks`` works without it.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import TYPE_CHECKING, Any

from .._reconnect import Reconnecting
from .._secrets import redact
from ..events import Completed, PartialImage, Usage, image_of
from ..stream import StreamItem

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

__all__ = ["WebSocketSink", "item_metadata", "media_type_of", "strict_json"]

MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",  # browsers render SVG only under this type
}
"""``output_format`` -> the media type of the image file."""


def media_type_of(output_format: str | None) -> str:
    """The media type of an image file in ``output_format`` (``image/png`` when absent;
    ``image/<format>`` for a format this table does not know yet)."""
    format_ = output_format or "png"
    return MEDIA_TYPES.get(format_, f"image/{format_}")


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
    return metadata


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


class WebSocketSink:
    """Sends every item of a stream to an accepted Starlette or FastAPI websocket.

    Frames, in the stream's order:

    - an image event: one text frame holding a JSON object, then one binary frame
      holding the image file (PNG, JPEG or WebP bytes, as ``media_type`` says). The
      object is :func:`item_metadata`'s: ``{"type": "partial_image" | "completed",
      "operation", "index" (previews only), "size", "quality", "background",
      "output_format", "created_at", "usage" (final images only, dict or null),
      "bytes": <length of the binary frame>, "media_type": "image/png"}``;
    - a :class:`~ttstream.Reconnecting` notice: one text frame ``{"type":
      "reconnecting", "attempt", "delay", "regenerating", "reason"}`` and no binary
      frame.

    Text frames are strict JSON (:func:`strict_json`: NaN and infinities become
    ``null``). The binary frame is the event's decoded image: free when the stream
    decoded it on arrival (the default); the base64 is never read.

    Each ``send`` awaits both frames, so the socket paces the stream (under
    :func:`~ttstream.sinks.pump`'s ``block`` policy, down to the API's socket).

    ``aclose`` leaves the websocket open for the caller, unless the sink was made with
    ``close_on_exit=True``: then it closes it with code 1000 (normal closure), unless it
    is already closed.

    Raises (from ``send``):
        starlette.websockets.WebSocketDisconnect: the peer went away (code 1006).
        RuntimeError: the websocket was not accepted, or was already closed.
        TTStreamError: a ``Completed`` that carries a URL instead of the image
            (``response_format="url"``): fetch it with ``AsyncClient.fetch_image``.
            Nothing is sent for it.
    """

    def __init__(self, websocket: WebSocket, *, close_on_exit: bool = False) -> None:
        self.websocket = websocket
        self.close_on_exit = close_on_exit
        self.frames_sent = 0
        """Text and binary frames sent so far."""

    def __repr__(self) -> str:
        return f"<WebSocketSink frames_sent={self.frames_sent} close_on_exit={self.close_on_exit}>"

    async def send(self, event: StreamItem) -> None:
        """Sends the frames of ``event`` (see the class docstring)."""
        if isinstance(event, Reconnecting):
            await self.websocket.send_text(strict_json(item_metadata(event)))
            self.frames_sent += 1
            return
        image = event.image_bytes  # raises for a URL-only image, before anything is sent
        await self.websocket.send_text(strict_json(item_metadata(event)))
        self.frames_sent += 1
        await self.websocket.send_bytes(image)
        self.frames_sent += 1

    async def aclose(self) -> None:
        """Closes the websocket with code 1000 if ``close_on_exit``; else does nothing.
        A socket the peer already left is not an error."""
        if not self.close_on_exit:
            return
        from starlette.websockets import WebSocketDisconnect, WebSocketState

        if self.websocket.application_state is not WebSocketState.CONNECTED:
            return
        with contextlib.suppress(WebSocketDisconnect, OSError):
            await self.websocket.close(code=1000)
