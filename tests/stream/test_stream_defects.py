"""The stream defects of issue 21, each pinned by a test that failed before its fix: on
asyncio and trio, over loopback servers whose every byte is scripted (docs/reconnection.md,
docs/responses.md, docs/hostile-servers.md)."""

from __future__ import annotations

import asyncio
import base64
import gc
import itertools
import json
import warnings
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest
import sniffio
import trio

from tests.support.raw_server import RawServer, response_head
from tests.support.scripted_server import Answer, Request, ScriptedServer
from ttstream import (
    APIConnectionError,
    AsyncClient,
    Completed,
    EventSource,
    ImageStream,
    IncompleteStreamError,
    PartialImage,
    Reconnecting,
    ReconnectPolicy,
    Response,
    ServerSentEvent,
    SSEDecoder,
)
from ttstream._body import aiter_bounded

B64 = base64.b64encode(b"img").decode()

pytestmark = pytest.mark.anyio


class Chunks(httpx2.AsyncByteStream):
    """A streaming body of a few chunks."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


# Issue 21, item 35: every async iterator the body reader opens is closed by it.


async def test_a_body_left_early_leaves_no_generator_to_the_garbage_collector() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, stream=Chunks(b"a" * 10, b"b" * 10, b"c" * 10))

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                request = http.build_request("GET", "http://127.0.0.1/")
                response = await http.send(request, stream=True)
                pieces = aiter_bounded(response, read_limit=4)
                # An uncompressed body comes in its reads as they are (issue 22)
                assert await pieces.__anext__() == b"a" * 10
                await pieces.aclose()  # left after the first piece
                del pieces
                gc.collect()
                await anyio.lowlevel.checkpoint()
                await response.aclose()
            gc.collect()
            await anyio.lowlevel.checkpoint()
    leaked = [str(w.message) for w in caught if "aiter_raw" in str(w.message)]
    assert leaked == []


# Reconnection (issue 21 items 3, 4, 5, 10), over loopback servers.

NO_WAIT = ReconnectPolicy(delay=0.0)
STOP = Answer(status=204, headers=())  # WHATWG: 204 No Content, the server says stop


def image_event(kind: str, index: int | None = None, id: str | None = None) -> bytes:
    body: dict[str, Any] = {"type": f"image_generation.{kind}", "b64_json": B64}
    if index is not None:
        body["partial_image_index"] = index
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {body['type']}\ndata: {json.dumps(body)}\n\n".encode()


async def source_items(url: str, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("reconnect", NO_WAIT)
    async with (
        httpx2.AsyncClient() as http,
        EventSource(http, "GET", url + "/events", **kwargs) as source,
    ):
        return [item async for item in source]


def datas(items: list[Any]) -> list[str]:
    return [item.data for item in items if isinstance(item, ServerSentEvent)]


async def test_a_constant_id_gateway_keeps_the_first_event_of_a_resumed_body() -> None:
    # Item 3: the resumed body starts with a new event under the same constant id.
    cut = Answer([b"id: job\ndata: a\n\n", 0.05], end="abort")
    with ScriptedServer(cut, Answer([b"id: job\ndata: b\n\n"]), STOP) as server:
        got = await source_items(server.url, reconnect=ReconnectPolicy(delay=0.0, max_attempts=1))
    assert datas(got) == ["a", "b"]
    assert server.requests[1].headers["last-event-id"] == "job"


async def test_a_constant_id_gateway_delivers_the_final_image_after_a_resume() -> None:
    first = [image_event("partial_image", i, id="gen_abc") for i in range(2)]
    cut = Answer([*first, 0.05], end="abort")
    final = Answer([image_event("completed", id="gen_abc")])
    with ScriptedServer(cut, final) as server:
        async with (
            AsyncClient("k", base_url=server.url + "/v1", reconnect=NO_WAIT) as client,
            client.generate("a cat", partial_images=2) as stream,
        ):
            got = [item async for item in stream]
    assert [type(item).__name__ for item in got] == [
        "PartialImage",
        "PartialImage",
        "Reconnecting",
        "Completed",
    ]


async def test_a_replay_is_the_same_id_and_the_same_content() -> None:
    cut = Answer([b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n", 0.05], end="abort")
    replay = Answer([b"id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\n"])
    with ScriptedServer(cut, replay, STOP) as server:
        got = await source_items(server.url, reconnect=ReconnectPolicy(delay=0.0, max_attempts=1))
    assert datas(got) == ["a", "b", "c"]


class Connections:
    """A raw server: answers request ``i`` with ``script[i]`` (the last one again after
    the end): an SSE body then a cut (``("cut", body)``), a connection closed before any
    answer (``"refuse"``), a whole SSE body (``("end", body)``) or a 204 (``"stop"``)."""

    def __init__(self, *script: Any) -> None:
        self.script = script
        self.count = 0
        self.server = RawServer(self.handle)

    async def handle(self, head: bytes, _: Any, writer: asyncio.StreamWriter) -> None:
        step = self.script[min(self.count, len(self.script) - 1)]
        self.count += 1
        if step == "refuse":
            writer.close()
            return
        if step == "stop":
            writer.write(response_head(204, {}))
            return
        kind, body = step
        if kind == "cut":
            writer.write(response_head(200, {**SSE, "transfer-encoding": "chunked"}))
            writer.write(b"%x\r\n%s\r\n" % (len(body), body))
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
            return
        writer.write(response_head(200, {**SSE, "content-length": str(len(body))}) + body)


SSE = {"content-type": "text/event-stream"}


async def test_a_network_error_while_reconnecting_is_retried_within_the_policy() -> None:
    # Item 4: two failed reconnections, then one that works: within max_attempts=3.
    script = Connections(("cut", b"id: 1\ndata: a\n\n"), "refuse", "refuse")
    script.script += (("end", b"id: 2\ndata: b\n\n"), "stop")
    with script.server as server:
        got = await source_items(server.url, reconnect=ReconnectPolicy(delay=0.0, max_attempts=3))
    assert datas(got) == ["a", "b"]
    notices = [item for item in got if isinstance(item, Reconnecting)]
    assert [notice.attempt for notice in notices] == [1, 2, 3, 1]
    assert "reconnecting failed" in notices[1].reason
    assert script.count == 5


async def test_an_image_stream_rides_out_a_failed_reconnection() -> None:
    script = Connections(("cut", image_event("partial_image", 0, id="1")), "refuse")
    script.script += (("end", image_event("completed", id="2")),)
    with script.server as server:
        policy = ReconnectPolicy(delay=0.0, max_attempts=2)
        url = server.url + "/v1"  # no retries before the first byte: the policy decides
        async with (
            AsyncClient("k", base_url=url, reconnect=policy, max_retries=0) as client,
            client.generate("a cat", partial_images=1) as stream,
        ):
            got = [type(item).__name__ async for item in stream]
    assert got == ["PartialImage", "Reconnecting", "Reconnecting", "Completed"]
    assert script.count == 3


async def test_failed_reconnections_beyond_the_policy_raise_the_connection_error() -> None:
    script = Connections(("cut", b"id: 1\ndata: a\n\n"), "refuse")
    with script.server as server, pytest.raises(APIConnectionError):
        await source_items(server.url, reconnect=ReconnectPolicy(delay=0.0, max_attempts=2))
    assert script.count == 3  # the first request and two attempts


async def test_attempts_count_failures_since_the_last_new_event() -> None:
    # Item 5: a proxy that cuts every body: each body brings a new event, so two
    # attempts in a row are never used up, however many cuts there are.
    cuts = [("cut", b"id: %d\ndata: e%d\n\n" % (i, i)) for i in range(6)]
    script = Connections(*cuts, ("end", b"id: 6\ndata: e6\n\n"), "stop")
    with script.server as server:
        got = await source_items(server.url, reconnect=ReconnectPolicy(delay=0.0, max_attempts=2))
    assert datas(got) == [f"e{i}" for i in range(7)]
    assert {item.attempt for item in got if isinstance(item, Reconnecting)} == {1}


async def test_the_same_event_on_every_connection_is_no_progress() -> None:
    script = Connections(("cut", b"data: same\n\n"))
    with script.server as server, pytest.raises(APIConnectionError):
        await source_items(server.url, reconnect=ReconnectPolicy(delay=0.0, max_attempts=2))
    assert script.count == 3


async def cancel_while_reconnecting(stream: EventSource | ImageStream) -> list[Any]:
    """Reads ``stream`` in a task; once it says it reconnects, waits a moment (the reader
    now sleeps before the reconnection) and closes it from here, as a UI's cancel does.
    The reader must be done within 5 seconds."""
    got: list[Any] = []
    waiting = anyio.Event()

    async def read() -> None:
        async for item in stream:
            got.append(item)
            if isinstance(item, Reconnecting):
                waiting.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read)
            await waiting.wait()
            await anyio.sleep(0.1)
            await stream.aclose()
    return got


async def test_aclose_from_another_task_ends_a_reconnection_wait_at_once() -> None:
    # Item 10: the server asks for 20 s before the reconnection; a UI's cancel ends it.
    cut = Answer([b"retry: 20000\nid: 1\ndata: a\n\n", 0.05], end="abort")
    with ScriptedServer(cut) as server:
        async with httpx2.AsyncClient() as http:
            source = EventSource(http, "GET", server.url, reconnect=ReconnectPolicy(budget=60))
            got = await cancel_while_reconnecting(source)
    assert datas(got) == ["a"]
    assert got[-1].delay >= 20
    assert len(server.requests) == 1  # nothing sent after the cancel


async def test_aclose_of_an_image_stream_ends_its_reconnection_wait_at_once() -> None:
    cut = Answer([b"retry: 20000\n" + image_event("partial_image", 0, id="1"), 0.05], end="abort")
    with ScriptedServer(cut) as server:
        policy = ReconnectPolicy(budget=60)
        async with AsyncClient("k", base_url=server.url + "/v1", reconnect=policy) as client:
            got = await cancel_while_reconnecting(client.generate("a cat", partial_images=1))
    assert [type(item).__name__ for item in got] == ["PartialImage", "Reconnecting"]
    assert len(server.requests) == 1


# Item 36: a cancellation during the connect leaves as the plain cancellation.


class TwoTaskConnect(httpx2.AsyncBaseTransport):
    """A transport whose connect runs two tasks in a task group, as trio's happy
    eyeballs does in ``open_tcp_stream``; it never connects."""

    def __init__(self) -> None:
        self.started = anyio.Event()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if sniffio.current_async_library() == "trio":
            async with trio.open_nursery() as nursery:  # trio's own, as in open_tcp_stream
                nursery.start_soon(trio.sleep_forever)
                nursery.start_soon(trio.sleep_forever)
                self.started.set()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(anyio.sleep_forever)
            tasks.start_soon(anyio.sleep_forever)
            self.started.set()
        raise AssertionError("unreachable")


async def test_a_cancellation_during_the_connect_is_the_plain_cancellation() -> None:
    transport = TwoTaskConnect()
    caught: list[BaseException] = []
    async with AsyncClient("k", http_client=httpx2.AsyncClient(transport=transport)) as client:
        with anyio.CancelScope() as scope:
            stream = client.generate("a cat", partial_images=1)

            async def cancel_when_connecting() -> None:
                await transport.started.wait()
                scope.cancel()

            try:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(cancel_when_connecting)
                    try:
                        async with stream:
                            pass
                    except BaseException as exc:
                        caught.append(exc)
                        raise
            except BaseException as exc:
                caught.append(exc)
                raise
    assert scope.cancelled_caught
    assert type(caught[0]) is anyio.get_cancelled_exc_class()


# Item 8: no repr shows a server-echoed key.

ECHOED = "sk-proj-echoed0123456789abcdefXYZ"  # OpenAI's key shape, no client registered it


def test_no_repr_shows_a_key_the_server_echoed() -> None:
    padded = "x" * 29 + " " + ECHOED  # a cut at 40 characters must not show a piece of it
    extra = {"note": ECHOED, "padded": padded, "nested": {"auth": f"Bearer {ECHOED}"}}
    events = [
        Completed(b64_json=B64, operation="generation", extra=extra, revised_prompt=ECHOED),
        PartialImage(b64_json=B64, operation="generation", index=0, extra=extra),
    ]
    [sse] = SSEDecoder().feed(f"id: {ECHOED}\nevent: {ECHOED}\ndata: {ECHOED}\n\n".encode())
    [comment] = SSEDecoder().feed_all(f": {ECHOED}\n\n".encode())
    response = Response(
        id="resp_1",
        status="completed",
        output_text=f"Your key is {ECHOED}",
        output=({"type": "message", "content": [{"text": padded}]},),
    )
    for value in [*events, sse, comment, response]:
        shown = repr(value)
        assert "sk-proj" not in shown, shown
        assert "echoed012" not in shown, shown


async def test_reconnections_that_bring_no_image_run_out_of_attempts() -> None:
    """A server that ends every connection after a new event that is no image (a fresh
    ``id``), asking for ``retry: 0``, was reconnected at once for ever: every new event
    reset the attempts, and only the deadline ended it. Only a new preview or image
    resets them now (docs/reconnection.md), so ``max_attempts`` ends it."""
    count = itertools.count()

    def status(_: Request) -> Answer:
        n = next(count)
        data = json.dumps({"type": "image_generation.in_progress", "n": n})
        return Answer([f"retry: 0\nid: {n}\ndata: {data}\n\n".encode()])

    items: list[object] = []

    async def read(stream: ImageStream) -> None:
        async with stream:
            async for item in stream:  # kept as they come: the end raises
                items.append(item)

    with ScriptedServer(status) as server:
        policy = ReconnectPolicy(max_attempts=3)
        async with AsyncClient("k" * 8, base_url=server.url, reconnect=policy, deadline=2) as api:
            with pytest.raises(IncompleteStreamError):
                await read(api.generate("a fox"))
    assert len(server.requests) == 4
    assert [item.attempt for item in items if isinstance(item, Reconnecting)] == [1, 2, 3]
    assert server.requests[-1].headers["last-event-id"] == "2"
