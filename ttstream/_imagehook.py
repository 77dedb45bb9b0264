"""The image fast path as a hook of the generic SSE decoder (no I/O).

:class:`~ttstream.SSEDecoder` knows nothing of images: it offers a hook for data lines
(:class:`ttstream.sse.LineHook`). This module is the Images layer's hook: a data line
that holds a JSON object with a top-level image string (:data:`IMAGE_KEYS`) has its
base64 decoded while its bytes arrive (``ttstream._imageline``; docs/fast.md). An
:class:`~ttstream.ImageStream` installs it (``decode_images``); a plain
:class:`~ttstream.EventSource` or :class:`~ttstream.SSEDecoder` does only when asked.
Its public names are exported by :mod:`ttstream.events`.
"""

from __future__ import annotations

from ._base64 import codec
from ._imageline import HEAD_LIMIT, DecodedData, ImageLine
from .sse import DEFAULT_MAX_EVENT_BYTES, ServerSentEvent, SSEDecoder

__all__ = ["IMAGE_KEYS", "DecodedData", "ImageLineHook", "decoded_data", "image_decoder"]

IMAGE_KEYS = ("b64_json", "partial_image_b64")
"""The top-level JSON members decoded as they arrive: the Images API's ``b64_json`` and
the Responses API's ``partial_image_b64``."""


class ImageLineHook:
    """The decoder hook that decodes an image string of ``keys`` while it arrives.

    ``wants(value)``: whether a whole data line may hold an image (it quotes one of the
    keys within its first :data:`~ttstream._imageline.HEAD_LIMIT` bytes); ``start()``:
    the incremental decoder of one line (:class:`~ttstream._imageline.ImageLine`), which
    gives the line back as text on any doubt.
    """

    def __init__(self, keys: tuple[str, ...] = IMAGE_KEYS) -> None:
        self.keys = keys
        self._quoted = tuple(b'"' + key.encode() + b'"' for key in keys)
        self._last: ImageLine | None = None  # its image's size sizes the next one's buffer

    def __repr__(self) -> str:
        return f"<ImageLineHook keys={self.keys!r}>"

    def wants(self, value: memoryview) -> bool:
        head = value[:HEAD_LIMIT].tobytes()
        return any(key in head for key in self._quoted)

    def start(self) -> ImageLine:
        """A line decoder whose image buffer is sized like the previous line's image
        (one hook per decoder, so per stream: previews and the final share a size)."""
        hint = 0 if self._last is None else self._last.decoded_size
        self._last = ImageLine(self.keys, codec(), hint)
        return self._last


def image_decoder(
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, *, keys: tuple[str, ...] = IMAGE_KEYS
) -> SSEDecoder:
    """An :class:`~ttstream.SSEDecoder` with the image fast path installed
    (``SSEDecoder(max_event_bytes, line_hook=ImageLineHook(keys))``; docs/fast.md): an
    event whose data is one line holding a JSON object with a top-level base64 string
    under one of ``keys`` has that string decoded while its bytes arrive
    (:func:`decoded_data`); its ``data`` is the same text, rebuilt on each read. Anything
    the fast path cannot vouch for (an escape, non-ASCII bytes, bad padding, several data
    lines...) stays text, so events, fields and errors are exactly the plain path's.

    Raises:
        ValidationError: ``max_event_bytes`` not an int >= 1.
    """
    return SSEDecoder(max_event_bytes, line_hook=ImageLineHook(keys))


def decoded_data(sse: ServerSentEvent) -> DecodedData | None:
    """The JSON object and decoded image of ``sse`` when the image fast path decoded its
    image string while it arrived; else ``None``: the data is then text only, to be
    parsed as usual."""
    decoded = sse.decoded
    return decoded if isinstance(decoded, DecodedData) else None
