"""Reconnection, the overall deadline and cancellation of ImageStream (DESIGN.md,
"Semantics worth getting right"), over httpx.MockTransport bodies that break or stall."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from ttstream import (
    APITimeoutError,
    AsyncClient,
    Completed,
    IncompleteStreamError,
    PartialImage,
    Reconnecting,
    ReconnectPolicy,
    StreamItem,
    TTStreamError,
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


class Body(httpx.AsyncByteStream):
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
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = self.bodies[len(self.requests) - 1]
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)


def client_for(server: Server, **kwargs: Any) -> AsyncClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(server))
    return AsyncClient("k", http_client=http, **kwargs)


async def items(client: AsyncClient, **params: Any) -> list[StreamItem]:
    async with client, client.generate("a cat", **params) as stream:
        return [item async for item in stream]


def kinds(got: list[StreamItem]) -> list[str]:
    names = {PartialImage: "partial", Completed: "completed", Reconnecting: "reconnecting"}
    return [names[type(item)] for item in got]


DROP = httpx.RemoteProtocolError("peer closed connection without sending complete message body")


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
    server = Server(Body(event("partial_image", 0), error=httpx.ReadTimeout("silent")))
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
        with pytest.raises(TTStreamError, match="already ended"):
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

    def handler(request: httpx.Request) -> httpx.Response:
        response = server(request)
        status = next(answers)
        return response if status == 200 else httpx.Response(204)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = AsyncClient("k", http_client=http, reconnect=NO_WAIT)
    with pytest.raises(IncompleteStreamError):
        await items(client, partial_images=1)
    assert len(server.requests) == 2  # resumed once, then stopped: no third request
