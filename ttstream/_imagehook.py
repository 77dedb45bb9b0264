"""The image fast path as a hook of the generic SSE decoder (no I/O).

:class:`~ttstream.SSEDecoder` knows nothing of images: it offers a hook for data lines
(:class:`ttstream.sse.LineHook`). This module is the Images layer's hook: a data line
that holds a JSON object with a top-level image string (:data:`IMAGE_KEYS`) has its
base64 decoded while its bytes arrive (``ttstream._imageline``; docs/fast.md). An
:class:`~ttstream.ImageStream` installs it (``decode_images``); a plain
:class:`~ttstream.EventSource` does only when asked.
"""

from __future__ import annotations

from ._base64 import codec
from ._imageline import HEAD_LIMIT, ImageLine

__all__ = ["IMAGE_KEYS", "ImageLineHook"]

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
