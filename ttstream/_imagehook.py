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

import threading
from collections.abc import Hashable, Mapping
from typing import Any

from ._base64 import codec
from ._checks import require_hashable, require_int
from ._exceptions import ValidationError
from ._imageline import HEAD_LIMIT, DecodedData, ImageLine
from .sse import DEFAULT_MAX_EVENT_BYTES, ServerSentEvent, SSEDecoder

__all__ = [
    "IMAGE_KEYS",
    "IMAGE_SIZES",
    "SHAPE_FIELDS",
    "DecodedData",
    "ImageLineHook",
    "ImageSizes",
    "decoded_data",
    "image_decoder",
    "image_shape",
]

IMAGE_KEYS = ("b64_json", "partial_image_b64")
"""The top-level JSON members decoded as they arrive: the Images API's ``b64_json`` and
the Responses API's ``partial_image_b64``."""


class ImageSizes:
    """The decoded size of the latest image of each request shape, for at most ``limit``
    shapes (the one whose size came least recently is forgotten first); safe to share
    between threads.

    The first image of a stream has no earlier image of its own to size its buffer by:
    without a size it grows its buffer by half at a time (a copy of what it holds at
    each step). Given the size of the latest image of the same shape (the request
    parameters an image's size depends on), it is written in place into a buffer made
    that large once it holds a sixteenth of that size, as the stream's later images are
    from their second chunk (docs/fast.md): a server then makes a stream hold at most 16
    times the decoded bytes it sent. A size is only ever that of an image decoded
    before, so such a buffer is never larger than an image the process already held
    whole (and :class:`ImageLineHook` takes it only up to its decoder's event cap). The
    clients' streams share one process-wide instance, :data:`IMAGE_SIZES`, like ``re``'s
    cache of compiled patterns: a client made per request benefits too.

    Raises:
        ValidationError: ``limit`` not an int >= 1.
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = require_int("limit", limit, 1, "shapes")
        self._sizes: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ImageSizes of {len(self._sizes)} shapes>"

    def get(self, shape: Hashable) -> int:
        """The size in bytes of the latest image of ``shape``, or 0 if none."""
        return self._sizes.get(shape, 0)

    def clear(self) -> None:
        """Forgets every size."""
        with self._lock:
            self._sizes.clear()

    def put(self, shape: Hashable, size: int) -> None:
        """Remembers ``size`` (bytes) as the latest image's of ``shape``.

        Raises:
            ValidationError: ``size`` not an int >= 0, or ``shape`` not hashable.
        """
        require_int("size", size, 0, "bytes")
        require_hashable("shape", shape)
        with self._lock:
            sizes = self._sizes
            sizes.pop(shape, None)
            sizes[shape] = size
            if len(sizes) > self.limit:
                del sizes[next(iter(sizes))]


REMEMBERED_FROM = 16
"""A size remembered from another stream is taken once the image holds 1/16 of it: what
a server can make a stream hold for its first image is then at most 16 times the
decoded bytes of that image it sent, 17 for a moment while they are copied over. A
size from the stream's own previous image, which that server sent whole, is taken at
once."""


IMAGE_SIZES = ImageSizes()
"""The sizes the streams of ttstream's clients (and of an ``EventSource`` given an
``image_shape``) share (:class:`ImageSizes`): ``IMAGE_SIZES.clear()`` forgets them, as
``re.purge()`` empties ``re``'s cache."""

SHAPE_FIELDS = ("model", "size", "quality", "output_format", "output_compression", "background")
"""The request parameters (the Images API's, and those of the Responses API's
``image_generation`` tool) that an image's decoded size depends on."""


def image_shape(url: str, fields: Mapping[str, Any]) -> tuple[str, ...]:
    """The key of :class:`ImageSizes` for a request to ``url`` whose image parameters are
    ``fields``: the URL's scheme, host, port and path (the server and the endpoint; on
    Azure's Images API, the deployment), without its user information, query and
    fragment, which may hold credentials, and the :data:`SHAPE_FIELDS`, each as its
    ``repr`` (``None`` when absent). Any text is a key: nothing here raises."""
    scheme, sep, rest = url.split("?", 1)[0].split("#", 1)[0].partition("://")
    authority, slash, path = rest.partition("/")
    where = scheme + sep + authority.rpartition("@")[2].lower() + slash + path
    return (where, *(repr(fields.get(name)) for name in SHAPE_FIELDS))


class ImageLineHook:
    """The decoder hook that decodes an image string of ``keys`` while it arrives.

    ``wants(value)``: whether a whole data line may hold an image (it quotes one of the
    keys within its first 64 KiB); ``start()``: the incremental decoder of one line, which
    gives the line back as text on any doubt. One hook serves one stream: each image's
    buffer is sized like the stream's previous image; with a ``shape``, the first one is
    sized like the latest image of that shape in ``sizes`` (:class:`ImageSizes`), where
    each image's size is then put, but never larger than the image an event of
    ``max_event_bytes`` can hold (3 bytes per 4 of base64): give the ``max_event_bytes``
    of the decoder the hook is installed on, as other streams of the same shape may
    take larger events.

    Raises:
        ValidationError: ``keys`` not a non-empty tuple of member names, ``shape`` not
            hashable, or, with a ``shape``, ``max_event_bytes`` not given or not an int
            >= 1.
    """

    def __init__(
        self,
        keys: tuple[str, ...] = IMAGE_KEYS,
        *,
        shape: Hashable = None,
        sizes: ImageSizes = IMAGE_SIZES,
        max_event_bytes: int | None = None,
    ) -> None:
        if (
            not isinstance(keys, tuple)
            or not keys
            or not all(isinstance(key, str) and key for key in keys)
        ):
            raise ValidationError(
                "keys", keys, "a non-empty tuple of member names, e.g. IMAGE_KEYS"
            )
        self.keys = keys
        self._quoted = tuple(b'"' + key.encode() + b'"' for key in keys)
        self._sizes = None if shape is None else sizes
        self._shape = require_hashable("shape", shape)
        self._largest = 0
        if shape is not None:
            if max_event_bytes is None:
                allowed = "the max_event_bytes of the decoder, given with a shape"
                raise ValidationError("max_event_bytes", None, allowed)
            self._largest = require_int("max_event_bytes", max_event_bytes, 1, "bytes") // 4 * 3
        self._size = 0  # the stream's latest image's

    def __repr__(self) -> str:
        return f"<ImageLineHook keys={self.keys!r}>"

    def wants(self, value: memoryview) -> bool:
        head = value[:HEAD_LIMIT].tobytes()
        return any(key in head for key in self._quoted)

    def start(self) -> ImageLine:
        """A line decoder whose image buffer is sized like the stream's latest image
        (previews and the final image of a stream share a size), else like the latest
        of its shape once the image holds a sixteenth of that size."""
        if self._size or self._sizes is None:
            return ImageLine(self.keys, codec(), self._size, self._ended)
        size = min(self._sizes.get(self._shape), self._largest)
        return ImageLine(self.keys, codec(), size, self._ended, size // REMEMBERED_FROM)

    def _ended(self, size: int) -> None:
        self._size = size
        if self._sizes is not None:
            self._sizes.put(self._shape, size)


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
        ValidationError: ``max_event_bytes`` not an int >= 1, or ``keys`` not a non-empty
            tuple of member names.
    """
    return SSEDecoder(max_event_bytes, line_hook=ImageLineHook(keys))


def decoded_data(sse: ServerSentEvent) -> DecodedData | None:
    """The JSON object and decoded image of ``sse`` when the image fast path decoded its
    image string while it arrived; else ``None``: the data is then text only, to be
    parsed as usual."""
    decoded = sse.decoded
    return decoded if isinstance(decoded, DecodedData) else None
