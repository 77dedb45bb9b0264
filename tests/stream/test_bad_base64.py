"""An image that is not valid base64, from a hostile server: a stream that decodes its
images raises at that event, before the consumer holds it; a stream that keeps the text
raises from ``image_bytes`` (docs/errors.md, docs/fast.md). Over a scripted loopback
server, on asyncio and trio."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support.scripted_server import Answer, ScriptedServer
from ttstream import AsyncClient, MalformedEventError, PartialImage

pytestmark = pytest.mark.anyio

GOOD = base64.b64encode(b"\x89PNG image").decode()


def event(kind: str, b64: str, index: int | None = None) -> bytes:
    body: dict[str, object] = {"type": f"image_generation.{kind}", "b64_json": b64}
    if index is not None:
        body["partial_image_index"] = index
    return f"event: {body['type']}\ndata: {json.dumps(body)}\n\n".encode()


# Not canonical base64 in three ways the decoder on arrival gives up on: characters
# outside the alphabet, a length that is not a multiple of 4, a backslash (escaped in
# the JSON, so the event's text holds it).
BAD = ["!!!notbase64###", GOOD[:-1], "QUJD\\u0044"]


@pytest.mark.parametrize("bad", BAD, ids=["alphabet", "length", "escaped"])
@pytest.mark.parametrize("which", ["partial", "final"])
async def test_a_decoding_stream_raises_at_the_bad_image(bad: str, which: str) -> None:
    partial = event("partial_image", bad if which == "partial" else GOOD, 0)
    final = event("completed", bad if which == "final" else GOOD)
    with ScriptedServer(Answer([partial, final])) as server:
        async with AsyncClient("k", base_url=server.url + "/v1", max_retries=0) as client:
            stream = client.generate("a cat", partial_images=1)
            got: list[bytes] = []

            async def consume() -> None:
                async with stream:
                    async for item in stream:
                        got.append(item.image_bytes)

            with pytest.raises(MalformedEventError, match="not valid base64") as caught:
                await consume()
    assert (
        caught.value.event
        == f"image_generation.{'partial_image' if which == 'partial' else 'completed'}"
    )
    assert "b64_json of" in str(caught.value)
    if which == "partial":
        assert got == []
        assert stream.last_partial is None  # the bad preview was never delivered
    else:
        assert got == [b"\x89PNG image"]
        assert isinstance(stream.last_partial, PartialImage)


@pytest.mark.parametrize("bad", BAD, ids=["alphabet", "length", "escaped"])
async def test_a_stream_that_keeps_the_text_raises_from_image_bytes(bad: str) -> None:
    with ScriptedServer(Answer([event("completed", bad)])) as server:
        async with AsyncClient("k", base_url=server.url + "/v1", max_retries=0) as client:
            stream = client.generate("a cat")
            stream.decode_images = False
            async with stream:
                [completed] = [item async for item in stream]
    with pytest.raises(MalformedEventError, match="not valid base64"):
        completed.image_bytes  # noqa: B018 - the property decodes


def output_item_done(result: str) -> bytes:
    data = {
        "type": "response.output_item.done",
        "sequence_number": 3,
        "output_index": 0,
        "item": {
            "type": "image_generation_call",
            "id": "ig_1",
            "status": "completed",
            "result": result,
        },
    }
    return f"event: response.output_item.done\ndata: {json.dumps(data)}\n\n".encode()


COMPLETED = (
    b'event: response.completed\ndata: {"type": "response.completed", "sequence_number": 4, '
    b'"response": {"id": "resp_1", "status": "completed", "output": []}}\n\n'
)


async def test_a_responses_final_image_that_is_not_base64_names_its_result() -> None:
    with ScriptedServer(Answer([output_item_done("!!!notbase64###"), COMPLETED])) as server:
        async with AsyncClient("k", base_url=server.url + "/v1", max_retries=0) as client:
            stream = client.responses.stream(model="gpt-5", input="a fox")
            with pytest.raises(MalformedEventError, match="result of Completed") as caught:
                async with stream:
                    [item async for item in stream]
    assert caught.value.event == "response.output_item.done"


# "QR==" holds non-zero bits under its padding: its bytes encode back to "QQ==", so the
# text must be kept for b64_json to be the text the server sent.
@pytest.mark.parametrize("b64", [GOOD, "QR=="], ids=["canonical", "padding-bits"])
async def test_a_final_decoded_before_delivery_gives_back_its_exact_text(b64: str) -> None:
    with ScriptedServer(Answer([output_item_done(b64), COMPLETED])) as server:
        async with (
            AsyncClient("k", base_url=server.url + "/v1", max_retries=0) as client,
            client.responses.stream(model="gpt-5", input="a fox") as stream,
        ):
            [completed] = [item async for item in stream]
    assert completed.image_bytes == base64.b64decode(b64)
    assert completed.b64_json == b64
    # The bytes alone are kept, as for an image decoded on arrival, unless the text
    # would not come back from them.
    assert (completed._image._text is None) is (b64 == GOOD)
