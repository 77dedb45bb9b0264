"""Small sinks: a callback, an anyio memory object stream, and Pillow images."""

from __future__ import annotations

import functools
import inspect
import io
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .._bounds import require_int
from .._checks import require_callable
from .._event_types import Event, StreamItem
from .._exceptions import ImageDecodeError, ImageTooLargeError
from ..events import Completed, PartialImage

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["DEFAULT_MAX_PIXELS", "CallbackSink", "ObjectStreamSink", "PillowSink", "to_pil"]

DEFAULT_MAX_PIXELS = 4096 * 4096
"""The most pixels ``to_pil`` decodes by default: 16,777,216 (4096x4096), about twice the
largest image the models produce (3840x2160 = 8,294,400 pixels; docs/hostile-servers.md,
"Images"). Decoded as RGBA that is 64 MiB."""


class CallbackSink:
    """Calls ``fn(item)`` for every item; ``fn`` may be a plain function or a coroutine
    function (awaited, so a slow one paces the stream under the ``block`` policy).
    A plain function runs in the event loop's thread: keep it quick.

    Raises:
        ValidationError: ``fn`` is not callable (found here, not after the generation).
    """

    def __init__(self, fn: Callable[[StreamItem], Awaitable[object] | object]) -> None:
        # checked when the sink is made, before pump starts a (billed) generation
        self.fn = require_callable("fn", fn, "a function of the item, sync or async")

    def __repr__(self) -> str:
        return f"<CallbackSink {getattr(self.fn, '__qualname__', self.fn)!r}>"

    async def send(self, event: StreamItem) -> None:
        result = self.fn(event)
        if inspect.isawaitable(result):
            await result

    async def aclose(self) -> None:
        """Nothing to release."""


class ObjectStreamSink:
    """Sends every item into an anyio memory object stream, for pipelines: the receiving
    side iterates the items and ends when the sink is closed (``aclose`` closes the send
    stream, so the receiver sees ``EndOfStream``). The stream's buffer size sets how far
    the producer may run ahead of the receiver."""

    def __init__(self, send_stream: MemoryObjectSendStream[StreamItem]) -> None:
        self.send_stream = send_stream

    def __repr__(self) -> str:
        return f"<ObjectStreamSink {self.send_stream!r}>"

    async def send(self, event: StreamItem) -> None:
        await self.send_stream.send(event)

    async def aclose(self) -> None:
        await self.send_stream.aclose()


def to_pil(event: Event, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The event's image as a loaded ``PIL.Image.Image`` (Pillow: ``ttstream[pillow]``).

    The image's size is read from its header first: one of more than ``max_pixels``
    pixels (width x height) is refused before it is decoded, so a small file that
    decodes huge (a decompression bomb) costs nothing. This limit is per call; Pillow's
    process-wide ``Image.MAX_IMAGE_PIXELS`` is left as it is and still applies.

    Raises:
        ImportError: Pillow is not installed.
        MalformedEventError: the base64 is invalid.
        ImageTooLargeError: more than ``max_pixels`` pixels (or Pillow's own
            ``DecompressionBombError``).
        ImageDecodeError: the bytes are not an image Pillow can read, or the file is
            truncated or damaged (``__cause__`` is Pillow's error).
    """
    from PIL import Image

    data = event.image_bytes
    try:
        image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning is raised only where warnings are made errors.
        raise ImageTooLargeError(pixels=None, max_pixels=max_pixels, detail=str(exc)) from exc
    except Exception as exc:  # Pillow raises many kinds for damaged files
        raise ImageDecodeError(f"the image ({len(data)} bytes) could not be read: {exc}") from exc
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageTooLargeError(pixels=width * height, max_pixels=max_pixels)
    try:
        image.load()
    except Exception as exc:
        image.close()
        raise ImageDecodeError(
            f"the {width}x{height} image ({len(data)} bytes) could not be decoded: {exc}"
        ) from exc
    return image


class PillowSink:
    """Hands each image event to ``fn(event, image)`` as a ``PIL.Image.Image``, decoded
    in a worker thread so the event loop stays free; ``fn`` may be sync or async.
    ``Reconnecting`` notices are skipped. ``max_pixels`` is :func:`to_pil`'s: an image
    that is larger, or that cannot be decoded, raises its ``ImageTooLargeError`` or
    ``ImageDecodeError`` from ``send`` (under ``pump``: the sink is detached).

    Raises:
        ValidationError: ``fn`` is not callable, or ``max_pixels`` is no int >= 1.
    """

    def __init__(
        self,
        fn: Callable[[Event, Image.Image], Awaitable[object] | object],
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.fn = require_callable("fn", fn, "a function of (event, image), sync or async")
        self.max_pixels = require_int("max_pixels", max_pixels, 1)

    def __repr__(self) -> str:
        return f"<PillowSink {getattr(self.fn, '__qualname__', self.fn)!r}>"

    async def send(self, event: StreamItem) -> None:
        if not isinstance(event, PartialImage | Completed):
            return
        decode = functools.partial(to_pil, max_pixels=self.max_pixels)
        image: Any = await anyio.to_thread.run_sync(decode, event)
        result = self.fn(event, image)
        if inspect.isawaitable(result):
            await result

    async def aclose(self) -> None:
        """Nothing to release."""
