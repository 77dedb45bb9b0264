"""Hostile servers and bad input (docs/hostile-servers.md): bounded memory, bounded waits,
typed errors, no key anywhere. Servers are raw asyncio servers on 127.0.0.1 whose every
byte the test writes (tests/raw_server.py); peak memory is measured with tracemalloc.
"""

from __future__ import annotations

import functools
import json
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from raw_server import RawServer, answer, gzip_of, gzip_twice

import ttstream
from ttstream import (
    APIStatusError,
    AsyncClient,
    Completed,
    EventTooLargeError,
    PartialImage,
    ProtocolError,
)

pytestmark = pytest.mark.anyio

KEY = "sk-hostile-canary-7d41c09e"
CAP = 1024 * 1024  # max_event_bytes of these tests
MB = 1_000_000
BOMB = 64 * 1024 * 1024  # decoded bytes of a bomb: far past every cap, ~65 KB on the wire
SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}


@functools.cache
def bomb(prefix: bytes, suffix: bytes = b"") -> bytes:
    return gzip_of(prefix, b"A", BOMB, suffix)


async def peak_memory(
    run: Callable[[], Awaitable[object]], expected: type[BaseException]
) -> tuple[int, BaseException]:
    """The peak of traced memory (bytes above the start) while ``run()`` raises
    ``expected``, and that error. A first, unmeasured run imports and caches what the
    path needs, so that only the body's own memory is measured."""
    with pytest.raises(expected):
        await run()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    try:
        with pytest.raises(expected) as info:
            await run()
        return tracemalloc.get_traced_memory()[1] - start, info.value
    finally:
        tracemalloc.stop()


def client_for(server: RawServer, **kwargs: Any) -> AsyncClient:
    return AsyncClient(
        KEY, base_url=server.url + "/v1", max_event_bytes=CAP, max_retries=0, **kwargs
    )


async def generate(client: AsyncClient, **params: Any) -> list[Any]:
    async with client, client.generate("a kite", model="gpt-image-2", **params) as stream:
        return [event async for event in stream]


# -- decompression bombs --------------------------------------------------------------


async def test_a_gzip_bomb_in_the_event_stream_stops_at_the_event_cap() -> None:
    wire = bomb(b"event: image_generation.partial_image\ndata: ")
    assert len(wire) < 100_000
    with RawServer(answer(200, {**SSE, "content-encoding": "gzip"}, wire)) as server:
        peak, error = await peak_memory(lambda: generate(client_for(server)), EventTooLargeError)
    assert isinstance(error, EventTooLargeError)
    assert error.limit == CAP
    assert peak < CAP + MB, f"peak {peak} bytes"


async def test_stacked_content_encoding_is_refused_before_decoding() -> None:
    wire = gzip_twice(b"data: " + b"A" * (16 * 1024 * 1024))
    with RawServer(answer(200, {**SSE, "content-encoding": "gzip, gzip"}, wire)) as server:
        peak, error = await peak_memory(lambda: generate(client_for(server)), ProtocolError)
    assert "stacked Content-Encoding 'gzip, gzip'" in str(error)
    assert "allowed" in str(error)
    assert peak < MB, f"peak {peak} bytes"


@pytest.mark.parametrize("coding", ["br", "zstd", "x-gzip", "compress"])
async def test_an_unknown_content_encoding_is_refused(coding: str) -> None:
    headers = {**SSE, "content-encoding": coding}
    with (
        RawServer(answer(200, headers, b"data: {}\n\n")) as server,
        pytest.raises(ProtocolError, match=f"'{coding}'.*allowed.*gzip"),
    ):
        await generate(client_for(server))


async def test_a_body_that_claims_gzip_and_is_not_is_a_protocol_error() -> None:
    body = b"event: x\ndata: {}\n\n"
    for headers, stream in ((SSE, True), (JSON, False)):
        with (
            RawServer(answer(200, {**headers, "content-encoding": "gzip"}, body)) as server,
            pytest.raises(ProtocolError, match="claims Content-Encoding 'gzip'"),
        ):
            await generate(client_for(server), stream=stream)


async def test_gzip_and_deflate_bodies_still_decode() -> None:
    events = [
        {"type": "image_generation.partial_image", "b64_json": "AAAA", "partial_image_index": 0},
        {"type": "image_generation.completed", "b64_json": "AAAA"},
    ]
    body = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    codings = {
        "gzip": zlib.compress(body, wbits=31),
        # two gzip members in a row are one gzip body (RFC 1952)
        "gzip ": zlib.compress(body[:30], wbits=31) + zlib.compress(body[30:], wbits=31),
        "deflate": zlib.compress(body),
        "deflate ": raw_deflate.compress(body) + raw_deflate.flush(),
        "identity": body,
    }
    for coding, wire in codings.items():
        headers = {**SSE, "content-encoding": coding.strip()}
        with RawServer(answer(200, headers, wire)) as server:
            got = await generate(client_for(server))
        assert [type(e) for e in got] == [PartialImage, Completed], coding


async def test_a_gzip_bomb_as_a_non_streaming_body_stops_at_the_cap() -> None:
    wire = bomb(b'{"created": 1, "data": [{"b64_json": "', b'"}]}')
    with RawServer(answer(200, {**JSON, "content-encoding": "gzip"}, wire)) as server:
        peak, _ = await peak_memory(
            lambda: generate(client_for(server), stream=False), EventTooLargeError
        )
    assert peak < CAP + MB, f"peak {peak} bytes"


async def test_a_gzip_bomb_as_an_error_body_is_read_to_one_mib_only() -> None:
    wire = bomb(b'{"error": {"message": "', b'"}}')
    with RawServer(answer(400, {**JSON, "content-encoding": "gzip"}, wire)) as server:
        peak, error = await peak_memory(lambda: generate(client_for(server)), APIStatusError)
    assert isinstance(error, APIStatusError)
    assert error.status_code == 400
    assert len(str(error)) <= ttstream._exceptions.MAX_MESSAGE_CHARS
    # At most 1 MiB is decoded; it is held twice while parsed (the bytes and their text).
    error_cap = 1024 * 1024
    assert peak < 2 * error_cap + MB, f"peak {peak} bytes"


async def test_a_gzip_bomb_in_fetch_image_stops_at_the_event_cap() -> None:
    wire = bomb(b"\x89PNG\r\n\x1a\n")
    with RawServer(answer(200, {"content-encoding": "gzip"}, wire)) as server:
        event = Completed(b64_json=None, operation="generation", url=server.url + "/img.png")
        async with client_for(server) as client:
            peak, _ = await peak_memory(lambda: client.fetch_image(event), EventTooLargeError)
    assert peak < CAP + MB, f"peak {peak} bytes"
