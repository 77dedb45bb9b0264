"""Viewers of a relay for the tests: a Hypercorn server in the test's own event loop, an
SSE reader standing in for a browser, and small waits."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
from anyio.streams.memory import MemoryObjectReceiveStream
from hypercorn.config import Config
from PIL import Image

import ttstream
from ttstream import StreamItem
from ttstream.sse import ServerSentEvent, SSEDecoder


@contextlib.asynccontextmanager
async def serving(app: Any, backend: str) -> AsyncIterator[str]:
    """Serves ``app`` with Hypercorn on a free loopback port in the current event loop
    (``backend``: the test's ``anyio_backend``); yields its base URL; shuts it down
    (gracefully, 1 s at most) on the way out."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns the socket from here
    config.accesslog = config.errorlog = None
    config.graceful_timeout = 1.0
    if backend == "trio":
        from hypercorn.trio import serve
    else:
        from hypercorn.asyncio import serve  # type: ignore[assignment]
    stop = anyio.Event()
    failure: Exception | None = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lambda: serve(app, config, shutdown_trigger=stop.wait))
        try:
            yield f"http://127.0.0.1:{port}"
        except Exception as exc:  # raised again once the server stopped gracefully
            failure = exc
        finally:
            stop.set()
    if failure is not None:
        raise failure


async def eventually(predicate: Callable[[], bool]) -> None:
    """Waits until ``predicate()`` holds (state of the server and of other tasks that no
    event signals, hence polling); fails after 5 s."""
    with anyio.fail_after(5):
        while not predicate():  # noqa: ASYNC110 - nothing to wait on but the state itself
            await anyio.sleep(0.005)


class Browser:
    """Reads an event stream the way EventSource does, with SSEDecoder; keeps what came.

    ``leave_after``: disconnect once the event with this id arrived."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        url: str,
        *,
        last_event_id: str | None = None,
        leave_after: str | None = None,
    ) -> None:
        self.http = http
        self.url = url
        self.headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
        self.leave_after = leave_after
        self.decoder = SSEDecoder()
        self.events: list[ServerSentEvent] = []
        self.raw = bytearray()
        self.response: httpx2.Response | None = None
        self.done = False

    @property
    def ids(self) -> list[str]:
        return [event.id for event in self.events]

    @property
    def names(self) -> list[str]:
        return [event.event for event in self.events]

    def data(self, index: int) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.events[index].data)
        return value

    async def run(self) -> Browser:
        async with self.http.stream("GET", self.url, headers=self.headers) as response:
            self.response = response
            async with contextlib.aclosing(response.aiter_raw()) as chunks:
                async for chunk in chunks:
                    self.raw += chunk
                    for event in self.decoder.feed(chunk):
                        self.events.append(event)
                        if event.id == self.leave_after:
                            self.done = True
                            return self  # leaving the block closes the connection
            self.events += self.decoder.close()
        self.done = True
        return self


async def gated(
    stream: ttstream.ImageStream, permits: MemoryObjectReceiveStream[None]
) -> AsyncIterator[StreamItem]:
    """The items of ``stream``, each one let through only when a permit arrives."""
    async with stream:
        async for item in stream:
            await permits.receive()
            yield item


def image_of(data_url: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix) :], validate=True)))
