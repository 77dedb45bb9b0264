"""The emulator's Responses API (POST /v1/responses, GET /v1/responses/{id}) over loopback
HTTP, read by ttstream's SSEDecoder and ResponsesInterpreter, and by the official SDK."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from typing import Any

import httpx2
import pytest
from PIL import Image

from ttstream import Completed, PartialImage, SSEDecoder, StreamError
from ttstream._responses import ResponsesInterpreter
from ttstream.emulator import EmulatorServer

pytestmark = pytest.mark.anyio

KEY = {"TT-API-KEY": "test-key"}
TOOL = {"type": "image_generation", "partial_images": 2, "size": "64x48"}
BODY: dict[str, Any] = {"model": "gpt-5", "input": "a fox in the snow", "tools": [TOOL]}
STREAM = {**BODY, "stream": True}
BACKGROUND = {**STREAM, "background": True}


def http(server: EmulatorServer) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=server.base_url, headers=KEY, timeout=30)


class Reader:
    """One interpreter over any number of bodies; every wire event and image event kept."""

    def __init__(self) -> None:
        self.interpreter = ResponsesInterpreter()
        self.wire: list[dict[str, Any]] = []
        self.images: list[PartialImage | Completed] = []

    async def read(self, response: httpx2.Response) -> bool:
        """Reads the body; False when the connection broke before its end."""
        decoder = SSEDecoder()
        try:
            async with contextlib.aclosing(response.aiter_bytes()) as chunks:
                async for chunk in chunks:
                    self.take(decoder.feed(chunk))
        except httpx2.TransportError:
            return False
        self.take(decoder.close())
        return True

    def take(self, events: list[Any]) -> None:
        for sse in events:
            event = self.interpreter.handle(sse)
            self.wire.append(json.loads(sse.data))
            if event is not None:
                self.images.append(event)


async def post(
    client: httpx2.AsyncClient, body: dict[str, Any], reader: Reader, fault: str | None = None
) -> bool:
    params = {} if fault is None else {"fault": fault}
    async with client.stream("POST", "/responses", json=body, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return await reader.read(response)


async def resume(client: httpx2.AsyncClient, reader: Reader, fault: str | None = None) -> bool:
    params: dict[str, Any] = {"stream": "true"}
    if reader.interpreter.last_sequence_number is not None:
        params["starting_after"] = reader.interpreter.last_sequence_number
    if fault is not None:
        params["fault"] = fault
    url = f"/responses/{reader.interpreter.response_id}"
    async with client.stream("GET", url, params=params) as response:
        assert response.status_code == 200, await response.aread()
        return await reader.read(response)


def image(b64: str) -> Image.Image:
    opened = Image.open(io.BytesIO(base64.b64decode(b64)))
    opened.load()
    return opened


async def test_a_streamed_response_gives_previews_then_the_final_image(
    server: EmulatorServer,
) -> None:
    reader = Reader()
    async with http(server) as client:
        assert await post(client, STREAM, reader)
    assert [type(e) for e in reader.images] == [PartialImage, PartialImage, Completed]
    assert [e["sequence_number"] for e in reader.wire] == list(range(len(reader.wire)))
    final = reader.images[-1]
    assert isinstance(final, Completed)
    assert (final.operation, final.size, final.output_format) == ("response", "64x48", "png")
    assert final.revised_prompt == "A detailed rendering of: a fox in the snow"
    assert image(final.b64_json or "").size == (64, 48)
    # The image three times: output_item.done, and the response in response.completed.
    done = [e for e in reader.wire if e["type"] == "response.output_item.done"]
    completed = reader.wire[-1]
    assert completed["type"] == "response.completed"
    assert done[0]["item"]["result"] == completed["response"]["output"][0]["result"]
    assert done[0]["item"]["result"] == final.b64_json
    assert "response.image_generation_call.completed" in [e["type"] for e in reader.wire]
    response = reader.interpreter.response
    assert response is not None
    assert (response.id, response.status) == (final.response_id, "completed")
    assert response.output_text == "Here is the image you asked for."
    assert response.usage is not None
    assert response.usage.total_tokens


@pytest.mark.parametrize(
    "fault", ["drop-between-events", "drop-mid-event", "end-early", "drop-after=7"]
)
async def test_a_cut_background_response_resumes_without_a_second_generation(
    server: EmulatorServer, fault: str
) -> None:
    reader = Reader()
    generations = server.stream_stats.generations
    async with http(server) as client:
        ended = await post(client, BACKGROUND, reader, fault)
        assert ended is (fault == "end-early")
        assert [type(e) for e in reader.images] == [PartialImage, PartialImage]
        assert reader.interpreter.incomplete() is not None
        assert "still generating" in str(reader.interpreter.incomplete())
        assert await resume(client, reader)
    assert [type(e) for e in reader.images] == [PartialImage, PartialImage, Completed]
    numbers = [e["sequence_number"] for e in reader.wire]
    assert numbers == list(range(len(numbers)))  # each event once, none missing
    assert reader.interpreter.done
    assert server.stream_stats.generations == generations + 1


async def test_a_resume_can_be_cut_and_resumed_again(server: EmulatorServer) -> None:
    reader = Reader()
    async with http(server) as client:
        assert not await post(client, BACKGROUND, reader, "drop-after=3")
        assert not await resume(client, reader, "drop-after=4")
        assert not await resume(client, reader, "drop-after=4")
        assert await resume(client, reader)
    numbers = [e["sequence_number"] for e in reader.wire]
    assert numbers == list(range(len(numbers)))
    assert [type(e) for e in reader.images] == [PartialImage, PartialImage, Completed]


async def test_a_resume_from_zero_and_the_response_object(server: EmulatorServer) -> None:
    first, again = Reader(), Reader()
    async with http(server) as client:
        assert await post(client, BACKGROUND, first)
        again.interpreter.response_id = first.interpreter.response_id
        assert await resume(client, again)  # no starting_after: every event
        got = await client.get(f"/responses/{first.interpreter.response_id}")
    assert first.wire == again.wire
    assert got.json() == first.wire[-1]["response"]


@pytest.mark.parametrize("fault", ["error-nested", "error-flat"])
async def test_an_error_event_then_response_failed(server: EmulatorServer, fault: str) -> None:
    reader = Reader()
    async with http(server) as client:
        with pytest.raises(StreamError) as caught:
            await post(client, STREAM, reader, fault)
    assert caught.value.code == "emulated_failure"
    assert caught.value.response_id is not None
    async with (
        http(server) as client,
        client.stream("POST", "/responses", json=STREAM, params={"fault": fault}) as response,
    ):
        body = await response.aread()
    wire = [json.loads(sse.data) for sse in SSEDecoder().feed(body)]
    assert [e["type"] for e in wire[-2:]] == ["error", "response.failed"]
    assert ("error" in wire[-2]) is (fault == "error-nested")
    assert wire[-1]["response"]["error"]["code"] == "emulated_failure"


async def test_the_azure_shape_has_no_call_completed_and_says_generating(
    server: EmulatorServer,
) -> None:
    reader = Reader()
    async with http(server) as client:
        assert await post(client, STREAM, reader, "azure")
    kinds = [e["type"] for e in reader.wire]
    assert "response.image_generation_call.completed" not in kinds
    final = reader.images[-1]
    assert isinstance(final, Completed)
    assert final.extra["status"] == "generating"
    assert any("content_filters" in e for e in reader.wire)
    assert reader.interpreter.done


async def test_the_rewrites_reach_the_image_event(server: EmulatorServer) -> None:
    reader = Reader()
    async with http(server) as client:
        assert await post(client, STREAM, reader, "invalid-base64")
        final = reader.images[-1]
        assert isinstance(final, Completed)
        with pytest.raises(Exception, match="base64"):
            _ = final.image_bytes
        with pytest.raises(Exception, match="not JSON"):
            await post(client, STREAM, Reader(), "malformed-json")


@pytest.mark.parametrize("route", ["post", "get"])
async def test_status_stall_and_content_type_faults_on_both_routes(
    server: EmulatorServer, route: str
) -> None:
    reader = Reader()
    async with http(server) as client:
        assert await post(client, BACKGROUND, reader)
        url = f"/responses/{reader.interpreter.response_id}"

        async def send(fault: str, timeout: float = 30) -> httpx2.Response:  # noqa: ASYNC109
            params = {"fault": fault}
            if route == "post":
                return await client.post(
                    "/responses", json=BACKGROUND, params=params, timeout=timeout
                )
            return await client.get(url, params={"stream": "true", **params}, timeout=timeout)

        failed = await send("status=503")
        assert (failed.status_code, failed.json()["error"]["code"]) == (503, "emulated_failure")
        plain = await send("wrong-content-type")
        assert plain.headers["content-type"] == "application/json"
        assert plain.json()["object"] == "response"
        with pytest.raises(httpx2.ReadTimeout):
            await send("stall=5", timeout=0.3)


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "param"),
    [
        ("POST", "/responses", {**STREAM, "tools": []}, 400, "tools"),
        ("POST", "/responses", {**STREAM, "model": None}, 400, "model"),
        ("POST", "/responses", {**STREAM, "input": []}, 400, "input"),
        ("POST", "/responses", {**STREAM, "background": "yes"}, 400, "background"),
        (
            "POST",
            "/responses",
            {**STREAM, "tools": [{"type": "web_search"}, {**TOOL, "size": "999984x333328"}]},
            400,
            "tools[1].size",
        ),
        (
            "POST",
            "/responses",
            {**STREAM, "tools": [{**TOOL, "quality": "max"}]},
            400,
            "tools[0].quality",
        ),
        ("GET", "/responses/resp_unknown?stream=true", None, 404, "response_id"),
    ],
)
async def test_bad_requests_name_the_parameter(
    server: EmulatorServer,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    status: int,
    param: str,
) -> None:
    async with http(server) as client:
        response = await client.request(method, url, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


async def test_a_streamed_response_that_is_not_background_is_not_kept(
    server: EmulatorServer,
) -> None:
    reader = Reader()
    async with http(server) as client:
        assert await post(client, STREAM, reader)
        got = await client.get(f"/responses/{reader.interpreter.response_id}?stream=true")
        kept = await client.post("/responses", json={**BACKGROUND, "stream": False})
        rid = kept.json()["id"]
        wrong = await client.get(f"/responses/{rid}?stream=true&starting_after=x1")
    assert got.status_code == 404
    assert kept.json()["status"] == "completed"
    assert (wrong.status_code, wrong.json()["error"]["param"]) == (400, "starting_after")


async def test_the_official_openai_sdk_sees_the_same_image_bytes(server: EmulatorServer) -> None:
    import openai

    ours = Reader()
    async with http(server) as client:
        assert await post(client, BACKGROUND, ours)
    partials: list[bytes] = []
    finals: list[bytes] = []
    async with openai.AsyncOpenAI(api_key="any", base_url=server.base_url) as sdk:
        stream = await sdk.responses.create(
            model="gpt-5",
            input="a fox in the snow",
            tools=[TOOL],
            stream=True,
            background=True,  # type: ignore[list-item]
        )
        response_id = ""
        async for event in stream:
            if event.type == "response.created":
                response_id = event.response.id
            if event.type == "response.image_generation_call.partial_image":
                partials.append(base64.b64decode(event.partial_image_b64))
            if (
                event.type == "response.output_item.done"
                and event.item.type == "image_generation_call"
            ):
                finals.append(base64.b64decode(event.item.result or ""))
        resumed = await sdk.responses.retrieve(response_id, stream=True, starting_after=6)
        rest = [event.type async for event in resumed]
    assert partials == [e.image_bytes for e in ours.images if isinstance(e, PartialImage)]
    assert finals == [e.image_bytes for e in ours.images if isinstance(e, Completed)]
    assert rest[0] == "response.image_generation_call.completed"
    assert rest[-1] == "response.completed"
