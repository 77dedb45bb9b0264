"""The frames and the ASGI plumbing both relays share (:class:`~ttstream.sinks.SSERelay`
and :class:`~ttstream.sinks.RedisRelay`), so that their bytes are the same, byte for byte:
the response headers, one encoded event (:class:`Frame`), the frame of a stream item
(:func:`frame_of`), and the preamble that answers what a relay serves no stream to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Generic, TypeVar

import anyio

from .._event_types import StreamItem
from .._reconnect import Reconnecting
from ..events import image_of
from ._websocket import item_metadata, strict_json

__all__ = [
    "SSE_HEADERS",
    "Frame",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "answered_other_than_get",
    "cancel_on_disconnect",
    "frame_of",
    "plain_response",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass the frames through as they come
]


_Id = TypeVar("_Id", int, str)


class Frame(Generic[_Id]):
    """One encoded event: its id (a counter, or a Redis entry id for ``RedisRelay``) and
    the bytes every connection sends."""

    __slots__ = ("data", "event_id")

    def __init__(self, event_id: _Id, event: str, data: bytes) -> None:
        self.event_id: _Id = event_id
        self.data = data

    @classmethod
    def of(cls, event_id: _Id, event: str, payload: dict[str, Any]) -> Frame[_Id]:
        return cls(event_id, event, _encode(f"id: {event_id}\nevent: {event}\ndata: ", payload))


def _encode(head: str, payload: dict[str, Any], image: bytes = b"") -> bytes:
    """``head``, the strict JSON of ``payload`` with ``image`` spliced in as the value
    of a last member ``"image"`` (whose text ``payload["image"]`` begins), and the
    blank line; one join of the base64, which is never copied into a str."""
    body = strict_json(payload)
    if not image:
        return f"{head}{body}\n\n".encode()
    assert body.endswith('"}')
    return b"".join([f"{head}{body[:-2]}".encode(), image, b'"}\n\n'])


def frame_of(event_id: _Id, item: StreamItem) -> Frame[_Id]:
    """The frame of one item. An image's ``image`` member is a ``data:`` URL made from
    the event's own base64, spliced in as bytes (encoded once when the event holds the
    decoded image, copied once when it holds base64 known to need no JSON escaping),
    or the image's URL when the server answered with one. Byte for byte what
    ``json.dumps`` of the whole object gives (``docs/fast.md``, "Relay frames")."""
    metadata = item_metadata(item)
    name = str(metadata["type"])
    head = f"id: {event_id}\nevent: {name}\ndata: "
    if isinstance(item, Reconnecting):
        return Frame(event_id, name, _encode(head, metadata))
    image = image_of(item)
    prefix = f"data:{metadata['media_type']};base64,"
    if image is None:
        metadata["image"] = getattr(item, "url", None)
        return Frame(event_id, name, _encode(head, metadata))
    if not image.verbatim:  # text that json.loads unescaped: let json write it
        metadata["image"] = prefix + image.text()
        return Frame(event_id, name, _encode(head, metadata))
    metadata["image"] = prefix
    return Frame(event_id, name, _encode(head, metadata, image.utf8()))


async def answered_other_than_get(scope: Scope, receive: Receive, send: Send) -> bool:
    """Answers what a relay serves no stream to: ``lifespan`` (so a relay can be a whole
    application), ``websocket`` (refused) and methods other than GET and HEAD (405).
    ``True`` when it answered; the one preamble of :class:`SSERelay` and ``RedisRelay``."""
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
        return True
    if kind == "websocket":
        await send({"type": "websocket.close", "code": 1003, "reason": ""})
        return True
    if scope.get("method", "GET") not in ("GET", "HEAD"):
        await plain_response(send, 405, b"only GET", [(b"allow", b"GET, HEAD")])
        return True
    return False


async def cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancels ``scope`` when the browser disconnects (``http.disconnect``)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


async def plain_response(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])]
    if status == 204:
        head = []
    else:
        head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """ASGI lifespan: nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
