"""Small sinks: a callback, an anyio memory object stream, and Pillow images."""

from __future__ import annotations

import inspect
import io
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from ..events import Completed, PartialImage
from ..stream import Event, StreamItem

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["CallbackSink", "ObjectStreamSink", "PillowSink", "to_pil"]


class CallbackSink:
    """Calls ``fn(item)`` for every item; ``fn`` may be a plain function or a coroutine
    function (awaited, so a slow one paces the stream under the ``block`` policy).
    A plain function runs in the event loop's thread: keep it quick."""

    def __init__(self, fn: Callable[[StreamItem], Awaitable[object] | object]) -> None:
        self.fn = fn

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


def to_pil(event: Event) -> Image.Image:
    """The event's image as a loaded ``PIL.Image.Image`` (Pillow: ``ttstream[pillow]``).

    Raises:
        ImportError: Pillow is not installed.
        MalformedEventError: the base64 is invalid.
        PIL.UnidentifiedImageError: the bytes are not an image Pillow can read.
    """
    from PIL import Image

    image = Image.open(io.BytesIO(event.image_bytes))
    image.load()
    return image


class PillowSink:
    """Hands each image event to ``fn(event, image)`` as a ``PIL.Image.Image``, decoded
    in a worker thread so the event loop stays free; ``fn`` may be sync or async.
    ``Reconnecting`` notices are skipped."""

    def __init__(self, fn: Callable[[Event, Image.Image], Awaitable[object] | object]) -> None:
        self.fn = fn

    def __repr__(self) -> str:
        return f"<PillowSink {getattr(self.fn, '__qualname__', self.fn)!r}>"

    async def send(self, event: StreamItem) -> None:
        if not isinstance(event, PartialImage | Completed):
            return
        image: Any = await anyio.to_thread.run_sync(to_pil, event)
        result = self.fn(event, image)
        if inspect.isawaitable(result):
            await result

    async def aclose(self) -> None:
        """Nothing to release."""
