"""Reconnection, the overall deadline and cancellation of ImageStream
(docs/reconnection.md), over httpx2.MockTransport bodies that break or stall, and over a
scripted loopback server."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest

from tests.support.scripted_server import Answer, ScriptedServer
from tests.support.streams import client_for
from ttstream import (
    APITimeoutError,
    AsyncClient,
    ClosedError,
    Completed,
    IncompleteStreamError,
    PartialImage,
    Reconnecting,
    ReconnectPolicy,
    StreamItem,
)

pytestmark = pytest.mark.anyio

B64 = base64.b64encode(b"img").decode()
NO_WAIT = ReconnectPolicy(delay=0.0)


def event(kind: str, index: int | None = None, id: str | None = None) -> bytes:
    body: dict[str, Any] = {"type": f"image_generation.{kind}", "b64_json": B64}
    if index is not None:
        body["partial_image_index"] = index
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {body['type']}\ndata: {json.dumps(body)}\n\n".encode()


class Body(httpx2.AsyncByteStream):
    """A response body: chunks, then a break (an exception) or a stall, or the end."""

    def __init__(self, *chunks: bytes, error: Exception | None = None, stall: float = 0) -> None:
        self.chunks, self.error, self.stall = chunks, error, stall
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.stall:
            await anyio.sleep(self.stall)
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        self.closed = True


class Server:
    """Answers each request with the next body, recording the requests."""

    def __init__(self, *bodies: Body) -> None:
        self.bodies = list(bodies)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        body = self.bodies[len(self.requests) - 1]
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=body)


async def items(client: AsyncClient, **params: Any) -> list[StreamItem]:
    async with client, client.generate("a cat", **params) as stream:
        return [item async for item in stream]


def kinds(got: list[StreamItem]) -> list[str]:
    names = {PartialImage: "partial", Completed: "completed", Reconnecting: "reconnecting"}
    return [names[type(item)] for item in got]


DROP = httpx2.RemoteProtocolError("peer closed connection without sending complete message body")


async def test_resumes_with_last_event_id_and_skips_replayed_events() -> None:
    server = Server(
        Body(
            b"retry: 1\n" + event("partial_image", 0, id="1") + event("partial_image", 1, id="2"),
            error=DROP,
        ),
        # The server replays the event with the id it was given, then goes on.
        Body(event("partial_image", 1, id="2") + event("completed", id="3")),
    )
    got = await items(client_for(server, reconnect=NO_WAIT), partial_images=2)
    assert kinds(got) == ["partial", "partial", "reconnecting", "completed"]
    notice = got[2]
    assert isinstance(notice, Reconnecting)
    assert (notice.attempt, notice.last_event_id, notice.regenerating) == (1, "2", False)
    assert notice.delay <= 0.001  # the server's retry: 1 ms
    assert "Last-Event-ID" not in server.requests[0].headers
    assert server.requests[1].headers["Last-Event-ID"] == "2"
    assert server.requests[0].content == server.requests[1].content


async def test_a_clean_end_before_completed_also_resumes_when_ids_were_sent() -> None:
    server = Server(Body(event("partial_image", 0, id="a")), Body(event("completed", id="b")))
    got = await items(client_for(server, reconnect=NO_WAIT), partial_images=1)
    assert kinds(got) == ["partial", "reconnecting", "completed"]


async def test_without_ids_the_default_is_incomplete_with_the_last_preview() -> None:
    server = Server(Body(event("partial_image", 0) + event("partial_image", 1), error=DROP))
    with pytest.raises(IncompleteStreamError, match="connection broke") as info:
        await items(client_for(server), partial_images=2)
    assert info.value.last_partial is not None
    assert info.value.last_partial.index == 1
    assert info.value.__cause__ is DROP
    assert len(server.requests) == 1  # no new, billed generation behind the caller's back


async def test_without_ids_an_opt_in_regenerates_and_says_so() -> None:
    server = Server(
        Body(event("partial_image", 0), error=DROP),
        Body(event("partial_image", 0) + event("completed")),
    )
    policy = ReconnectPolicy(delay=0.0, regenerate=1)
    got = await items(client_for(server, reconnect=policy), partial_images=1)
    assert kinds(got) == ["partial", "reconnecting", "partial", "completed"]
    notice = got[1]
    assert isinstance(notice, Reconnecting)
    assert (notice.regenerating, notice.last_event_id) == (True, "")
    assert "Last-Event-ID" not in server.requests[1].headers


async def test_regeneration_is_limited_to_what_was_allowed() -> None:
    server = Server(*(Body(event("partial_image", 0), error=DROP) for _ in range(3)))
    policy = ReconnectPolicy(delay=0.0, regenerate=1)
    with pytest.raises(IncompleteStreamError):
        await items(client_for(server, reconnect=policy), partial_images=1)
    assert len(server.requests) == 2


async def test_reconnection_attempts_are_limited() -> None:
    server = Server(*(Body(event("partial_image", 0, id=str(i)), error=DROP) for i in range(5)))
    policy = ReconnectPolicy(delay=0.0, max_attempts=2)
    with pytest.raises(IncompleteStreamError):
        await items(client_for(server, reconnect=policy), partial_images=1)
    assert len(server.requests) == 3


async def test_reconnection_can_be_disabled() -> None:
    server = Server(Body(event("partial_image", 0, id="1"), error=DROP))
    with pytest.raises(IncompleteStreamError):
        await items(client_for(server), partial_images=1, reconnect=ReconnectPolicy(max_attempts=0))
    assert len(server.requests) == 1


async def test_the_backoff_doubles_and_is_capped() -> None:
    policy = ReconnectPolicy(delay=1.0, max_delay=3.0)
    assert 0.75 <= policy.backoff(0, None) <= 1.0
    assert 1.5 <= policy.backoff(1, None) <= 2.0
    assert 2.25 <= policy.backoff(5, None) <= 3.0
    assert 0.15 <= policy.backoff(0, 200) <= 0.2  # the server's retry field, in ms
    with pytest.raises(ValueError, match="delay"):
        ReconnectPolicy(delay=-1)


async def test_the_overall_deadline_raises_a_deadline_timeout_with_the_last_preview() -> None:
    body = Body(event("partial_image", 0), stall=30)
    server = Server(body)
    with anyio.fail_after(5):
        with pytest.raises(APITimeoutError) as info:
            await items(client_for(server), partial_images=1, deadline=0.2)
    assert info.value.timeout == "deadline"
    assert info.value.last_partial is not None
    assert body.closed


async def test_a_read_timeout_mid_stream_carries_the_last_preview() -> None:
    server = Server(Body(event("partial_image", 0), error=httpx2.ReadTimeout("silent")))
    with pytest.raises(APITimeoutError) as info:
        await items(client_for(server), partial_images=1)
    assert info.value.timeout == "read"
    assert info.value.last_partial is not None


async def test_a_cancelled_scope_closes_the_response() -> None:
    body = Body(event("partial_image", 0), stall=30)
    server = Server(body)
    client = client_for(server)
    seen: list[StreamItem] = []
    async with client:
        with anyio.move_on_after(0.2):
            async with client.generate("a cat", partial_images=1) as stream:
                async for item in stream:
                    seen.append(item)
    assert kinds(seen) == ["partial"]
    assert body.closed
    assert repr(stream).startswith("<ImageStream closed")


async def test_break_then_aclose_closes_and_aclose_is_idempotent() -> None:
    body = Body(event("partial_image", 0) + event("partial_image", 1) + event("completed"))
    async with client_for(Server(body)) as client:
        stream = client.generate("a cat", partial_images=2)
        async for _ in stream:
            break
        await stream.aclose()
        await stream.aclose()
        assert body.closed
        with pytest.raises(ClosedError, match="already ended"):
            await stream.__anext__()


async def test_an_exception_in_the_consumer_closes_the_response() -> None:
    body = Body(event("partial_image", 0) + event("completed"))

    async def consume() -> None:
        client = client_for(Server(body))
        async with client, client.generate("a cat", partial_images=1) as stream:
            async for _ in stream:
                raise RuntimeError("consumer failed")

    with pytest.raises(RuntimeError, match="consumer"):
        await consume()
    assert body.closed


async def test_a_204_answer_to_a_resume_stops_the_stream() -> None:
    # WHATWG: a 204 No Content answer means the server asks the client to stop.
    server = Server(Body(event("partial_image", 0, id="1"), error=DROP), Body())
    answers = iter([200, 204])

    def handler(request: httpx2.Request) -> httpx2.Response:
        response = server(request)
        status = next(answers)
        return response if status == 200 else httpx2.Response(204)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    client = AsyncClient("k", http_client=http, reconnect=NO_WAIT)
    with pytest.raises(IncompleteStreamError):
        await items(client, partial_images=1)
    assert len(server.requests) == 2  # resumed once, then stopped: no third request


# Over a scripted loopback server: re-entry, replays, edits read once, the end.


async def scripted_items(server: ScriptedServer, **params: Any) -> list[StreamItem]:
    reconnect = params.pop("reconnect", NO_WAIT)
    async with (
        AsyncClient("k", base_url=server.url + "/v1", reconnect=reconnect) as client,
        client.generate("a cat", **params) as stream,
    ):
        return [item async for item in stream]


async def test_a_stream_used_again_raises_and_sends_nothing() -> None:
    answer = Answer([event("partial_image", 0), event("completed")])
    with ScriptedServer(answer) as server:
        async with AsyncClient("k", base_url=server.url + "/v1") as client:
            stream = client.generate("a cat", partial_images=1)
            async with stream:
                assert kinds([item async for item in stream]) == ["partial", "completed"]
            with pytest.raises(ClosedError, match="already ended"):
                await stream.__aenter__()
            with pytest.raises(ClosedError, match="already ended"):
                await stream.__anext__()
    assert len(server.requests) == 1


async def test_a_constant_id_on_every_event_delivers_the_final_image() -> None:
    # A gateway that sends its job id on every event: within one body, never a replay.
    body = [event("partial_image", 0, id="gen_abc"), event("partial_image", 1, id="gen_abc")]
    answer = Answer([*body, event("completed", id="gen_abc")])
    with ScriptedServer(answer) as server:
        got = await scripted_items(server, partial_images=2)
    assert kinds(got) == ["partial", "partial", "completed"]
    assert len(server.requests) == 1


async def test_one_id_then_none_delivers_every_event() -> None:
    answer = Answer([event("partial_image", 0, id="job-1"), event("completed")])
    with ScriptedServer(answer) as server:
        got = await scripted_items(server, partial_images=1)
    assert kinds(got) == ["partial", "completed"]


async def test_a_resume_that_replays_two_events_delivers_each_once() -> None:
    first = Answer([event("partial_image", i, id=str(i)) for i in range(3)] + [0.05], end="abort")
    replay = [event("partial_image", i, id=str(i)) for i in (1, 2)]
    resumed = Answer([*replay, event("completed", id="3")])
    with ScriptedServer(first, resumed) as server:
        got = await scripted_items(server, partial_images=3)
    assert kinds(got) == ["partial"] * 3 + ["reconnecting", "completed"]
    assert [item.index for item in got if isinstance(item, PartialImage)] == [0, 1, 2]
    assert server.requests[1].headers["last-event-id"] == "2"


@pytest.mark.parametrize(
    "after",
    [
        [b": keep-alive\n\n", 0.2, b": keep-alive\n\n"],
        [b"data: [DONE]\n\n"],
        [event("completed")],  # a second final for n=1
    ],
    ids=["keep-alive", "done-marker", "second-completed"],
)
async def test_the_stream_ends_at_the_last_expected_image(after: list[bytes | float]) -> None:
    answer = Answer([event("completed"), *after], end="hang")
    with ScriptedServer(answer) as server:
        with anyio.fail_after(5):
            got = await scripted_items(server)
    assert kinds(got) == ["completed"]


async def test_an_edit_from_a_file_object_sends_the_same_bytes_on_each_regeneration() -> None:
    cut = Answer([event("partial_image", 0).replace(b"generation", b"edit"), 0.05], end="abort")
    done = Answer([event("completed").replace(b"generation", b"edit")])
    image = io.BytesIO(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    with ScriptedServer(cut, cut, done) as server:
        policy = ReconnectPolicy(delay=0.0, regenerate=2)
        async with AsyncClient("k", base_url=server.url + "/v1", reconnect=policy) as client:
            stream = client.edit("a hat", images=image, partial_images=1)
            async with stream:
                got = [item async for item in stream]
    assert kinds(got) == ["partial", "reconnecting", "partial", "reconnecting", "completed"]
    bodies = [request.body for request in server.requests]
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] == bodies[2]
    assert image.getvalue() in bodies[0]


async def test_aclose_from_another_task_ends_the_reader_and_sends_nothing_more() -> None:
    keep_alives = [b": keep-alive\n\n", 0.05] * 40
    answer = Answer([event("partial_image", 0), *keep_alives], end="hang")
    with ScriptedServer(answer) as server:
        async with AsyncClient("k", base_url=server.url + "/v1") as client:
            stream = client.generate("a cat", partial_images=1)
            got: list[StreamItem] = []
            first = anyio.Event()

            async def read() -> None:
                async for item in stream:
                    got.append(item)
                    first.set()

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(read)
                    await first.wait()
                    await anyio.sleep(0.2)  # the reader waits on keep-alives
                    await stream.aclose()  # a UI's cancel button
    assert kinds(got) == ["partial"]
    assert len(server.requests) == 1
