"""The one exception tree (docs/errors.md): openai's status classes, what each carries,
the errors that used to escape as ValueError / RuntimeError / KeyError, keys refused at
construction, and malformed HTTP or a full pool on every transport, over raw loopback
servers."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import re
import time
import traceback
from collections.abc import AsyncIterator, Callable

import anyio
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ttstream
from tests.support.paths import ROOT
from tests.support.raw_server import RawServer, answer, response_head
from ttstream import _base64, _exceptions
from ttstream._retry import parse_retry_after, retry_after, should_retry_status
from ttstream._transport import AIOHTTP
from ttstream._transport_errors import safe_text
from ttstream.sinks import SSERelay

pytestmark = pytest.mark.anyio

SECRET = "sk-proj-hostileSECRETvalue123"  # quoted by the malformed answers below


# The tree.

STATUS_CLASSES = [
    (400, ttstream.BadRequestError),
    (401, ttstream.AuthenticationError),
    (403, ttstream.PermissionDeniedError),
    (404, ttstream.NotFoundError),
    (409, ttstream.ConflictError),
    (422, ttstream.UnprocessableEntityError),
    (429, ttstream.RateLimitError),
    (500, ttstream.InternalServerError),
    (503, ttstream.InternalServerError),
    (418, ttstream.APIStatusError),
]


def test_every_public_error_derives_from_the_root() -> None:
    errors = [
        getattr(ttstream, name)
        for name in ttstream.__all__
        if name.endswith("Error") and isinstance(getattr(ttstream, name), type)
    ]
    assert len(errors) >= 28
    for error in errors:
        assert issubclass(error, ttstream.TTStreamError), error
    for error in (ttstream.APIStatusError, ttstream.StreamError, ttstream.APIConnectionError):
        assert issubclass(error, ttstream.APIError)
    assert issubclass(ttstream.APITimeoutError, ttstream.APIConnectionError)
    assert issubclass(ttstream.ValidationError, ValueError)
    assert issubclass(ttstream.ClosedError, RuntimeError)
    assert issubclass(ttstream.UnknownNameError, KeyError)


def test_the_old_import_paths_still_work() -> None:
    from ttstream.sinks import ClaimLostError, MalformedEntryError, RedisStreamError, SinkError

    assert ClaimLostError is ttstream.ClaimLostError
    assert issubclass(ClaimLostError, RedisStreamError)
    assert SinkError is ttstream.SinkError
    assert RedisStreamError is ttstream.RedisStreamError
    assert MalformedEntryError is ttstream.MalformedEntryError


def _status_body(status: int) -> bytes:
    return json.dumps(
        {"error": {"message": f"status {status}", "type": "t", "code": "c", "param": None}}
    ).encode()


@pytest.mark.parametrize(("status", "error"), STATUS_CLASSES)
async def test_each_status_is_its_openai_class(status: int, error: type[Exception]) -> None:
    headers = {"content-type": "application/json", "x-request-id": "req_42"}
    with RawServer(answer(status, headers, _status_body(status))) as server:
        async with ttstream.AsyncClient("k", base_url=server.url, max_retries=0) as client:
            with pytest.raises(ttstream.APIStatusError) as caught:
                async for _ in client.generate("a kite"):
                    pass
    assert type(caught.value) is error
    assert caught.value.status_code == status
    assert caught.value.request_id == "req_42"
    # openai's body: the error object of an {"error": {...}} body, not its envelope.
    assert caught.value.body == json.loads(_status_body(status))["error"]
    assert caught.value.headers["x-request-id"] == "req_42"
    assert caught.value.message == f"status {status}"
    assert (caught.value.type, caught.value.code, caught.value.param) == ("t", "c", None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"detail": "no such model"}', {"detail": "no such model"}),  # no envelope: whole
        (b'{"error": "quota exceeded"}', "quota exceeded"),  # openai's body.get("error")
        (b"upstream exploded", "upstream exploded"),  # not JSON: the text
    ],
)
async def test_a_body_without_an_error_object_is_kept_as_openai_keeps_it(
    body: bytes, expected: object
) -> None:
    with RawServer(answer(400, {"content-type": "application/json"}, body)) as server:
        async with ttstream.AsyncClient("k", base_url=server.url, max_retries=0) as client:
            with pytest.raises(ttstream.BadRequestError) as caught:
                async for _ in client.generate("a kite"):
                    pass
    assert caught.value.body == expected


async def test_an_error_object_in_a_successful_answer_is_the_body_too() -> None:
    error = {"message": "moderation", "type": "image_generation_user_error", "code": "x"}
    payload = json.dumps({"error": error}).encode()
    with RawServer(answer(200, {"content-type": "application/json"}, payload)) as server:
        async with ttstream.AsyncClient("k", base_url=server.url, max_retries=0) as client:
            with pytest.raises(ttstream.APIStatusError) as caught:
                async for _ in client.generate("a kite", model="dall-e-3"):
                    pass
    assert caught.value.body == error


async def test_every_api_error_has_openais_attributes_even_without_an_answer() -> None:
    # openai's APIError: message, body, code, param, type on every subclass, None when
    # there was no answer; ``except openai.APIError as e: e.message, e.code`` carries over.
    async def hang_up(head: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    with RawServer(hang_up) as server:
        async with ttstream.AsyncClient("k", base_url=server.url, max_retries=0) as client:
            with pytest.raises(ttstream.APIConnectionError) as caught:
                async for _ in client.generate("a kite"):
                    pass
    error: ttstream.APIError = caught.value
    assert error.message
    assert error.message in str(error)
    assert (error.body, error.code, error.param, error.type) == (None, None, None, None)
    timeout = ttstream.APITimeoutError("read timeout", timeout="read")
    assert (timeout.message, timeout.body, timeout.code) == ("read timeout", None, None)
    event = ttstream.StreamError("refused", code="moderation_blocked")
    assert (event.body, event.code, event.type) == (None, "moderation_blocked", None)


async def test_except_rate_limit_error_reads_retry_after() -> None:
    headers = {"content-type": "application/json", "retry-after": "7"}
    with RawServer(answer(429, headers, _status_body(429))) as server:
        async with ttstream.AsyncClient("k", base_url=server.url, max_retries=0) as client:
            with pytest.raises(ttstream.RateLimitError) as caught:
                async for _ in client.generate("a kite"):
                    pass
    assert caught.value.retry_after == 7.0


def test_retry_after_is_parsed_once_for_errors_and_retries() -> None:
    now = time.time()
    date = email.utils.formatdate(now + 120, usegmt=True)
    cases = [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": date}, 120.0),
        ({"retry-after": "-1"}, None),  # Azure's rate-limit headers may read -1
        ({"retry-after": "soon"}, None),
        ({}, None),
    ]
    for headers, expected in cases:
        parsed = parse_retry_after(headers, now=lambda: now)
        if expected is None:
            assert parsed is None, headers
        else:
            assert parsed == pytest.approx(expected, abs=1.0), headers
        error = ttstream.RateLimitError("slow down", status_code=429, headers=headers)
        assert (error.retry_after is None) == (expected is None)
    # The retry loop honours at most 60 s; the error reports what the server said.
    assert retry_after({"retry-after": "120"}) is None
    assert ttstream.RateLimitError("x", status_code=429, headers={"Retry-After": "120"}).retry_after
    assert ttstream.RateLimitError("x", status_code=429).retry_after is None


async def test_an_error_event_keeps_its_error_object_as_body_as_in_openai() -> None:
    # openai's stream raises APIError(body=<the event's "error" object>).
    error = {
        "type": "image_generation_user_error",
        "code": "moderation_blocked",
        "message": "blocked",
        "param": None,
    }
    data = json.dumps({"type": "error", "error": error}).encode()
    sse = b"event: error\ndata: " + data + b"\n\n"
    with RawServer(answer(200, {"content-type": "text/event-stream"}, sse)) as server:
        async with ttstream.AsyncClient("k", base_url=server.url, max_retries=0) as client:
            with pytest.raises(ttstream.StreamError) as caught:
                async for _ in client.generate("a kite"):
                    pass
    assert caught.value.body == error
    assert caught.value.code == "moderation_blocked"


@pytest.mark.parametrize("should_retry", [None, "true"])
async def test_a_wait_longer_than_honoured_is_not_retried_as_in_openai(
    should_retry: str | None,
) -> None:
    # openai: a retry-after past its cap means "not now": the error is raised at once
    # (even with x-should-retry: true), not retried after a short backoff the server
    # did not ask for.
    headers = {"content-type": "application/json", "retry-after": "3600"}
    if should_retry:
        headers["x-should-retry"] = should_retry
    with RawServer(answer(429, headers, _status_body(429))) as server:
        async with ttstream.AsyncClient("k", base_url=server.url, max_retries=2) as client:
            with pytest.raises(ttstream.RateLimitError) as caught:
                async for _ in client.generate("a kite"):
                    pass
    assert len(server.heads) == 1
    assert caught.value.retry_after == 3600.0


def test_a_wait_of_zero_is_backoff_as_in_openai() -> None:
    assert retry_after({"retry-after": "0"}) is None  # openai honours 0 < wait <= cap
    assert retry_after({"retry-after-ms": "0", "retry-after": "2"}) is None
    assert should_retry_status(429, {"retry-after": "60"})
    assert not should_retry_status(429, {"retry-after": "61"})
    assert not should_retry_status(503, {"retry-after-ms": "61000", "x-should-retry": "true"})


# What used to escape as ValueError, RuntimeError, KeyError.


def test_sse_decoder_arguments_are_validation_errors() -> None:
    with pytest.raises(ttstream.ValidationError, match="max_event_bytes"):
        ttstream.SSEDecoder(0)


@pytest.mark.parametrize("arguments", [{"replay": 0}, {"retry": -1}, {"keepalive": 0}])
def test_relay_settings_are_validation_errors(arguments: dict[str, float]) -> None:
    with pytest.raises(ttstream.ValidationError) as caught:
        SSERelay(**arguments)  # type: ignore[arg-type]
    assert caught.value.param == next(iter(arguments))


async def test_a_relay_that_ended_is_closed() -> None:
    relay = SSERelay()
    await relay.fail(ttstream.TTStreamError("stop"))
    with pytest.raises(ttstream.ClosedError, match="has ended"):
        await relay.send(ttstream.Completed(b64_json="aGk=", operation="generation"))


def test_an_unknown_base64_backend_is_an_unknown_name() -> None:
    with pytest.raises(ttstream.UnknownNameError) as caught:
        _base64.set_backend("nope")
    assert isinstance(caught.value, ttstream.ValidationError)
    assert "'nope'" in str(caught.value)
    assert "binascii" in str(caught.value)


async def test_a_closed_client_raises_a_closed_error() -> None:
    with RawServer(answer(200, {}, b"{}")) as server:
        client = ttstream.AsyncClient("k", base_url=server.url)
        await client.aclose()
        with pytest.raises(ttstream.ClosedError, match="closed"):
            async for _ in client.generate("a kite"):
                pass
        event = ttstream.Completed(b64_json=None, url=f"{server.url}/i.png", operation="generation")
        with pytest.raises(ttstream.ClosedError):
            await client.fetch_image(event)


# 21.6: keys that cannot be sent as they are.


@pytest.mark.parametrize(
    "key",
    [f"{SECRET}\n", f" {SECRET}", f"{SECRET}\t", f"{SECRET[:8]}\x00{SECRET[8:]}", f"{SECRET}é"],
)
def test_a_key_with_whitespace_control_or_non_ascii_is_refused_unechoed(key: str) -> None:
    with pytest.raises(ttstream.ValidationError) as caught:
        ttstream.AsyncClient(key, base_url="http://127.0.0.1:9")
    error = caught.value
    assert error.param == "api_key"
    for text in (str(error), repr(error), repr(error.value)):
        assert SECRET[3:15] not in text
        assert "hostile" not in text


def test_a_key_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", f"{SECRET}\n")
    monkeypatch.delenv("TTAPI_API_KEY", raising=False)
    with pytest.raises(ttstream.ValidationError, match="whitespace") as caught:
        ttstream.AsyncClient()
    assert SECRET[3:15] not in str(caught.value)


_KEY_RULE = "api_key must be a str of printable ASCII characters with no whitespace"
# ttstream's own wording that names a credential field: the redaction leaves it whole.
OWN_MESSAGES = [
    (
        lambda: ttstream.AsyncClient("sk-abc\n", base_url="http://127.0.0.1:1/v1"),
        f"api_key=<str of 7 chars, not shown> is not allowed: {_KEY_RULE}; this one has "
        "whitespace around it (strip the newline read from a file)",
    ),
    (
        lambda: ttstream.AsyncClient(12345, base_url="http://127.0.0.1:1/v1"),  # type: ignore[arg-type]
        f"api_key=<int, not shown> is not allowed: {_KEY_RULE}; this one has an int",
    ),
    (
        lambda: ttstream.AsyncClient("sk-x-123456", base_url="http://h/v1", auth="basic"),  # type: ignore[arg-type]
        "auth=<str of 5 chars, not shown> is not allowed: "
        "auth must be one of 'auto', 'tt-api-key', 'bearer'",
    ),
    (
        lambda: ttstream.AsyncAzureClient(
            azure_endpoint="https://res.openai.azure.com",
            azure_deployment="d",
            api_version="2025-04-01-preview",
        ),
        "api_key=None is not allowed: api_key must be given: pass api_key=... or "
        "azure_ad_token=..., set AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN, or pass "
        "azure_ad_token_provider=...",
    ),
]


@pytest.mark.parametrize(("build", "message"), OWN_MESSAGES)
def test_a_setting_refused_says_what_is_allowed_unredacted(
    build: Callable[[], object], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    with pytest.raises(ttstream.ValidationError) as caught:
        build()
    assert str(caught.value) == message
    assert "REDACTED" not in caught.value.allowed


# 21.11: malformed HTTP on every transport.

MALFORMED = {
    "bad status line": b"HTTP/1.1 2OO OK\r\nX-Key: " + SECRET.encode() + b"\r\n"
    b"Content-Length: 2\r\n\r\nok",
    "header without colon": b"HTTP/1.1 200 OK\r\nX-Bad " + SECRET.encode() + b"\r\n"
    b"Content-Length: 2\r\n\r\nok",
    "NUL in a header": b"HTTP/1.1 200 OK\r\nX-Bad: " + SECRET.encode() + b"\x00b\r\n"
    b"Content-Length: 2\r\n\r\nok",
    "invalid chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + SECRET.encode()
    + b"\r\nok\r\n0\r\n\r\n",
    "Content-Length with chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\nX-Key: " + SECRET.encode() + b"\r\n\r\n2\r\nok\r\n0\r\n\r\n",
}


def _sends(data: bytes) -> RawServer:
    async def handler(_: bytes, __: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        writer.close()

    return RawServer(handler)


def _assert_unquoted(error: BaseException) -> None:
    # The traceback prints every exception of the chain: the transport's own too.
    trace = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), str(error.args), trace):
        assert "hostileSECRET" not in text


async def test_a_malformed_chunk_mid_stream_quotes_no_bytes_in_the_reconnection_notice() -> None:
    chunks = b'16\r\nid: 1\ndata: {"a": 1}\n\n\r\n' + SECRET.encode() + b"\r\n"
    head = response_head(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked"})
    answers = [head + chunks, response_head(204, {"content-length": "0"})]

    async def handler(_: bytes, __: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answers.pop(0) if len(answers) > 1 else answers[0])
        await writer.drain()

    notices = []
    with RawServer(handler) as server:
        async with (
            httpx2.AsyncClient() as http,
            ttstream.EventSource(
                http, "GET", server.url, reconnect=ttstream.ReconnectPolicy(delay=0)
            ) as source,
        ):
            notices = [item async for item in source if isinstance(item, ttstream.Reconnecting)]
    assert len(notices) == 1
    assert "hostileSECRET" not in notices[0].reason


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_http_is_a_protocol_error_on_every_transport(case: str) -> None:
    with _sends(MALFORMED[case]) as server:
        async with ttstream.AsyncClient("k", base_url=server.url, max_retries=1) as client:
            with pytest.raises(ttstream.ProtocolError) as caught:
                async for _ in client.generate("a kite"):
                    pass
            _assert_unquoted(caught.value)
            with pytest.raises(ttstream.ProtocolError) as caught:
                async for _ in client.generate("a kite", model="dall-e-3"):  # not streaming
                    pass
            _assert_unquoted(caught.value)
            event = ttstream.Completed(
                b64_json=None, url=f"{server.url}/image.png", operation="generation"
            )
            with pytest.raises(ttstream.ProtocolError) as caught:
                await client.fetch_image(event)
            _assert_unquoted(caught.value)


async def test_a_body_cut_short_is_still_a_broken_connection() -> None:
    head = response_head(200, {"content-type": "text/event-stream", "content-length": "100000"})
    with _sends(head + b"event: image_generation.partial_image\n") as server:
        async with ttstream.AsyncClient("k", base_url=server.url, max_retries=0) as client:
            with pytest.raises(ttstream.IncompleteStreamError) as caught:
                async for _ in client.generate("a kite"):
                    pass
            assert not isinstance(caught.value, ttstream.ProtocolError)


# 21.37: the pool limit, and a pool wait on every transport.


async def test_a_full_pool_is_a_pool_timeout_on_every_transport() -> None:
    async def hold(_: bytes, __: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(200, {"content-type": "text/event-stream"}))
        await writer.drain()
        await asyncio.sleep(30)

    timeout = httpx2.Timeout(10.0, pool=0.2)
    with RawServer(hold) as server:
        client = ttstream.AsyncClient(
            "k", base_url=server.url, max_connections=1, max_retries=0, timeout=timeout
        )
        async with client:
            first = client.generate("a kite")
            async with first:  # holds the only connection, waiting for events
                with pytest.raises(ttstream.APITimeoutError) as caught:
                    async for _ in client.generate("another kite"):
                        pass
                assert caught.value.timeout == "pool"
            # the slot came back: a request after the first stream closed goes out
            second = client.generate("a third kite")
            with anyio.move_on_after(0.5) as scope:
                async with second:
                    await _first_event(second)
            assert scope.cancelled_caught  # it connected and waited for events: no error


async def _first_event(stream: AsyncIterator[object]) -> None:
    async for _ in stream:
        return


@pytest.mark.parametrize("value", [0, -1, 1.5, "10"])
def test_max_connections_that_mean_nothing_are_refused(value: object) -> None:
    with pytest.raises(ttstream.ValidationError, match="max_connections"):
        ttstream.AsyncClient("k", max_connections=value)  # type: ignore[arg-type]


@given(
    st.text(alphabet=st.characters(exclude_characters="\r\n"), max_size=40),
    st.binary(min_size=1, max_size=40),
)
def test_transport_texts_keep_no_quoted_server_bytes(words: str, data: bytes) -> None:
    for quoted in (repr(data), f"bytearray({data!r})"):
        text = safe_text(f"{words}: {quoted}\n  more {quoted}")
        assert quoted not in text
        assert len(text) <= 200


async def test_a_bad_chunk_after_the_stream_started_ends_typed_and_bounded(
    anyio_backend: str,
) -> None:
    async def handler(_: bytes, __: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        comment = b": keepalive\n\n"
        head = response_head(
            200, {"content-type": "text/event-stream", "transfer-encoding": "chunked"}
        )
        writer.write(head + b"%x\r\n" % len(comment) + comment + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(SECRET.encode() + b"\r\nxx\r\n")  # no chunk size
        await writer.drain()
        await asyncio.sleep(30)  # and the connection stays open

    timeout = httpx2.Timeout(10.0, read=1.0)
    with RawServer(handler) as server:
        client = ttstream.AsyncClient("k", base_url=server.url, max_retries=0, timeout=timeout)
        async with client:
            with pytest.raises((ttstream.ProtocolError, ttstream.APITimeoutError)) as caught:
                async for _ in client.generate("a kite"):
                    pass
    _assert_unquoted(caught.value)
    if anyio_backend == "asyncio" and AIOHTTP:
        # aiohttp drops its read timer on this error: ttstream's own bound ends the wait
        assert isinstance(caught.value, ttstream.APITimeoutError)
        assert caught.value.timeout == "read"
    else:  # httpcore reports it as it is
        assert isinstance(caught.value, ttstream.ProtocolError)


def test_a_closed_sync_client_raises_a_closed_error() -> None:
    client = ttstream.Client("k", base_url="http://127.0.0.1:9")
    client.close()
    with pytest.raises(ttstream.ClosedError, match="closed"):
        client.generate("a kite")


def test_the_drawn_tree_names_every_error_of_the_module() -> None:
    classes = {
        name
        for name, value in vars(_exceptions).items()
        if isinstance(value, type) and issubclass(value, ttstream.TTStreamError)
    }
    drawn = set(re.findall(r"[├└]── (\w+)", _exceptions.__doc__ or "")) | {"TTStreamError"}
    assert drawn == classes
    page = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert set(re.findall(r"[├└]── (\w+)", page)) | {"TTStreamError"} == classes


# Keys a server echoes: no attribute of an error holds one, however it was written.

AZURE_KEY = "f0e1d2c3b4a5968778695a4b3c2d1e0f"  # 32 hex digits: no shape redact() knows
_ESCAPED = "\\u0066" + AZURE_KEY[1:]  # the key in JSON text, its first letter escaped
_SSE = {"content-type": "text/event-stream"}
_CREATED = {"type": "response.created", "response": {"id": "r", "status": "x", "output": []}}
_ADDED = {
    "type": "response.output_item.added",
    "output_index": 0,
    "item": {"type": "image_generation_call", "id": "ig_1", "status": "in_progress"},
}


def _events(*events: dict[str, object]) -> bytes:
    """Responses API events as SSE, numbered."""
    frames = (
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': i})}\n\n"
        for i, e in enumerate(events)
    )
    return "".join(frames).encode()


async def _read(stream: ttstream.ImageStream) -> None:
    async with stream:
        async for _ in stream:
            pass


_ERROR_FIELDS = dict.fromkeys(("message", "type", "code", "param"), "@")
ECHOES = {
    "an error body with the key escaped, in a header and a header's name": answer(
        401,
        {"content-type": "application/json", "x-request-id": AZURE_KEY, f"x-{AZURE_KEY}": "1"},
        json.dumps({"error": _ERROR_FIELDS}).replace("@", _ESCAPED).encode(),
    ),
    "response.failed of a response whose id is the key": answer(
        200,
        _SSE,
        _events(
            {**_CREATED, "response": {"id": AZURE_KEY, "status": "x", "output": []}},
            {"type": "response.failed", "response": {"id": AZURE_KEY, "error": {"code": "c"}}},
        ),
    ),
    "the key as a field of the wrong type": answer(
        200,
        _SSE,
        _events(
            _CREATED,
            _ADDED,
            {
                "type": "response.image_generation_call.partial_image",
                "item_id": "ig_1",
                "output_index": 0,
                "partial_image_index": AZURE_KEY,
                "partial_image_b64": base64.b64encode(b"\x89PNG\r\n\x1a\n").decode(),
            },
        ),
    ),
    "the key as the event type and the data": answer(
        200, _SSE, f"event: {AZURE_KEY}\nid: {AZURE_KEY}\ndata: {AZURE_KEY}\n\n".encode()
    ),
}


@pytest.mark.parametrize("case", list(ECHOES))
async def test_no_attribute_of_an_error_holds_a_key_the_server_echoed(case: str) -> None:
    with RawServer(ECHOES[case]) as server:
        async with ttstream.AsyncClient(AZURE_KEY, base_url=server.url, max_retries=0) as client:
            with pytest.raises(ttstream.TTStreamError) as caught:
                await _read(client.responses.stream(model="gpt-5", input="a kite"))
            error = caught.value
            public = [name for name in dir(error) if not name.startswith("_")]
            holding = [name for name in public if AZURE_KEY in repr(getattr(error, name))]
            assert holding == []
            assert AZURE_KEY not in str(error)
            assert AZURE_KEY not in repr(error)
    if isinstance(error, ttstream.APIStatusError):  # each field was there, and redacted
        assert (error.type, error.code, error.param) == ("[REDACTED]",) * 3
        assert error.request_id == "[REDACTED]"
        assert error.headers["x-[REDACTED]"] == "1"


async def test_the_final_response_of_a_stream_shows_no_key_in_its_repr() -> None:
    echo = {"id": AZURE_KEY, "status": "completed", "model": AZURE_KEY, "output": []}
    body = _events(_CREATED, {"type": "response.completed", "response": echo})
    with RawServer(answer(200, _SSE, body)) as server:
        async with ttstream.AsyncClient(AZURE_KEY, base_url=server.url, max_retries=0) as client:
            stream = client.responses.stream(model="gpt-5", input="a kite")
            await _read(stream)
            assert stream.response is not None
            shown = repr(stream.response)
    assert AZURE_KEY not in shown
    assert "id='[REDACTED]', status='completed', model='[REDACTED]'" in shown


async def test_a_status_that_echoes_the_key_fails_the_response_redacted() -> None:
    echo = {"id": "resp_1", "status": AZURE_KEY, "output": []}
    body = _events(_CREATED, {"type": "response.completed", "response": echo})
    with RawServer(answer(200, _SSE, body)) as server:
        async with ttstream.AsyncClient(AZURE_KEY, base_url=server.url, max_retries=0) as client:
            with pytest.raises(ttstream.StreamError) as caught:
                await _read(client.responses.stream(model="gpt-5", input="a kite"))
    assert "the response's status is '[REDACTED]', not 'completed'" in str(caught.value)
    assert caught.value.code == "[REDACTED]"
    assert AZURE_KEY not in repr(caught.value)


@pytest.mark.parametrize("before", [0, 20, 30, 38, 50])
async def test_a_quoted_value_is_redacted_before_it_is_cut(before: int) -> None:
    value = "y" * before + AZURE_KEY  # cut in the key, or before it, or after it
    event = {
        "type": "image_generation.partial_image",
        "b64_json": "AAAA",
        "partial_image_index": value,
    }
    body = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
    with RawServer(answer(200, _SSE, body)) as server:
        async with ttstream.AsyncClient(AZURE_KEY, base_url=server.url, max_retries=0) as client:
            with pytest.raises(ttstream.MalformedEventError) as caught:
                await _read(client.generate("a kite", partial_images=1))
    for text in (str(caught.value), caught.value.reason):
        assert "'partial_image_index' should be int, got str '" in text
        assert AZURE_KEY[:6] not in text  # no piece of the key left by the cut


async def test_data_that_is_not_json_is_quoted_redacted_before_the_cut() -> None:
    body = f"event: image_generation.partial_image\ndata: {{{'y' * 50}{AZURE_KEY}\n\n"
    with RawServer(answer(200, _SSE, body.encode())) as server:
        async with ttstream.AsyncClient(AZURE_KEY, base_url=server.url, max_retries=0) as client:
            with pytest.raises(ttstream.MalformedEventError) as caught:
                await _read(client.generate("a kite", partial_images=1))
    assert "data starts '{yyyy" in caught.value.reason
    assert AZURE_KEY[:6] not in caught.value.reason


async def test_a_body_that_is_not_json_is_quoted_redacted_before_the_cut() -> None:
    # A non-streaming answer, and a Responses API event: the key straddles the cut.
    body = f"{{{'y' * 50}{AZURE_KEY}".encode()
    event = f"event: response.created\ndata: {{{'y' * 50}{AZURE_KEY}\n\n".encode()
    for status, headers, payload, call in [
        (200, {"content-type": "application/json"}, body, "images"),
        (200, _SSE, event, "responses"),
    ]:
        with RawServer(answer(status, headers, payload)) as server:
            async with ttstream.AsyncClient(
                AZURE_KEY, base_url=server.url, max_retries=0
            ) as client:
                stream = (
                    client.generate("a kite", stream=False)
                    if call == "images"
                    else client.responses.stream(model="gpt-5", input="a kite")
                )
                with pytest.raises(ttstream.ProtocolError) as caught:
                    await _read(stream)
        assert "starts b'{yyyy" in str(caught.value) or "starts '{yyyy" in str(caught.value)
        assert AZURE_KEY[:6] not in str(caught.value)


async def test_every_text_an_error_keeps_is_redacted_whatever_the_class() -> None:
    class Later(ttstream.StreamError):  # a subclass with a field of its own
        def __init__(self, text: str) -> None:
            self.text = text
            super().__init__(text, code=text, param=text, type=text, event_id=text)

    async with ttstream.AsyncClient(AZURE_KEY, base_url="http://127.0.0.1:9"):
        errors = [
            Later(f"echo {AZURE_KEY}"),
            ttstream.MalformedEventError(AZURE_KEY, event=AZURE_KEY, event_id=AZURE_KEY),
            ttstream.DownloadRefusedError(AZURE_KEY, url=f"http://h/{AZURE_KEY}"),
            ttstream.ValidationError(AZURE_KEY, AZURE_KEY, AZURE_KEY, model=AZURE_KEY),
        ]
        errors[0].note = AZURE_KEY  # set after it was built
    for error in errors:
        public = [name for name in dir(error) if not name.startswith("_")]
        assert [name for name in public if AZURE_KEY in repr(getattr(error, name))] == []
