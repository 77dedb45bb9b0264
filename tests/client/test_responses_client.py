"""client.responses.stream() and .resume() against the emulator over loopback HTTP, on
asyncio and trio: the same events as generate(), and resumption without a new generation."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest

import ttstream
from tests.support.paths import ROOT
from tests.support.scripted_server import Answer, ScriptedServer
from ttstream import (
    APIStatusError,
    AsyncClient,
    Completed,
    IncompleteStreamError,
    PartialImage,
    Reconnecting,
    ReconnectPolicy,
    StreamError,
    ValidationError,
)
from ttstream._imagehook import image_shape
from ttstream.emulator import EmulatorServer
from ttstream.events import IMAGE_SIZES

pytestmark = pytest.mark.anyio

IMAGE_TOOL = {"type": "image_generation"}
TOOLS = [{**IMAGE_TOOL, "partial_images": 2, "size": "64x48"}]
FAST = ReconnectPolicy(delay=0.01, max_delay=0.05)
UNUSED = httpx2.AsyncClient()  # for the validation tests: never sends anything


@contextlib.asynccontextmanager
async def client_for(
    server: EmulatorServer, fault: str | None = None, **options: Any
) -> AsyncIterator[AsyncClient]:
    """A client whose requests all carry ``fault`` (made unique, so ``times`` counts for
    this test alone)."""
    headers = {} if fault is None else {"X-Emulator-Fault": f"{fault};key={secrets.token_hex(4)}"}
    options.setdefault("reconnect", FAST)
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        yield AsyncClient("any-key", base_url=server.base_url, http_client=http, **options)


async def preview_loop(stream: ttstream.ImageStream) -> tuple[list[int], list[bytes], int]:
    """A preview UI written for generate(): shows previews, saves finals, counts notices."""
    previews: list[int] = []
    finals: list[bytes] = []
    notices = 0
    async with stream:
        async for event in stream:
            if isinstance(event, PartialImage):
                previews.append(event.index)
            elif isinstance(event, Completed):
                finals.append(event.image_bytes)
            elif isinstance(event, Reconnecting):
                notices += 1
    return previews, finals, notices


async def test_a_preview_loop_for_generate_runs_unchanged_on_responses(
    server: EmulatorServer,
) -> None:
    async with client_for(server) as client:
        generated = await preview_loop(
            client.generate("a fox in the snow", size="64x48", partial_images=2)
        )
        stream = client.responses.stream(model="gpt-5", input="a fox in the snow", tools=TOOLS)
        responded = await preview_loop(stream)
    assert responded == generated  # the same previews and the same image bytes
    assert responded[0] == [0, 1]
    response = stream.response
    assert response is not None
    assert (response.status, response.output_text) == (
        "completed",
        "Here is the image you asked for.",
    )
    assert response.id == stream.response_id
    assert stream.last_sequence_number is not None


@pytest.mark.parametrize(
    "fault", ["drop-between-events", "drop-mid-event", "end-early", "drop-after=7"]
)
async def test_a_cut_background_response_resumes_with_no_new_generation(
    server: EmulatorServer, fault: str
) -> None:
    generations = server.stream_stats.generations
    async with client_for(server, f"{fault};times=1") as client:
        stream = client.responses.stream(
            model="gpt-5", input="a kite", tools=TOOLS, background=True
        )
        items = []
        async with stream:
            items = [item async for item in stream]
    kinds = [type(item).__name__ for item in items]
    assert kinds == ["PartialImage", "PartialImage", "Reconnecting", "Completed"]
    notice = items[2]
    assert isinstance(notice, Reconnecting)
    assert notice.regenerating is False
    assert items[1].sequence_number is not None
    assert notice.last_event_id == ""  # the Responses API resumes by sequence_number
    assert "still generating" in notice.reason
    final = items[-1]
    assert isinstance(final, Completed)
    assert final.response_id == stream.response_id
    assert stream.response is not None
    assert stream.response.status == "completed"
    assert server.stream_stats.generations == generations + 1


async def test_resume_from_a_new_client_after_the_first_gave_up(server: EmulatorServer) -> None:
    generations = server.stream_stats.generations
    no_resume = ReconnectPolicy(max_attempts=0)
    async with client_for(server, "drop-between-events", reconnect=no_resume) as first:
        stream = first.responses.stream(model="gpt-5", input="a boat", tools=TOOLS, background=True)
        with pytest.raises(IncompleteStreamError) as caught:
            await preview_loop(stream)
    assert caught.value.last_partial is not None
    assert caught.value.last_partial.index == 1
    assert ") while image item " in str(caught.value)  # "the connection broke (...) while"
    response_id, last = stream.response_id, stream.last_sequence_number
    assert response_id is not None
    assert last is not None
    async with client_for(server) as second:  # a process that restarted
        resumed = second.responses.resume(response_id, starting_after=last)
        async with resumed:
            items = [item async for item in resumed]
    assert [type(item).__name__ for item in items] == ["Completed"]
    assert items[0].sequence_number is not None
    assert items[0].sequence_number > last
    assert resumed.response is not None
    assert resumed.response.id == response_id
    assert server.stream_stats.generations == generations + 1


async def test_a_resume_that_breaks_again_resumes_again_within_the_policy(
    server: EmulatorServer,
) -> None:
    async with client_for(server, "drop-after=4;times=3") as client:
        stream = client.responses.stream(
            model="gpt-5", input="a kite", tools=TOOLS, background=True
        )
        previews, finals, notices = await preview_loop(stream)
    assert (previews, len(finals), notices) == ([0, 1], 1, 3)
    # Attempts count consecutive failures since the last new event (issue 21 item 5):
    # each resume brought new events, so one attempt in a row is enough, and none is none.
    for attempts in (1, 0):
        async with client_for(server, "drop-after=4;times=3", reconnect=FAST) as client:
            stream = client.responses.stream(
                model="gpt-5",
                input="a kite",
                tools=TOOLS,
                background=True,
                reconnect=ReconnectPolicy(max_attempts=attempts, delay=0.01),
            )
            if attempts:
                previews, finals, notices = await preview_loop(stream)
                assert (previews, len(finals), notices) == ([0, 1], 1, 3)
            else:
                with pytest.raises(IncompleteStreamError):
                    await preview_loop(stream)


async def test_without_background_a_cut_is_incomplete_and_nothing_is_sent_again(
    server: EmulatorServer,
) -> None:
    spec = f"drop-between-events;key={secrets.token_hex(4)}"
    generations = server.stream_stats.generations
    async with httpx2.AsyncClient(headers={"X-Emulator-Fault": spec}, timeout=30) as http:
        client = AsyncClient("k", base_url=server.base_url, http_client=http, reconnect=FAST)
        with pytest.raises(IncompleteStreamError) as caught:
            await preview_loop(client.responses.stream(model="gpt-5", input="x", tools=TOOLS))
    assert caught.value.last_partial is not None
    assert server.stream_stats.requests(spec) == 1
    assert server.stream_stats.generations == generations + 1


async def test_errors_in_the_stream_and_before_it(server: EmulatorServer) -> None:
    async with client_for(server, "error-nested") as client:
        stream = client.responses.stream(model="gpt-5", input="x", tools=TOOLS, background=True)
        with pytest.raises(StreamError) as caught:
            await preview_loop(stream)
    assert caught.value.code == "emulated_failure"
    assert caught.value.response_id == stream.response_id
    async with client_for(server, "status=400") as client:
        with pytest.raises(APIStatusError) as refused:
            await preview_loop(client.responses.stream(model="gpt-5", input="x", tools=TOOLS))
    assert refused.value.status_code == 400
    async with client_for(server) as client:
        with pytest.raises(APIStatusError) as missing:
            await preview_loop(client.responses.resume("resp_nope", starting_after=3))
    assert (missing.value.status_code, missing.value.param) == (404, "response_id")


async def test_the_default_tool_is_the_plain_image_tool(server: EmulatorServer) -> None:
    async with client_for(server) as client:
        stream = client.responses.stream(model="gpt-5", input="a lighthouse")
        async with stream:
            [final] = [event async for event in stream]
    assert isinstance(final, Completed)
    assert (final.size, final.operation) == ("1024x1024", "response")
    assert stream.response is not None
    assert stream.response.extra["tools"] == [{"type": "image_generation"}]


async def test_background_none_is_left_out_as_every_none_parameter(
    server: EmulatorServer,
) -> None:
    # None leaves a parameter out (docs/parameters.md), and background=None streamed as
    # the default did (openai-python takes it too); the type check refused it.
    async with client_for(server) as client:
        stream = client.responses.stream(model="gpt-5", input="a lighthouse", background=None)
        async with stream:
            [final] = [event async for event in stream]
    assert isinstance(final, Completed)
    assert stream.response is not None
    assert "background" not in stream.response.extra or not stream.response.extra["background"]


@pytest.mark.parametrize(
    ("call", "param"),
    [
        ({"tools": [{**IMAGE_TOOL, "size": "999984x333328"}]}, "size"),
        ({"tools": [{**IMAGE_TOOL, "model": "gpt-image-2", "quality": "max"}]}, "quality"),
        ({"tools": [{**IMAGE_TOOL, "output_format": "gif", "partial_images": 0}]}, "partial_images"),  # noqa: E501
        ({"stream": False}, "stream"),
        # Of the wrong type: a bare ValueError from inside (tools), or sent as it was.
        ({"tools": "image_generation"}, "tools"),
        ({"tools": ["image_generation"]}, "tools"),
        ({"model": 5}, "model"),
        ({"model": ""}, "model"),
        ({"input": 5}, "input"),
        ({"input": None}, "input"),
        ({"background": "yes"}, "background"),
    ],
)  # fmt: skip
def test_tool_options_are_checked_before_any_connection(call: dict[str, Any], param: str) -> None:
    client = AsyncClient("k", base_url="http://127.0.0.1:9", http_client=UNUSED)
    with pytest.raises(ValidationError) as caught:
        client.responses.stream(**{"model": "gpt-5", "input": "x", **call})
    assert caught.value.param == param


@pytest.mark.parametrize(("response_id", "after"), [("", None), ("resp_1", -2), ("resp_1", "3")])
def test_resume_checks_its_arguments(response_id: str, after: Any) -> None:
    client = AsyncClient("k", base_url="http://127.0.0.1:9", http_client=UNUSED)
    with pytest.raises(ValidationError):
        client.responses.resume(response_id, starting_after=after)


async def test_streams_remember_their_latest_image_size_by_request_shape(
    server: EmulatorServer,
) -> None:
    """Each image's decoded size is put under its request's shape (its URL and the
    Images API's parameters, or those of the Responses API's image tool), where the
    first image of the next stream of that shape finds it; another size is another
    shape."""
    async with client_for(server) as client:
        _, [small], _ = await preview_loop(
            client.generate("a fox", size="64x48", partial_images=1, quality="low")
        )
        _, [large], _ = await preview_loop(
            client.generate("a fox", size="128x96", partial_images=1, quality="low")
        )
        tool = {**IMAGE_TOOL, "partial_images": 1, "size": "96x64"}
        async with client.responses.stream(model="gpt-5", input="a fox", tools=[tool]) as stream:
            # The final image comes nested in the response's output item, which the fast
            # path does not decode on arrival: the preview's size is the one put.
            [preview] = [e.image_bytes async for e in stream if isinstance(e, PartialImage)]
    generations = client.endpoint_url("images/generations")
    generated = {"model": client.default_model, "quality": "low"}
    assert IMAGE_SIZES.get(image_shape(generations, {**generated, "size": "64x48"})) == len(small)
    assert IMAGE_SIZES.get(image_shape(generations, {**generated, "size": "128x96"})) == len(large)
    assert IMAGE_SIZES.get(image_shape(client.endpoint_url("responses"), tool)) == len(preview)
    assert len({len(small), len(large), len(preview)}) == 3


def recorded_body(name: str) -> bytes:
    """A recording of tests/recordings/ as the API frames it: ``event:`` and ``data:``."""
    lines = (ROOT / "tests" / "recordings" / f"{name}.jsonl").read_text().splitlines()
    return b"".join(
        f"event: {json.loads(line)['type']}\ndata: {line}\n\n".encode()
        for line in lines
        if line.strip()
    )


AFTER_COMPLETED = (
    b": ping\n\n"
    b'event: response.output_item.done\ndata: {"type": "response.output_item.done", '
    b'"sequence_number": 17, "output_index": 2, "item": {"type": "image_generation_call", '
    b'"id": "ig_after", "status": "completed", "result": "iVBORw0KGgo="}}\n\n'
    b'event: error\ndata: {"type": "error", "sequence_number": 18, '
    b'"error": {"message": "after the end"}}\n\n'
)


@pytest.mark.parametrize(
    "after", [[], [b": ping\n\n", 0.2, AFTER_COMPLETED]], ids=["silence", "events"]
)
async def test_the_stream_ends_at_response_completed_whatever_follows(
    after: list[bytes | float],
) -> None:
    """A server that holds the connection open after response.completed, or sends more
    events (another image, an error), neither delays nor changes a finished response."""
    answer = Answer([recorded_body("openai_normal"), *after], end="hang")
    with ScriptedServer(answer) as server:
        async with AsyncClient("k", base_url=server.url + "/v1", max_retries=0) as client:
            with anyio.fail_after(5):
                async with client.responses.stream(model="gpt-5", input="a fox") as stream:
                    got = [type(e).__name__ async for e in stream]
    assert got == ["PartialImage", "PartialImage", "Completed"]
    assert stream.response is not None
    assert stream.response.status == "completed"
