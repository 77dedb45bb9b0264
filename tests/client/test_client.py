"""AsyncClient and ImageStream over httpx2.MockTransport: requests, retries, error mapping.

The transport is not what these tests are about; tests/stream/test_end_to_end.py runs the
same client over real loopback HTTP against the emulator.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import httpx2
import pytest

import ttstream
from tests.support import streams
from tests.support.streams import collect
from ttstream import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncClient,
    Completed,
    EventTooLargeError,
    IncompleteStreamError,
    PartialImage,
    ProtocolError,
    StreamError,
    ValidationError,
)

pytestmark = pytest.mark.anyio

KEY = "sk-canary-5f1e2d3c4b5a"

client_for = partial(streams.client_for, api_key=KEY)  # the shared one, with this key

B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nimage").decode()
Handler = Callable[[httpx2.Request], httpx2.Response]


@pytest.fixture(autouse=True)
def _no_keys_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TTAPI_API_KEY", "OPENAI_API_KEY", "TTAPI_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ttstream._connect.backoff_delay", lambda attempt: 0.0)


def sse_body(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def partial(index: int) -> dict[str, Any]:
    return {"type": "image_generation.partial_image", "b64_json": B64, "partial_image_index": index}


COMPLETED = {"type": "image_generation.completed", "b64_json": B64, "usage": {"total_tokens": 9}}


def stream_response(body: bytes, status: int = 200, **headers: str) -> httpx2.Response:
    return httpx2.Response(
        status, headers={"content-type": "text/event-stream", **headers}, content=body
    )


class Recorder:
    """A MockTransport handler answering from a list, recording every request."""

    def __init__(self, *answers: httpx2.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


# -- keys, base URLs and auth headers ----------------------------------------------------


@pytest.mark.parametrize(
    ("env", "kwargs", "base_url", "header"),
    [
        ({"TTAPI_API_KEY": KEY}, {}, "https://api.ttapi.io/v1", "TT-API-KEY"),
        ({"OPENAI_API_KEY": KEY}, {}, "https://api.openai.com/v1", "Authorization"),
        (
            {"TTAPI_API_KEY": KEY, "OPENAI_API_KEY": "other"},
            {},
            "https://api.ttapi.io/v1",
            "TT-API-KEY",
        ),
        ({}, {"api_key": KEY}, "https://api.ttapi.io/v1", "TT-API-KEY"),
        (
            {},
            {"api_key": KEY, "base_url": "http://localhost:9/v1/"},
            "http://localhost:9/v1",
            "Authorization",
        ),
        (
            {},
            {"api_key": KEY, "base_url": "https://eu.ttapi.io/v1"},
            "https://eu.ttapi.io/v1",
            "TT-API-KEY",
        ),
        (
            {"OPENAI_API_KEY": KEY},
            {"auth": "tt-api-key"},
            "https://api.openai.com/v1",
            "TT-API-KEY",
        ),
        (
            {"TTAPI_API_KEY": KEY},
            {"base_url": "http://127.0.0.1:1/v1"},
            "http://127.0.0.1:1/v1",
            "TT-API-KEY",
        ),
    ],
)
async def test_key_source_decides_base_url_and_auth_header(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    kwargs: dict[str, Any],
    base_url: str,
    header: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    recorder = Recorder(stream_response(sse_body(COMPLETED)))
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(recorder))
    async with AsyncClient(http_client=http, **kwargs) as client:
        assert client.base_url == base_url
        await collect(client.generate("a cat"))
    request = recorder.requests[0]
    assert str(request.url) == f"{base_url}/images/generations"
    expected = KEY if header == "TT-API-KEY" else f"Bearer {KEY}"
    assert request.headers[header] == expected
    other = "Authorization" if header == "TT-API-KEY" else "TT-API-KEY"
    assert other not in request.headers


@pytest.mark.parametrize(
    ("key_variable", "url_variable"),
    [("TTAPI_API_KEY", "TTAPI_BASE_URL"), ("OPENAI_API_KEY", "OPENAI_BASE_URL")],
)
def test_the_base_url_can_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, key_variable: str, url_variable: str
) -> None:
    monkeypatch.setenv(key_variable, KEY)
    monkeypatch.setenv(url_variable, "http://127.0.0.1:8000/v1")
    assert AsyncClient().base_url == "http://127.0.0.1:8000/v1"
    assert AsyncClient(base_url="http://other/v1").base_url == "http://other/v1"


def test_a_base_url_variable_goes_only_with_its_own_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("TTAPI_BASE_URL", "http://127.0.0.1:8000/v1")
    assert AsyncClient().base_url == "https://api.openai.com/v1"


def test_no_key_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="TTAPI_API_KEY or OPENAI_API_KEY") as info:
        AsyncClient()
    assert str(info.value).startswith("api_key=None is not allowed: ")  # nothing hidden
    assert "api_or_emulator()" in str(info.value)


def test_unknown_auth_is_refused() -> None:
    with pytest.raises(ValidationError, match="'tt-api-key'"):
        AsyncClient(KEY, auth="basic")  # type: ignore[arg-type]


async def test_closes_only_the_http_client_it_created() -> None:
    http = httpx2.AsyncClient()
    async with AsyncClient(KEY, http_client=http):
        pass
    assert not http.is_closed
    await http.aclose()
    client = AsyncClient(KEY)
    await client.aclose()
    assert client.http_client.is_closed


# -- request bodies ----------------------------------------------------------------------


async def test_streaming_request_body_and_headers() -> None:
    recorder = Recorder(stream_response(sse_body(partial(0), COMPLETED)))
    async with client_for(recorder) as client:
        events = await collect(
            client.generate("a lighthouse", model="gpt-image-2", partial_images=1, size="1024x1024")
        )
    assert [type(e) for e in events] == [PartialImage, Completed]
    request = recorder.requests[0]
    assert request.headers["accept"] == "text/event-stream"
    assert json.loads(request.content) == {
        "model": "gpt-image-2",
        "prompt": "a lighthouse",
        "partial_images": 1,
        "size": "1024x1024",
        "stream": True,
    }


async def test_dall_e_makes_a_plain_request_and_yields_completed_events() -> None:
    body = {"created": 1713833628, "data": [{"url": "https://x/1.png", "revised_prompt": "r"}]}
    recorder = Recorder(httpx2.Response(200, json=body))
    async with client_for(recorder) as client:
        events = await collect(client.generate("a cat", model="dall-e-3"))
    sent = json.loads(recorder.requests[0].content)
    assert "stream" not in sent
    assert recorder.requests[0].headers["accept"] == "application/json"
    [event] = events
    assert isinstance(event, Completed)
    assert (event.url, event.revised_prompt, event.b64_json) == ("https://x/1.png", "r", None)
    assert event.created_at == 1713833628


async def test_stream_false_on_a_streaming_model_yields_completed_events() -> None:
    body = {
        "created": 1,
        "data": [{"b64_json": B64}, {"b64_json": B64}],
        "usage": {"total_tokens": 5},
    }
    async with client_for(Recorder(httpx2.Response(200, json=body))) as client:
        events = await collect(client.generate("a cat", stream=False, n=2))
    assert [type(e) for e in events] == [Completed, Completed]
    assert all(isinstance(e, Completed) for e in events)
    usages = [e.usage for e in events if isinstance(e, Completed)]
    assert usages[0] is None  # usage covers the request: it rides on the last image only
    assert usages[1] is not None
    assert usages[1].total_tokens == 5


async def test_ttapi_envelope_is_unwrapped() -> None:
    body = {
        "status": "SUCCESS",
        "message": "success",
        "data": {"created": 5, "data": [{"url": "https://x/y.png"}]},
    }
    async with client_for(Recorder(httpx2.Response(200, json=body))) as client:
        [event] = await collect(client.generate("a cat", model="dall-e-3"))
    assert isinstance(event, Completed)
    assert event.url == "https://x/y.png"


async def test_ttapi_envelope_with_failed_status_is_an_error() -> None:
    body = {"status": "FAILED", "message": "prompt rejected", "data": {"created": 5, "data": []}}
    async with client_for(Recorder(httpx2.Response(200, json=body))) as client:
        with pytest.raises(APIStatusError, match=r"FAILED.*prompt rejected") as info:
            await collect(client.generate("a cat", model="dall-e-3"))
    assert info.value.code == "FAILED"


async def test_fetch_image_downloads_url_results_without_credentials() -> None:
    png = b"\x89PNG\r\n\x1a\nfetched"

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/img.png":
            assert "TT-API-KEY" not in request.headers
            assert "Authorization" not in request.headers
            return httpx2.Response(200, content=png)
        return httpx2.Response(
            200, json={"created": 1, "data": [{"url": "https://cdn.test/img.png"}]}
        )

    async with client_for(handler) as client:
        [event] = await collect(client.generate("a cat", model="dall-e-2"))
        assert isinstance(event, Completed)
        assert await client.fetch_image(event) == png


async def test_fetch_image_refuses_a_download_larger_than_max_event_bytes() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/big.png":
            return httpx2.Response(200, content=b"x" * 5000)
        return httpx2.Response(
            200, json={"created": 1, "data": [{"url": "https://cdn.test/big.png"}]}
        )

    async with client_for(handler, max_event_bytes=4096) as client:
        [event] = await collect(client.generate("a cat", model="dall-e-2"))
        assert isinstance(event, Completed)
        with pytest.raises(EventTooLargeError) as info:
            await client.fetch_image(event)
    assert info.value.limit == 4096


async def test_a_non_streaming_body_larger_than_the_limit_is_refused() -> None:
    body = {"created": 1, "data": [{"b64_json": "A" * 10_000}]}
    async with client_for(
        Recorder(httpx2.Response(200, json=body)), max_event_bytes=4096
    ) as client:
        with pytest.raises(EventTooLargeError):
            await collect(client.generate("a cat", model="dall-e-2"))


async def test_a_streamed_event_larger_than_the_limit_is_refused() -> None:
    big = {**COMPLETED, "b64_json": "A" * 10_000}
    async with client_for(Recorder(stream_response(sse_body(big))), max_event_bytes=4096) as client:
        with pytest.raises(EventTooLargeError):
            await collect(client.generate("a cat"))


async def test_edit_with_files_is_multipart_image_for_one_and_image_array_for_several(
    tmp_path: Any,
) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nA")
    recorder = Recorder(stream_response(sse_body({**COMPLETED, "type": "image_edit.completed"})))
    async with client_for(recorder) as client:
        [one] = await collect(
            client.edit("hat", images=path, input_fidelity="high", model="gpt-image-1.5")
        )
        await collect(
            client.edit("hat", images=[path, b"\xff\xd8\xffB"], mask=b"\x89PNG\r\n\x1a\nM")
        )
    assert isinstance(one, Completed)
    assert one.operation == "edit"
    first, second = (r.read() for r in recorder.requests)
    assert recorder.requests[0].headers["content-type"].startswith("multipart/form-data")
    assert b'name="image"; filename="cat.png"' in first
    assert b'name="input_fidelity"\r\n\r\nhigh' in first
    assert b'name="stream"\r\n\r\ntrue' in first
    assert second.count(b'name="image[]"') == 2
    assert b'filename="image.jpeg"\r\nContent-Type: image/jpeg' in second
    assert b'name="mask"; filename="image.png"' in second


async def test_edit_with_references_is_json_as_ttapi_documents() -> None:
    recorder = Recorder(stream_response(sse_body({**COMPLETED, "type": "image_edit.completed"})))
    refs = [{"image_url": "https://x/a.png"}, {"file_id": "file-1"}]
    async with client_for(recorder) as client:
        await collect(
            client.edit("hat", images=refs, mask={"file_id": "file-m"}, model="gpt-image-1.5")
        )
    assert json.loads(recorder.requests[0].content) == {
        "model": "gpt-image-1.5",
        "prompt": "hat",
        "stream": True,
        "images": refs,
        "mask": {"file_id": "file-m"},
    }


@pytest.mark.parametrize(
    ("images", "match"),
    [
        ([b"\x89PNG\r\n\x1a\n", {"image_url": "u"}], "all files or all references"),
        ({"image_url": "u", "file_id": "f"}, "exactly one of"),
        (12, "a path, bytes"),
    ],
)
async def test_bad_edit_inputs_are_refused_before_any_request(images: Any, match: str) -> None:
    recorder = Recorder(httpx2.Response(500))
    async with client_for(recorder) as client:
        with pytest.raises(ValidationError, match=match):
            await collect(client.edit("hat", images=images))
    assert recorder.requests == []


async def test_an_edit_path_that_cannot_be_read_is_a_validation_error_naming_it(
    tmp_path: Any,
) -> None:
    missing = tmp_path / "missing.png"
    cases = [
        ("images", {"images": missing}, "No such file or directory"),
        ("mask", {"images": b"\x89PNG\r\n\x1a\n", "mask": tmp_path}, "Is a directory"),
    ]
    recorder = Recorder(httpx2.Response(500))
    async with client_for(recorder) as client:
        for param, options, reason in cases:
            with pytest.raises(ValidationError) as caught:
                await collect(client.edit("hat", **options))
            assert caught.value.param == param
            assert str(options[param]) in str(caught.value)
            assert f"a path of a readable file ({reason})" in str(caught.value)
    assert recorder.requests == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
async def test_an_edit_path_that_is_no_regular_file_is_refused_unread(tmp_path: Any) -> None:
    # A device or a pipe was read as the image: /dev/null sent an empty file, /dev/zero
    # read until memory ran out, a pipe without a writer waited forever. batch.edit
    # refused them (a regular-file check) until it relied on this read.
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    recorder = Recorder(httpx2.Response(500))
    async with client_for(recorder) as client:
        for path in ("/dev/null", fifo):
            with anyio.fail_after(10), pytest.raises(ValidationError) as caught:
                await collect(client.edit("hat", images=path))
            assert caught.value.param == "images"
            assert "a path of a readable file (not a regular file" in str(caught.value)
    assert recorder.requests == []


async def test_dall_e_2_edit_checks_the_file_it_read(tmp_path: Any) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xffjpeg")
    recorder = Recorder(httpx2.Response(500))
    async with client_for(recorder) as client:
        with pytest.raises(ValidationError, match="not a PNG"):
            await collect(client.edit("hat", images=path, model="dall-e-2"))
    assert recorder.requests == []


def test_invalid_parameters_raise_at_once_before_any_connection() -> None:
    recorder = Recorder(httpx2.Response(500))
    client = client_for(recorder)
    with pytest.raises(ValidationError) as info:
        client.generate("a cat", model="dall-e-3", n=2)
    assert (info.value.param, info.value.model) == ("n", "dall-e-3")
    with pytest.raises(ValidationError, match="partial_images"):
        client.generate("a cat", model="dall-e-2", partial_images=2)
    assert recorder.requests == []


# -- errors ------------------------------------------------------------------------------


async def test_http_error_becomes_api_status_error_with_the_error_fields() -> None:
    error = {
        "error": {
            "message": "Invalid size",
            "type": "invalid_request_error",
            "param": "size",
            "code": "invalid_value",
        }
    }
    answer = httpx2.Response(400, json=error, headers={"x-request-id": "req_42"})
    async with client_for(Recorder(answer)) as client:
        with pytest.raises(APIStatusError) as info:
            await collect(client.generate("a cat"))
    e = info.value
    assert (e.status_code, e.message, e.type, e.param, e.code, e.request_id) == (
        400,
        "Invalid size",
        "invalid_request_error",
        "size",
        "invalid_value",
        "req_42",
    )
    assert "HTTP 400: Invalid size" in str(e)


async def test_non_json_error_body_still_gives_a_message() -> None:
    async with client_for(Recorder(httpx2.Response(502, text="Bad gateway\n"))) as client:
        with pytest.raises(APIStatusError, match="HTTP 502: Bad gateway"):
            await collect(
                client.generate("a cat", max_retries=0) if False else client.generate("a cat")
            )


async def test_redirects_are_not_followed() -> None:
    recorder = Recorder(httpx2.Response(307, headers={"location": "https://evil.test/v1"}))
    async with client_for(recorder) as client:
        with pytest.raises(APIStatusError, match="not followed") as info:
            await collect(client.generate("a cat"))
    assert info.value.status_code == 307
    assert len(recorder.requests) == 1


async def test_wrong_content_type_for_a_stream_request_is_a_protocol_error() -> None:
    answer = httpx2.Response(200, json={"created": 1, "data": []})
    async with client_for(Recorder(answer)) as client:
        with pytest.raises(ProtocolError, match="text/event-stream"):
            await collect(client.generate("a cat"))


async def test_body_ending_before_completed_is_incomplete_with_last_preview() -> None:
    answer = stream_response(sse_body(partial(0), partial(1)))
    async with client_for(Recorder(answer)) as client:
        with pytest.raises(IncompleteStreamError) as info:
            await collect(client.generate("a cat", partial_images=2))
    assert info.value.last_partial is not None
    assert info.value.last_partial.index == 1


async def test_n_completed_images_are_expected() -> None:
    answer = stream_response(sse_body(COMPLETED))
    async with client_for(Recorder(answer)) as client:
        with pytest.raises(IncompleteStreamError, match="1 of 2 completed"):
            await collect(client.generate("a cat", n=2))


async def test_error_event_raises_stream_error_and_closes() -> None:
    error = {"type": "error", "error": {"code": "moderation_blocked", "message": "blocked"}}
    answer = stream_response(sse_body(partial(0), error))
    async with client_for(Recorder(answer)) as client:
        stream = client.generate("a cat", partial_images=1)
        seen: list[ttstream.Event] = []

        async def consume() -> None:
            async for event in stream:  # no async with: the error still closes it
                seen.append(event)

        with pytest.raises(StreamError, match="blocked"):
            await consume()
        assert len(seen) == 1
        assert repr(stream).startswith("<ImageStream closed")


async def test_done_marker_is_skipped() -> None:
    answer = stream_response(sse_body(COMPLETED) + b"data: [DONE]\n\n")
    async with client_for(Recorder(answer)) as client:
        assert len(await collect(client.generate("a cat"))) == 1


# -- retries -----------------------------------------------------------------------------


async def test_retries_429_and_5xx_honouring_retry_after_ms() -> None:
    recorder = Recorder(
        httpx2.Response(429, headers={"retry-after-ms": "5"}),
        httpx2.Response(503, headers={"retry-after": "0.005"}),
        stream_response(sse_body(COMPLETED)),
    )
    async with client_for(recorder) as client:
        assert len(await collect(client.generate("a cat"))) == 1
    assert len(recorder.requests) == 3


async def test_gives_up_after_max_retries() -> None:
    recorder = Recorder(httpx2.Response(500, json={"error": {"message": "down"}}))
    async with client_for(recorder, max_retries=1) as client:
        with pytest.raises(APIStatusError, match="down"):
            await collect(client.generate("a cat"))
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    ("status", "header", "tries"), [(400, None, 1), (400, "true", 3), (503, "false", 1)]
)
async def test_x_should_retry_forces_or_vetoes(status: int, header: str | None, tries: int) -> None:
    headers = {"x-should-retry": header} if header else {}
    recorder = Recorder(httpx2.Response(status, headers=headers))
    async with client_for(recorder) as client:
        with pytest.raises(APIStatusError):
            await collect(client.generate("a cat"))
    assert len(recorder.requests) == tries


async def test_connection_errors_and_timeouts_are_retried_then_typed() -> None:
    recorder = Recorder(httpx2.ConnectError("refused"), httpx2.ConnectTimeout("slow"))
    async with client_for(recorder, max_retries=1) as client:
        with pytest.raises(APITimeoutError) as info:
            await collect(client.generate("a cat"))
    assert info.value.timeout == "connect"
    assert len(recorder.requests) == 2
    async with client_for(Recorder(httpx2.ConnectError("refused")), max_retries=0) as client:
        with pytest.raises(APIConnectionError, match="refused"):
            await collect(client.generate("a cat"))


async def test_multipart_body_is_replayed_identically_on_retry() -> None:
    recorder = Recorder(
        httpx2.Response(500),
        stream_response(sse_body({**COMPLETED, "type": "image_edit.completed"})),
    )
    async with client_for(recorder) as client:
        await collect(client.edit("hat", images=[b"\x89PNG\r\n\x1a\n1", b"\x89PNG\r\n\x1a\n2"]))
    first, second = (r.read() for r in recorder.requests)
    assert first == second
    assert first.count(b"image[]") == 2


# -- secrets -----------------------------------------------------------------------------


async def test_the_key_never_appears_in_reprs_errors_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder(
        httpx2.Response(503, headers={"retry-after-ms": "1"}),
        httpx2.Response(401, json={"error": {"message": "Incorrect API key provided"}}),
    )
    texts: list[str] = []
    async with client_for(recorder) as client:
        stream = client.generate("a cat")
        texts += [repr(client), repr(stream), str(vars(client).get("base_url"))]
        with pytest.raises(APIStatusError) as info:
            await collect(stream)
        texts += [str(info.value), repr(info.value), repr(info.value.body), repr(stream)]
    texts += [record.getMessage() for record in caplog.records]
    assert any("retrying" in text for text in texts)
    for text in texts:
        assert KEY not in text


def test_an_edit_with_a_mask_is_refused_for_gif_at_the_call() -> None:
    client = AsyncClient("k", base_url="http://127.0.0.1:9/v1")
    png = b"\x89PNG\r\n\x1a\n" + bytes(16)
    with pytest.raises(ValidationError, match="mask"):
        client.edit("x", images=[png], mask=png, output_format="gif")
    client.edit("x", images=[png], output_format="gif")  # without the mask: accepted


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:99999/v1", "http://[::1/v1", "http://127.0.0.1:abc/v1", "api.ttapi.io/v1"],
)
def test_a_malformed_base_url_is_refused_at_the_call(base_url: str) -> None:
    with pytest.raises(ValidationError, match="base_url") as info:
        AsyncClient("sk-test-key-123456", base_url=base_url)
    assert "sk-test-key-123456" not in str(info.value)


async def test_a_base_url_httpx2_reads_but_urllib_refuses_streams(
    ttstream_emulator: ttstream.emulator.EmulatorServer,
) -> None:
    """A port written ``+8080`` or user information that changes under NFKC: httpx2
    reads them, as the request does, and so do the client's other readers of its URL
    (the TTAPI check, the telemetry's server address, the image sizes' shape); urllib
    would raise ``ValueError`` from inside ``generate()``."""
    url = ttstream_emulator.base_url.replace(":", ":+", 2).replace("http:+", "http:", 1)
    assert ":+" in url
    async with AsyncClient("emulator-key", base_url=url) as client:
        events = await collect(client.generate("a kite", size="64x48", partial_images=1))
        responded = await collect(client.responses.stream(model="gpt-5", input="a kite"))
    assert len(events) == 2
    assert isinstance(responded[-1], ttstream.Completed)
    assert AsyncClient("k", base_url="https://us\uff0fer:pw@h.example/v1").auth == "bearer"


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), None, True, "5"])
def test_a_timeout_that_bounds_no_wait_is_refused_at_the_call(timeout: object) -> None:
    """A number of seconds that is no finite positive bound (httpx2 would take 0, -1,
    NaN and None, and fail every request, or wait for ever) or no number at all (httpx2's
    own ``TypeError``) is a ``ValidationError`` naming ``timeout``."""
    with pytest.raises(ValidationError, match=r"seconds > 0, or an httpx2.Timeout whose") as info:
        AsyncClient("k", base_url="http://127.0.0.1:9/v1", timeout=timeout)  # type: ignore[arg-type]
    assert info.value.param == "timeout"
    with pytest.raises(ValidationError, match="timeout"):
        ttstream.Client("k", base_url="http://127.0.0.1:9/v1", timeout=timeout)  # type: ignore[arg-type]


def test_a_timeout_in_seconds_or_an_httpx2_timeout_is_taken() -> None:
    assert AsyncClient("k", timeout=2).timeout == httpx2.Timeout(2.0)
    per_phase = httpx2.Timeout(10.0, read=60.0)
    assert AsyncClient("k", timeout=per_phase).timeout is per_phase
