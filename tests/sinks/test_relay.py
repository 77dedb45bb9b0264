"""SSERelay over real loopback HTTP, on asyncio and trio.

The relay is served by Hypercorn inside the test's own event loop (Hypercorn runs on
asyncio and on trio), fed from the emulator through ttstream, and read by httpx clients
standing in for browsers; every frame is decoded with ``ttstream.sse.SSEDecoder``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any
from unittest import mock

import anyio
import anyio.lowlevel
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

import ttstream
from tests.support.relay_viewers import Browser, eventually, gated, image_of, serving
from ttstream import Completed, Reconnecting, StreamItem
from ttstream._browser.frames import ViewerGuard
from ttstream.emulator import EmulatorServer
from ttstream.events import InlineImage
from ttstream.sinks import SSERelay, pump
from ttstream.sse import SSEDecoder

pytestmark = pytest.mark.anyio

SMALL = {"model": "gpt-image-2", "size": "64x48", "partial_images": 3}
NAMES = ["partial_image", "partial_image", "partial_image", "completed", "end"]


class Api:
    """A ttstream client of the emulator that counts the generations it starts."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.generations = 0

        async def count(request: httpx2.Request) -> None:
            if request.url.path.endswith("/images/generations"):
                self.generations += 1

        self.client = ttstream.AsyncClient(
            "emulator-key",
            base_url=emulator.base_url,
            http_client=httpx2.AsyncClient(event_hooks={"request": [count]}),
        )

    def generate(self, prompt: str = "a kite", **params: Any) -> ttstream.ImageStream:
        return self.client.generate(prompt, **{**SMALL, **params})


@pytest.fixture
async def api(emulator: EmulatorServer) -> AsyncIterator[Api]:
    api = Api(emulator)
    async with api.client, api.client._http:
        yield api


def relay_app(relay: SSERelay) -> Starlette:
    return Starlette(routes=[Route("/events", relay)])


async def test_two_browsers_receive_every_event_with_ids(api: Api, anyio_backend: str) -> None:
    relay = SSERelay()
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        first, second = Browser(http, "/events"), Browser(http, "/events")
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(first.run)
            tasks.start_soon(second.run)
            await eventually(lambda: relay.connections == 2)
            [final] = await pump(api.generate(), relay)

    assert api.generations == 1
    assert isinstance(final, Completed)
    for browser in (first, second):
        assert browser.response is not None
        assert browser.response.status_code == 200
        assert browser.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert browser.response.headers["cache-control"] == "no-cache"
        assert browser.raw.startswith(b"retry: 3000\n\n")
        assert browser.decoder.retry == 3000
        assert browser.ids == ["1", "2", "3", "4", "5"]
        assert browser.names == NAMES
        previews = [browser.data(i) for i in range(3)]
        assert [p["index"] for p in previews] == [0, 1, 2]
        for preview in previews:
            assert preview["type"] == "partial_image"
            assert (preview["size"], preview["media_type"]) == ("64x48", "image/png")
            image = image_of(preview["image"])
            assert (image.format, image.size) == ("PNG", (64, 48))
            assert "usage" not in preview
        completed = browser.data(3)
        assert completed["type"] == "completed"
        assert "index" not in completed
        assert completed["image"] == f"data:image/png;base64,{final.b64_json}"
        assert completed["bytes"] == len(final.image_bytes)
        assert final.usage is not None
        assert completed["usage"]["total_tokens"] == final.usage.total_tokens
        assert completed["created_at"] == final.created_at
        assert browser.data(4) == {"type": "end", "images": 1}
    assert relay.ended
    assert relay.connections == 0


async def test_reconnecting_browser_resumes_after_last_event_id_without_a_new_generation(
    api: Api, anyio_backend: str
) -> None:
    relay = SSERelay()
    send_permit, permits = anyio.create_memory_object_stream[None](math.inf)
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
        anyio.create_task_group() as tasks,
    ):
        with send_permit, permits:
            tasks.start_soon(pump, gated(api.generate(), permits), relay)
            leaving = Browser(http, "/events", leave_after="2")
            tasks.start_soon(leaving.run)
            await eventually(lambda: relay.connections == 1)
            for _ in range(2):
                send_permit.send_nowait(None)
            await eventually(lambda: leaving.done and relay.connections == 0)
            assert leaving.ids == ["1", "2"]
            assert not relay.ended  # the generation is still in progress

            back = Browser(http, "/events", last_event_id=leaving.decoder.last_event_id)
            tasks.start_soon(back.run)
            await eventually(lambda: relay.connections == 1)
            for _ in range(2):
                send_permit.send_nowait(None)
            await eventually(lambda: back.done)

    assert back.ids == ["3", "4", "5"]
    assert back.names == NAMES[2:]
    assert api.generations == 1


async def test_a_late_browser_gets_the_replay_then_end(api: Api, anyio_backend: str) -> None:
    relay = SSERelay()
    await pump(api.generate(), relay)
    assert relay.ended
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        late = await Browser(http, "/events").run()
        resumed = await Browser(http, "/events", last_event_id="3").run()
        finished = await Browser(http, "/events", last_event_id="5").run()

    assert late.ids == ["1", "2", "3", "4", "5"]
    assert late.names == NAMES
    assert resumed.ids == ["4", "5"]
    # EventSource reconnects after a response ends; 204 is how a server says "stop".
    assert finished.response is not None
    assert finished.response.status_code == 204
    assert finished.events == []
    assert api.generations == 1


async def test_the_replay_buffer_is_bounded(api: Api, anyio_backend: str) -> None:
    relay = SSERelay(replay=2)
    await pump(api.generate(), relay)
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        late = await Browser(http, "/events").run()
    # The two newest events, then the end event, which is always kept.
    assert late.ids == ["3", "4", "5"]
    assert late.names == NAMES[2:]


class StalledBrowser:
    """A connection whose socket never drains: the ASGI ``send`` of its response body
    blocks until the browser leaves (``http.disconnect``)."""

    def __init__(self) -> None:
        self.started = False
        self.sent = bytearray()
        self.left = anyio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            return
        self.sent += message["body"]
        if len(self.sent) > len("retry: 3000\n\n"):
            await anyio.sleep_forever()  # the first event fills the socket


async def test_a_browser_that_stalls_or_leaves_does_not_hold_up_the_others(
    api: Api, anyio_backend: str
) -> None:
    relay = SSERelay()
    stalled = StalledBrowser()
    scope = {"type": "http", "method": "GET", "path": "/events", "headers": []}
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(relay, scope, stalled.receive, stalled.send)
        leaving = Browser(http, "/events", leave_after="1")
        staying = Browser(http, "/events")
        tasks.start_soon(leaving.run)
        tasks.start_soon(staying.run)
        await eventually(lambda: relay.connections == 3)
        with anyio.fail_after(10):
            [final] = await pump(api.generate(), relay)
        await eventually(lambda: staying.done)
        # The browser that left was noticed (http.disconnect) and its task ended; the
        # stalled one is still blocked in its first event.
        assert relay.connections == 1
        assert stalled.sent.startswith(b"retry: 3000\n\nid: 1\nevent: partial_image\n")
        stalled.left.set()
        await eventually(lambda: relay.connections == 0)

    assert leaving.ids == ["1"]
    assert staying.ids == ["1", "2", "3", "4", "5"]
    assert staying.data(3)["image"] == f"data:image/png;base64,{final.b64_json}"


async def failing(items: list[StreamItem], error: Exception) -> AsyncIterator[StreamItem]:
    for item in items:
        yield item
    raise error


async def test_a_failed_generation_ends_with_an_error_event_carrying_its_message(
    api: Api, anyio_backend: str
) -> None:
    async with api.generate() as stream:
        first = await anext(stream)
    relay = SSERelay()
    error = ttstream.StreamError("the model refused the prompt", code="moderation_blocked")
    with pytest.raises(ttstream.StreamError):
        await pump(failing([first], error), relay)
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        browser = await Browser(http, "/events").run()
    assert browser.ids == ["1", "2"]
    assert browser.names == ["partial_image", "error"]
    assert browser.data(1) == {"type": "error", "message": str(error)}


async def test_a_stream_that_ends_without_a_final_image_ends_with_an_error(
    api: Api, anyio_backend: str
) -> None:
    async with api.generate() as stream:
        first = await anext(stream)

    async def previews_only() -> AsyncIterator[StreamItem]:
        yield first

    relay = SSERelay()
    assert await pump(previews_only(), relay) == []
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        browser = await Browser(http, "/events").run()
    assert browser.names == ["partial_image", "error"]
    assert browser.data(1) == {
        "type": "error",
        "message": "the generation ended before its final image",
    }


async def test_frames_are_exact_and_reconnecting_notices_are_relayed(anyio_backend: str) -> None:
    relay = SSERelay(retry=1500)
    notice = Reconnecting(
        attempt=1, delay=0.5, last_event_id="", regenerating=True, reason="connection reset"
    )
    await relay.send(notice)
    await relay.fail("gave up")
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        browser = await Browser(http, "/events").run()
    assert bytes(browser.raw) == (
        b"retry: 1500\n\n"
        b"id: 1\nevent: reconnecting\n"
        b'data: {"type":"reconnecting","attempt":1,"delay":0.5,"regenerating":true,'
        b'"reason":"connection reset"}\n\n'
        b'id: 2\nevent: error\ndata: {"type":"error","message":"gave up"}\n\n'
    )
    assert browser.names == ["reconnecting", "error"]


async def test_silence_is_broken_by_keepalive_comments(anyio_backend: str) -> None:
    relay = SSERelay(keepalive=0.05)
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
        anyio.create_task_group() as tasks,
    ):
        browser = Browser(http, "/events")
        tasks.start_soon(browser.run)
        await eventually(lambda: browser.raw.count(b":\n\n") >= 2)
        assert browser.events == []  # comments dispatch nothing
        await relay.aclose()
    assert browser.names == ["error"]


async def test_the_relay_is_a_whole_asgi_app_that_only_answers_get(anyio_backend: str) -> None:
    relay = SSERelay()
    await relay.aclose()
    async with serving(relay, anyio_backend) as url, httpx2.AsyncClient(base_url=url) as http:
        posted = await http.post("/anything")
        got = await http.get("/anything")
    assert posted.status_code == 405
    assert posted.headers["allow"] == "GET, HEAD"
    assert got.status_code == 200
    assert got.text == (
        'retry: 3000\n\nid: 1\nevent: error\ndata: {"type":"error",'
        '"message":"the generation ended before its final image"}\n\n'
    )


async def test_an_ended_relay_refuses_more_and_ends_once(api: Api) -> None:
    relay = SSERelay()
    async with api.generate() as stream:
        events = [event async for event in stream]
    for event in events:
        await relay.send(event)
    await relay.aclose()
    await relay.aclose()
    await relay.fail("too late")
    assert (relay.ended, relay.last_id) == (True, 5)
    with pytest.raises(RuntimeError, match="has ended"):
        await relay.send(events[0])
    assert "ended" in repr(relay)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"replay": 0}, "replay"),
        ({"retry": -1}, "retry"),
        ({"keepalive": 0}, "keepalive"),
        ({"keepalive": "15"}, "keepalive"),  # was a TypeError from the comparison
        ({"keepalive": float("nan")}, "keepalive"),
        ({"on_cancel": "cancel"}, "on_cancel"),  # was taken: every DELETE then failed
    ],
)
def test_bad_settings_are_refused(arguments: Mapping[str, Any], message: str) -> None:
    with pytest.raises(ttstream.ValidationError, match=message):
        SSERelay(**arguments)


def test_the_relay_is_a_sink() -> None:
    assert isinstance(SSERelay(), ttstream.sinks.Sink)


# Viewers: who may watch, slow ones, ids the relay did not issue, cancel, the module.

SECRET = b"s" * 32


class NeverReads:
    """A viewer whose socket never drains: every body send blocks (until cancelled)."""

    def __init__(self) -> None:
        self.sent = bytearray()

    async def receive(self) -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(self, message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            self.sent += message["body"]
            if len(self.sent) > len("retry: 3000\n\n"):
                await anyio.sleep_forever()


async def test_a_viewer_that_does_not_read_is_dropped_after_send_timeout(api: Api) -> None:
    relay = SSERelay(send_timeout=0.2)
    await pump(api.generate(), relay)
    viewer = NeverReads()
    scope = {"type": "http", "method": "GET", "path": "/events", "headers": []}
    with anyio.fail_after(10):
        await relay(scope, viewer.receive, viewer.send)  # returns: the viewer was dropped
    assert (relay.dropped, relay.connections) == (1, 0)
    # It held at most one piece of the first frame, not the frame.
    assert len(viewer.sent) <= len("retry: 3000\n\n") + 64 * 1024


class FinishingServer:
    """The ASGI side of one viewer. Like uvicorn, its ``receive()`` answers the
    request's (empty) body first, then ``http.disconnect`` once the response is complete
    (at once when it already is); with ``ends_receive=False`` it never answers again.
    Each body message but the last yields to the event loop. It counts the calls of
    ``receive()`` that were cancelled."""

    def __init__(self, *, ends_receive: bool) -> None:
        self.ends_receive = ends_receive
        self.complete = anyio.Event()
        self.requested = False
        self.cancelled = 0

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        try:
            if not self.ends_receive:
                await anyio.sleep_forever()
            if not self.complete.is_set():
                await self.complete.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        return {"type": "http.disconnect"}

    async def send(self, message: Mapping[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        if message.get("more_body", False):
            await anyio.lowlevel.checkpoint()  # the socket takes it: the guard runs
        else:
            self.complete.set()  # as uvicorn, with no wait after it


@pytest.mark.parametrize("ends_receive", [True, False])
async def test_a_served_viewer_ends_at_once_and_its_receive_is_cancelled_only_if_needed(
    api: Api, ends_receive: bool
) -> None:
    # The viewer's guard waits in receive() with a deadline of send_timeout (an hour):
    # once the response is sent, it ends by itself when the server answers receive()
    # (no cancellation), else it is cancelled; either way the viewer ends at once.
    relay = SSERelay(send_timeout=3600)
    await pump(api.generate(), relay)
    server = FinishingServer(ends_receive=ends_receive)
    scope = {"type": "http", "method": "GET", "path": "/events", "headers": []}
    with anyio.fail_after(5):
        await relay(scope, server.receive, server.send)
    assert server.complete.is_set()
    assert server.cancelled == (0 if ends_receive else 1)
    assert (relay.connections, relay.dropped) == (0, 0)


@pytest.mark.parametrize("ends_receive", [True, False])
async def test_a_viewer_guard_stops_by_itself_when_the_server_ends_receive(
    anyio_backend: str, ends_receive: bool
) -> None:
    # Stopping the guard cancels the viewer's task group only when receive() goes on
    # waiting: anyio's cancel() costs a task repr on asyncio. (trio may run the host
    # before the woken guard, and then cancels: cheap there, so not asserted.)
    server = FinishingServer(ends_receive=ends_receive)
    guard = ViewerGuard(server.receive, send_timeout=3600)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(guard.run, tasks.cancel_scope)
            await anyio.wait_all_tasks_blocked()  # the guard waits in receive()
            await server.send({"type": "http.response.body", "body": b"", "more_body": False})
            await guard.stop(tasks.cancel_scope)
            cancelled = tasks.cancel_scope.cancel_called
    if anyio_backend == "asyncio" or not ends_receive:
        assert cancelled is not ends_receive
    assert not guard.expired


class SwallowingServer:
    """A server whose ``receive()`` answers its own cancellation with
    ``http.disconnect`` (gunicorn's ASGI worker did) while its browser stays connected
    and reads everything."""

    def __init__(self) -> None:
        self.requested = False
        self.body = bytearray()

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        with contextlib.suppress(anyio.get_cancelled_exc_class()):
            await anyio.sleep_forever()  # the browser never leaves
        return {"type": "http.disconnect"}

    async def send(self, message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            self.body += message["body"]
            await anyio.lowlevel.checkpoint()


async def test_a_viewer_stays_when_its_server_answers_a_cancelled_receive_with_a_disconnect(
    api: Api, anyio_backend: str
) -> None:
    # The guard's deadline cancels receive() every send_timeout; such a server answers
    # http.disconnect, which the guard checks by asking again instead of ending the viewer.
    relay = SSERelay(send_timeout=0.1, keepalive=None)
    server = SwallowingServer()
    scope = {"type": "http", "method": "GET", "path": "/events", "headers": []}
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(relay, scope, server.receive, server.send)
            await anyio.sleep(0.5)  # five deadlines, no frame
            assert relay.connections == 1
            await pump(api.generate(), relay)
    assert (relay.connections, relay.dropped) == (0, 0)
    assert server.body.count(b"\nevent: ") == len(NAMES)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_viewer_is_dropped_on_time_when_the_loops_clock_is_patched(
    api: Api, anyio_backend: str
) -> None:
    # The guard reads the clock anyio's deadlines are on: the loop's time(), here a
    # test clock 1000 s behind time.monotonic(), patched on the loop as test tools do.
    relay = SSERelay(send_timeout=0.2)
    await pump(api.generate(), relay)
    loop = asyncio.get_running_loop()
    real = loop.time

    def behind() -> float:
        return real() - 1000

    viewer = NeverReads()
    with mock.patch.object(loop, "time", behind), anyio.fail_after(5):
        await relay({"type": "http", "method": "GET", "headers": []}, viewer.receive, viewer.send)
    assert relay.dropped == 1


async def bodies_after_the_end(relay: SSERelay) -> list[bytes]:
    """The body parts a viewer connecting after the relay ended receives, in order."""
    bodies: list[bytes] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    await relay({"type": "http", "method": "GET", "headers": []}, receive, send)
    return bodies


async def test_large_frames_are_written_in_pieces_of_64_kib(api: Api, anyio_backend: str) -> None:
    relay = SSERelay()
    await pump(api.generate(size="1024x1024"), relay)
    pieces = [len(body) for body in await bodies_after_the_end(relay)]
    assert max(pieces) == 64 * 1024
    assert sum(pieces) > 1024 * 1024  # the final image came through whole, in pieces


@pytest.mark.parametrize("sent", ["99", "4" * 4301, "-1", "1e3", "\N{ARABIC-INDIC DIGIT ONE}"])
async def test_a_last_event_id_it_did_not_issue_starts_from_the_beginning(
    api: Api, anyio_backend: str, sent: str
) -> None:
    relay = SSERelay()
    await pump(api.generate(), relay)
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        headers = {"Last-Event-ID": sent.encode("utf-8")}  # raw bytes, as a client may send
        response = await http.get("/events", headers=headers)
    assert response.status_code == 200
    ids = [event.id for event in SSEDecoder().feed(response.content)]
    assert ids == ["1", "2", "3", "4", "5"]


async def test_viewers_need_a_token_for_this_job(api: Api, anyio_backend: str) -> None:
    from ttstream.sinks import sign_viewer_token

    relay = SSERelay(token_secret=SECRET, job_key="job-1")
    await pump(api.generate(), relay)
    good = sign_viewer_token("job-1", secret=SECRET, ttl=60)
    other = sign_viewer_token("job-2", secret=SECRET, ttl=60)
    forged = good[:-1] + ("0" if good[-1] != "0" else "1")
    expired = "1000000000." + good.partition(".")[2]
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        refused = [
            await http.get("/events"),
            await http.get("/events", params={"token": other}),
            await http.get("/events", params={"token": forged}),
            await http.get("/events", params={"token": expired}),
            await http.get("/events", headers={"Authorization": f"Bearer {other}"}),
        ]
        by_query = await http.get("/events", params={"token": good})
        by_header = await http.get("/events", headers={"Authorization": f"Bearer {good}"})
    for response in refused:
        assert response.status_code == 403
        assert response.content == b"You are not allowed to watch this job.\n"
    for response in (by_query, by_header):
        assert response.status_code == 200
        assert [e.event for e in SSEDecoder().feed(response.content)] == NAMES


async def test_a_query_of_many_fields_is_refused_not_a_server_error(
    api: Api, anyio_backend: str
) -> None:
    # parse_qs raised ValueError past 32 fields: it escaped the relay (a 500 and a
    # traceback in the server's log) instead of the 403 every bad token gets
    from ttstream.sinks import sign_viewer_token

    relay = SSERelay(token_secret=SECRET, job_key="job-1")
    await pump(api.generate(), relay)
    good = sign_viewer_token("job-1", secret=SECRET, ttl=60)
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        many = await http.get(f"/events?{'&'.join(['a=1'] * 40)}&token={good}")
        some = await http.get(f"/events?{'&'.join(['a=1'] * 8)}&token={good}")
    assert (many.status_code, many.content) == (403, b"You are not allowed to watch this job.\n")
    assert some.status_code == 200


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_authorize_decides_with_the_scope_and_the_job_key(
    anyio_backend: str, asynchronous: bool
) -> None:
    asked: list[tuple[str, str]] = []

    def decide(scope: Any, job_key: str) -> bool:
        asked.append((scope["query_string"].decode(), job_key))
        return scope["query_string"] == b"user=ann"

    async def decide_later(scope: Any, job_key: str) -> bool:
        await anyio.lowlevel.checkpoint()
        return decide(scope, job_key)

    relay = SSERelay(authorize=decide_later if asynchronous else decide, job_key="j")
    await relay.fail("over")
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        ann = await http.get("/events", params={"user": "ann"})
        bob = await http.get("/events", params={"user": "bob"})
    assert (ann.status_code, bob.status_code) == (200, 403)
    assert bob.content == b"You are not allowed to watch this job.\n"
    assert asked == [("user=ann", "j"), ("user=bob", "j")]


async def test_a_viewer_may_cancel_the_generation_with_delete(api: Api, anyio_backend: str) -> None:
    cancelled: list[bool] = []
    relay = SSERelay(on_cancel=lambda: cancelled.append(True))
    plain = SSERelay()
    async with (
        serving(
            Starlette(routes=[Route("/events", relay), Route("/plain", plain)]), anyio_backend
        ) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        async with api.generate() as stream:
            await relay.send(await stream.__anext__())
        first = await http.delete("/events")
        again = await http.delete("/events")
        after = await http.get("/events")
        refused = await http.delete("/plain")
    assert (first.status_code, again.status_code, refused.status_code) == (202, 409, 405)
    assert cancelled == [True]
    events = list(SSEDecoder().feed(after.content))
    assert [e.event for e in events] == ["partial_image", "end"]
    assert json.loads(events[-1].data) == {"type": "end", "images": 0, "cancelled": True}


async def test_the_browser_module_is_served_under_the_relays_mount(anyio_backend: str) -> None:
    from starlette.routing import Mount

    from ttstream.sinks import BROWSER_MODULE

    relay = SSERelay(token_secret=SECRET, job_key="j")  # the module needs no token
    app = Starlette(routes=[Mount("/live", relay)])
    async with serving(app, anyio_backend) as url, httpx2.AsyncClient(base_url=url) as http:
        module = await http.get("/live/ttstream.js")
        head = await http.head("/live/ttstream.js")
    assert module.status_code == 200
    assert module.headers["content-type"] == "text/javascript; charset=utf-8"
    assert module.content == BROWSER_MODULE.read_bytes()
    assert b'customElements.define("ttstream-preview"' in module.content
    assert (head.status_code, head.content) == (200, b"")


async def test_what_reaches_browsers_is_redacted_and_never_a_sink_error(
    anyio_backend: str,
) -> None:
    from ttstream.sinks import SinkError

    key = "sk-" + "z" * 40
    relay = SSERelay()
    notice = Reconnecting(
        attempt=1, delay=0.5, last_event_id="", regenerating=False, reason=f"echoed {key}"
    )
    await relay.send(notice)
    failing_sink = SSERelay()
    await relay.fail(SinkError([(failing_sink, OSError("ttstream:jobs:secret-key"))]))
    async with (
        serving(relay_app(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        browser = await Browser(http, "/events").run()
    assert key not in bytes(browser.raw).decode()
    assert browser.data(0)["reason"] == "echoed [REDACTED]"
    assert browser.data(1) == {
        "type": "error",
        "message": "the server could not deliver this generation",
    }


def echoing_the_key(key: str) -> list[StreamItem]:
    """Events of a server that echoes the caller's key into every text field it has."""
    png = base64.b64encode(b"\x89PNG not really").decode()
    fields = {
        "operation": "generation",
        "size": key,
        "quality": f"Authorization: Bearer {key}",
        "background": key,
        "output_format": key,
    }
    usage = ttstream.Usage(input_tokens=1, extra={"note": key, key: [key]})
    return [
        ttstream.PartialImage(b64_json=png, index=0, **fields),
        Completed(b64_json=png, usage=usage, **fields),
        Completed(b64_json=None, url=f"https://cdn.test/i.png?key={key}", **fields),
    ]


async def test_a_key_a_server_echoes_in_any_field_never_reaches_browsers(
    anyio_backend: str,
) -> None:
    key = "emulator-echoed-key-0123"
    client = ttstream.AsyncClient(key, base_url="http://127.0.0.1:9")  # registers the key
    relay = SSERelay()
    for item in echoing_the_key(key):
        await relay.send(item)
    await relay.aclose()
    body = b"".join(await bodies_after_the_end(relay)).decode()
    await client.aclose()
    assert [e.event for e in SSEDecoder().feed(body.encode())][:3] == [
        "partial_image",
        "completed",
        "completed",
    ]
    assert key not in body
    assert "[REDACTED]" in body


@pytest.mark.parametrize("form", ["text", "verbatim", "decoded", "escaped", "cut"])
async def test_a_key_a_server_echoes_into_the_image_never_reaches_browsers(
    anyio_backend: str, form: str
) -> None:
    # The server got the key in the request's headers; it echoes it inside the image's
    # base64 (an Azure key is 32 hex digits: valid base64, so it even decodes). Every
    # other field is redacted; the image must not carry it to every viewer either.
    key = "0123456789abcdef0123456789abcdef"
    client = ttstream.AsyncClient(key, base_url="http://127.0.0.1:9")  # registers it
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(49)).decode()  # no padding
    b64 = png + key
    if form == "cut":  # the key cut between two 64 KiB pieces of the frame
        b64 = "A" * (64 * 1024 - 16) + key + "AAAA"
    image = {
        "text": b64,
        "verbatim": InlineImage(b64, verbatim=True),
        "decoded": InlineImage(data=base64.b64decode(b64)),
        "escaped": InlineImage(b64),  # not known verbatim: json writes it
        "cut": InlineImage(b64, verbatim=True),
    }[form]
    relay = SSERelay()
    await relay.send(ttstream.PartialImage(b64_json=image, index=0, operation="generation"))
    await relay.send(Completed(b64_json=png, operation="generation"))
    await relay.aclose()
    body = b"".join(await bodies_after_the_end(relay))
    await client.aclose()
    assert key.encode() not in body
    events = SSEDecoder().feed(body)
    assert [e.event for e in events] == ["partial_image", "completed", "end"]
    assert json.loads(events[0].data)["image"] is None  # no image rather than the key
    assert json.loads(events[1].data)["image"] == f"data:image/png;base64,{png}"


async def relayed_completed(b64: str, output_format: str) -> dict[str, Any]:
    """The data of the ``completed`` event a relay sends for this final image."""
    relay = SSERelay()
    await relay.send(Completed(b64_json=b64, operation="generation", output_format=output_format))
    await relay.aclose()
    body = b"".join(await bodies_after_the_end(relay))
    [completed] = [e for e in SSEDecoder().feed(body) if e.event == "completed"]
    data: dict[str, Any] = json.loads(completed.data)
    return data


async def test_an_svg_image_is_relayed_as_image_svg_xml() -> None:
    svg = base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode()
    data = await relayed_completed(svg, "svg")
    assert data["media_type"] == "image/svg+xml"
    assert data["image"] == f"data:image/svg+xml;base64,{svg}"


@pytest.mark.parametrize(
    "output_format",
    ["svg+xml,<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>#", "PNG;x", "a" * 40],
)
async def test_an_output_format_never_shapes_the_data_url_beyond_its_type(
    output_format: str,
) -> None:
    # "image/" + the server's text made the data: URL: a comma ended its type and
    # "data:image/svg+xml,<svg onload=...>#;base64,..." was an SVG of the server's choice
    png = base64.b64encode(b"\x89PNG not really").decode()
    data = await relayed_completed(png, output_format)
    assert data["media_type"] == "application/octet-stream"
    assert data["image"] == f"data:application/octet-stream;base64,{png}"


async def test_settings_of_viewers_are_checked() -> None:
    with pytest.raises(ttstream.ValidationError, match="send_timeout"):
        SSERelay(send_timeout=0)
    with pytest.raises(ttstream.ValidationError, match="job_key"):
        SSERelay(token_secret=SECRET)
