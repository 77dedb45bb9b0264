"""WebSocketSink and serve_generations: generations sent to a Starlette (or FastAPI)
websocket, in the protocol of ``docs/live-previews.md`` ("The websocket protocol").

Starlette is an optional dependency: it is imported here only for type checking, and at
run time only by ``aclose`` with ``close_on_exit`` and by :func:`serve_generations`, so
``import ttstream.sinks`` works without it.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from .._bounds import require_seconds
from .._browser.items import item_metadata, media_type_of, public_message, strict_json
from .._event_types import StreamItem
from .._exceptions import SendTimeoutError, TTStreamError, ValidationError
from .._json import loads
from .._reconnect import Reconnecting
from ..events import Completed, PartialImage
from ._pump import Policy, SinkError, pump

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

__all__ = [
    "MAX_FRAME_BYTES",
    "WebSocketSink",
    "item_metadata",
    "media_type_of",
    "public_message",
    "serve_generations",
    "strict_json",
]

logger = logging.getLogger("ttstream")  # its filter redacts (docs/logging.md)

MAX_FRAME_BYTES = 65_536
"""The default largest binary frame: the default message limit of httpx2's websocket
client and a size every browser and proxy takes."""


class WebSocketSink:
    """Sends every item of a stream to an accepted Starlette or FastAPI websocket.

    With a ``job`` (the protocol of ``docs/live-previews.md``, which
    :func:`serve_generations` speaks), frames in the stream's order:

    - an image event: one text frame, a JSON object ``{"type": "preview" | "completed",
      "job": <job>, "frames": <k>, ...}`` (the other members are :func:`item_metadata`'s:
      ``operation``, ``index`` (previews only), ``size``, ``quality``, ``background``,
      ``output_format``, ``created_at``, ``usage`` (final images only), ``bytes``: the
      image's length, ``media_type``), then the image file cut into ``k`` binary frames
      of at most ``max_frame_bytes`` each (their concatenation is the file);
    - a :class:`~ttstream.Reconnecting` notice: one text frame ``{"type":
      "reconnecting", "job", "attempt", "delay", "regenerating", "reason"}``;
    - at the end, exactly one terminal frame: ``{"type": "end", "job", "images": <final
      images sent>}`` (with ``"cancelled": true`` once :attr:`cancelled` was set), or
      ``{"type": "error", "job", "message": ...}`` from :meth:`fail` (the message through
      :func:`public_message`).

    Sinks of several jobs may share one socket: give them one ``lock`` (an
    ``anyio.Lock``), so that an image's text frame and its binary frames are never
    interleaved with another job's.

    Without a ``job``, the frames are those of earlier versions, for the clients that
    read them: ``"type": "partial_image" | "completed"``, no ``job`` or ``frames``
    members, one binary frame per image whatever its size, no ``end`` frame (``fail``
    still sends ``{"type": "error", "message": ...}``).

    Text frames are strict JSON (:func:`strict_json`: NaN and infinities become
    ``null``). The binary frames are the event's decoded image: free when the stream
    decoded it on arrival (the default); the base64 is never read.

    Each ``send`` awaits its frames, each within ``send_timeout`` seconds, so the socket
    paces the stream (under :func:`~ttstream.sinks.pump`'s ``block`` policy, down to the
    API's socket).

    ``aclose`` leaves the websocket open for the caller, unless the sink was made with
    ``close_on_exit=True``: then it closes it with code 1000 (normal closure), unless it
    is already closed.

    Raises (from ``send``):
        starlette.websockets.WebSocketDisconnect: the peer went away (code 1006).
        RuntimeError: the websocket was not accepted, or was already closed.
        SendTimeoutError: the peer did not take a frame within ``send_timeout`` seconds
            (also a ``TimeoutError``).
        TTStreamError: a ``Completed`` that carries a URL instead of the image
            (``response_format="url"``): fetch it with ``AsyncClient.fetch_image``.
            No image is sent for it (with a ``job``, the job's ``error`` frame is).
        ValidationError: (from the constructor) ``max_frame_bytes`` below 1024, a
            ``send_timeout`` that is not a positive number of seconds, a ``job`` that is
            not 1 to 128 characters.
    """

    def __init__(
        self,
        websocket: WebSocket,
        *,
        job: str | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        send_timeout: float = 30.0,
        close_on_exit: bool = False,
        lock: anyio.Lock | None = None,
    ) -> None:
        if job is not None and not (isinstance(job, str) and 0 < len(job) <= 128):
            raise ValidationError("job", job, "a str of 1 to 128 characters")
        if isinstance(max_frame_bytes, bool) or not isinstance(max_frame_bytes, int):
            raise ValidationError("max_frame_bytes", max_frame_bytes, "an int >= 1024")
        if max_frame_bytes < 1024:
            raise ValidationError("max_frame_bytes", max_frame_bytes, "an int >= 1024")
        timeout = require_seconds("send_timeout", send_timeout)
        self.websocket = websocket
        self.job = job
        self.max_frame_bytes = max_frame_bytes
        self.send_timeout = timeout
        self.close_on_exit = close_on_exit
        self._lock = lock if lock is not None else anyio.Lock()
        self.frames_sent = 0
        """Text and binary frames sent so far."""
        self.images = 0
        """Final images sent so far."""
        self.cancelled = False
        """Set by whoever cancels the generation: the ``end`` frame then says so."""
        self.gone = False
        """Set when the peer left: ``aclose`` then sends nothing."""
        self._ended = False

    def __repr__(self) -> str:
        job = "" if self.job is None else f" job={self.job!r}"
        return (
            f"<WebSocketSink{job} frames_sent={self.frames_sent} "
            f"close_on_exit={self.close_on_exit}>"
        )

    async def _text(self, payload: dict[str, Any]) -> None:
        await self._within_timeout(self.websocket.send_text(strict_json(payload)))

    async def _bytes(self, data: bytes | memoryview) -> None:
        await self._within_timeout(self.websocket.send_bytes(bytes(data)))

    async def _within_timeout(self, sending: Awaitable[None]) -> None:
        """Awaits one frame's ``sending`` for ``send_timeout`` seconds at most.

        Raises:
            SendTimeoutError: the peer took no frame in that time.
        """
        with anyio.move_on_after(self.send_timeout) as scope:
            await sending
        if scope.cancelled_caught:
            raise SendTimeoutError(self.send_timeout)
        self.frames_sent += 1

    async def send(self, event: StreamItem) -> None:
        """Sends the frames of ``event`` (see the class docstring)."""
        metadata = item_metadata(event)
        if isinstance(event, Reconnecting):
            if self.job is not None:
                metadata = {"type": "reconnecting", "job": self.job, **metadata}
            async with self._lock:
                await self._text(metadata)
            return
        try:
            image = event.image_bytes  # raises for a URL-only image, before anything is sent
        except TTStreamError as exc:
            if self.job is not None:
                await self.fail(exc)  # the job ends here: its browser is told why
            raise
        if self.job is None:
            async with self._lock:
                await self._text(metadata)
                await self._bytes(image)
            return
        kind = "preview" if isinstance(event, PartialImage) else "completed"
        size = self.max_frame_bytes
        pieces = [memoryview(image)[i : i + size] for i in range(0, len(image), size)]
        metadata.update(type=kind, job=self.job, frames=len(pieces))
        header = {"type": kind, "job": self.job, **metadata}
        async with self._lock:
            await self._text(header)
            for piece in pieces:
                await self._bytes(piece)
        if isinstance(event, Completed):
            self.images += 1

    async def fail(self, error: BaseException | str) -> None:
        """Sends ``{"type": "error", "job", "message"}`` (:func:`public_message`): the
        generation failed; :func:`~ttstream.sinks.pump` calls this when the stream
        fails. Nothing more is sent for this job (``aclose`` sends no ``end``)."""
        if self._ended or self.gone:
            return
        self._ended = True
        payload: dict[str, Any] = {"type": "error"}
        if self.job is not None:
            payload["job"] = self.job
        payload["message"] = public_message(error)
        async with self._lock:
            await self._text(payload)

    async def aclose(self) -> None:
        """With a ``job``: sends the ``end`` frame unless :meth:`fail` ended the job or
        the peer left. Then closes the websocket with code 1000 if ``close_on_exit``.
        A socket the peer already left is not an error, nor one whose peer takes no close
        frame within ``send_timeout`` (a peer that stopped reading: it is left to the
        server, which drops the connection when the app returns)."""
        from starlette.websockets import WebSocketDisconnect, WebSocketState

        if self.job is not None and not self._ended and not self.gone:
            self._ended = True
            payload: dict[str, Any] = {"type": "end", "job": self.job, "images": self.images}
            if self.cancelled:
                payload["cancelled"] = True
            with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError, TimeoutError):
                async with self._lock:
                    await self._text(payload)
        if not self.close_on_exit:
            return
        if self.websocket.application_state is not WebSocketState.CONNECTED:
            return
        with (
            anyio.move_on_after(self.send_timeout),
            contextlib.suppress(WebSocketDisconnect, OSError),
        ):
            await self.websocket.close(code=1000)


Start = Callable[
    [dict[str, Any]], "AsyncIterable[StreamItem] | Awaitable[AsyncIterable[StreamItem]]"
]
"""``start(params)``: the stream of one generation for the browser's ``params`` (a JSON
object), e.g. ``lambda params: client.generate(params["prompt"], partial_images=2)``;
may be async. A :class:`~ttstream.TTStreamError` it raises (a ``ValidationError`` for
bad parameters) is sent to the browser as the job's ``error`` frame."""


async def serve_generations(
    websocket: WebSocket,
    start: Start,
    *,
    max_jobs: int = 4,
    max_frame_bytes: int = MAX_FRAME_BYTES,
    send_timeout: float = 30.0,
    policy: Policy = "latest",
) -> None:
    """Runs generations for one browser's websocket until it leaves
    (``docs/live-previews.md``, "The websocket protocol").

    Accepts the socket if it is not accepted yet, then reads the browser's text frames:

    - ``{"type": "start", "job": <id>, "params": {...}}``: ``start(params)`` is pumped
      into a :class:`WebSocketSink` for that job (frames ``preview``, ``completed``,
      ``reconnecting``, then ``end`` or ``error``), next to the other running jobs;
    - ``{"type": "cancel", "job": <id>}`` (or without ``job``: every job): the job's
      task is cancelled at once, which closes its API stream; its last frame is
      ``{"type": "end", "job", "images", "cancelled": true}``.

    When the browser disconnects, every running job is cancelled at once and its API
    stream closed (nothing is billed beyond what was already generating). A malformed
    message, a job id already running, or more than ``max_jobs`` jobs at once is
    answered with an ``error`` frame (with the job's id when it has one); the socket
    stays open. Returns once the browser has left and every job has ended.

    Who may use the socket is the endpoint's decision, before calling this (see
    "Who may watch" in the same page).

    Args:
        websocket: a Starlette (FastAPI) websocket.
        start: makes the stream of a job from its ``params`` (see :data:`Start`).
        max_jobs: generations one socket may run at once (>= 1).
        max_frame_bytes: the largest binary frame (>= 1024).
        send_timeout: seconds the browser may take to take a frame; a browser that
            does not read for that long has its jobs detached.
        policy: :func:`~ttstream.sinks.pump`'s policy; ``"latest"`` (the default) lets a
            slow browser skip previews, never a final image.

    Raises:
        ValidationError: a setting out of range.
    """
    from starlette.websockets import WebSocketState

    if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
        raise ValidationError("max_jobs", max_jobs, "an int >= 1")
    if websocket.client_state is WebSocketState.CONNECTING:
        await websocket.accept()
    lock = anyio.Lock()
    running: dict[str, tuple[anyio.CancelScope, WebSocketSink]] = {}

    async def tell(payload: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the browser may have left
            async with lock:
                with anyio.fail_after(send_timeout):
                    await websocket.send_text(strict_json(payload))

    async def run(job: str, params: dict[str, Any], sink: WebSocketSink) -> None:
        scope = running[job][0]
        try:
            with scope:
                try:
                    made = start(params)
                    stream = await made if inspect.isawaitable(made) else made
                except TTStreamError as exc:
                    await sink.fail(exc)
                    return
                try:
                    await pump(stream, sink, policy=policy)
                except SinkError as exc:
                    cause = exc.failures[0][1]
                    if isinstance(cause, TTStreamError):  # e.g. an image given as a URL
                        await sink.fail(cause)
                    else:
                        sink.gone = True  # the browser went away or stopped reading
                except TTStreamError as exc:
                    await sink.fail(exc)  # once: pump told it already, unless a deadline
        except Exception:  # the application's own error: the browser gets a sentence
            logger.exception("job %r of a websocket failed", job)
            await sink.fail("the server failed to run this generation")
        finally:
            running.pop(job, None)
            await sink.aclose()

    async with anyio.create_task_group() as tasks:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                for scope, sink in running.values():
                    sink.gone = True
                    scope.cancel()
                break
            request = _parse(message.get("text"))
            if isinstance(request, str):
                await tell({"type": "error", "message": request})
                continue
            kind, job = request.get("type"), request.get("job")
            if kind == "cancel":
                for name, (scope, sink) in list(running.items()):
                    if job is None or name == job:
                        sink.cancelled = True
                        scope.cancel()
                continue
            if kind != "start":
                await tell({"type": "error", "message": _WRONG_TYPE})
                continue
            params = request.get("params", {})
            if not isinstance(job, str) or not 0 < len(job) <= 128:
                await tell({"type": "error", "message": _WRONG_JOB})
                continue
            problem = None
            if not isinstance(params, dict):
                problem = '"params" must be a JSON object'
            elif job in running:
                problem = "a job with this id is running on this socket"
            elif len(running) >= max_jobs:
                problem = f"at most {max_jobs} generations run at once on one socket"
            if problem is not None:
                await tell({"type": "error", "job": job, "message": problem})
                continue
            sink = WebSocketSink(
                websocket,
                job=job,
                max_frame_bytes=max_frame_bytes,
                send_timeout=send_timeout,
                lock=lock,
            )
            running[job] = (anyio.CancelScope(), sink)
            tasks.start_soon(run, job, params, sink)


_WRONG_TYPE = 'a message\'s "type" is "start" or "cancel"'
_WRONG_JOB = '"job" must be a string of 1 to 128 characters'


def _parse(text: object) -> dict[str, Any] | str:
    """A browser's text frame as a JSON object, or the sentence saying why not."""
    if not isinstance(text, str):
        return "send JSON text frames"
    if len(text) > 1_000_000:
        return "a message is at most 1,000,000 characters"
    try:
        value = loads(text)
    except ValueError:
        return "a message is a JSON object"
    if not isinstance(value, dict):
        return "a message is a JSON object"
    return value
