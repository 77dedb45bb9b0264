"""The clients compared: ttstream, httpx-sse + json + base64, the official openai SDK,
and the floors (the work no client can avoid, done on pre-split events).

Every peer is an object with ``async run(decode, tag=None, on_event=None) -> int``: it
streams one generation and answers the bytes it handled (decoded image bytes when
``decode``, else base64 characters, so that peers can be checked against each other).
``tag`` goes to the server as the request's ``user`` (the concurrency benchmark matches
server and client timestamps with it); ``on_event(index)`` is called as each event is
delivered to the consumer, before its image is decoded.
"""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import openai._base_client
from _workload import CHUNK, Stream
from httpx_sse import aconnect_sse
from openai import AsyncOpenAI

import ttstream
from ttstream import _base64
from ttstream._transport import http_client

# The HTTP stack the openai SDK runs on: httpx in older releases, its fork httpx2 (with
# httpcore2) in newer ones.
sdk_httpx: Any = getattr(openai._base_client, "httpx2", None) or openai._base_client.httpx
sdk_httpcore: Any = importlib.import_module(
    "httpcore2" if sdk_httpx.__name__ == "httpx2" else "httpcore"
)

OnEvent = Callable[[int], None] | None
PROMPT = "a lighthouse at dusk"
MODEL = "gpt-image-1"
BASE_URL = "http://bench.invalid/v1"  # in-memory runs never leave the process
SSE_HEADERS = {"content-type": "text/event-stream"}

TTSTREAM = "ttstream"  # as installed: decoded on arrival, pybase64
TT_STDLIB = "ttstream, stdlib base64"  # decoded on arrival, binascii
TT_AIOHTTP = "ttstream + aiohttp"  # decoded on arrival, pybase64, aiohttp's transport
TT_TODAY = "ttstream, text mode, stdlib"  # decode_images=False, binascii: the path before
HTTPX_SSE = "httpx-sse + json + base64"
OPENAI = "openai SDK"
FLOOR_JSON = "floor: json + base64 of pre-split events"
FLOOR_B64 = "floor: base64 alone"
FLOOR_READ = "floor: the body read + base64 per image"


class _Chunks(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class _Chunks2(sdk_httpx.AsyncByteStream):  # type: ignore[misc]
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


def mock_client(chunks: list[bytes], **kwargs: Any) -> httpx2.AsyncClient:
    """An httpx client whose every request is answered with ``chunks`` as an SSE body."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=SSE_HEADERS, stream=_Chunks(chunks))

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler), **kwargs)


def mock_client2(chunks: list[bytes], **kwargs: Any) -> Any:
    """The same for the openai SDK, on its own HTTP stack."""

    def handler(request: Any) -> Any:
        return sdk_httpx.Response(200, headers=SSE_HEADERS, stream=_Chunks2(chunks))

    return sdk_httpx.AsyncClient(transport=sdk_httpx.MockTransport(handler), **kwargs)


class TTStreamPeer:
    """``name`` picks the variant: the base64 backend and the decoder's mode."""

    def __init__(
        self, http: httpx2.AsyncClient, base_url: str = BASE_URL, name: str = TTSTREAM
    ) -> None:
        self.name = name
        self.http = http
        self.client = ttstream.AsyncClient("bench-key", base_url=base_url, http_client=http)
        self.backend = "binascii" if name in (TT_STDLIB, TT_TODAY) else _base64.codec().name
        self.decode_images = name != TT_TODAY

    async def run(self, decode: bool, tag: str | None = None, on_event: OnEvent = None) -> int:
        params = {} if tag is None else {"user": tag}
        handled = 0
        previous = _base64.set_backend(self.backend)
        try:
            stream = self.client.generate(PROMPT, model=MODEL, partial_images=3, **params)
            stream.decode_images = self.decode_images
            async with stream:
                async for index, event in _enumerate(stream):
                    if on_event is not None:
                        on_event(index)
                    handled += len(event.image_bytes) if decode else len(event.b64_json)
        finally:
            _base64.set_backend(previous.name)
        return handled

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.http.aclose()


class HttpxSSEPeer:
    name = HTTPX_SSE

    def __init__(self, http: httpx2.AsyncClient, base_url: str = BASE_URL) -> None:
        self.http = http
        self.url = f"{base_url}/images/generations"

    async def run(self, decode: bool, tag: str | None = None, on_event: OnEvent = None) -> int:
        body = {"prompt": PROMPT, "model": MODEL, "stream": True, "partial_images": 3}
        if tag is not None:
            body["user"] = tag
        handled = 0
        async with aconnect_sse(self.http, "POST", self.url, json=body) as source:
            async for index, sse in _enumerate(source.aiter_sse()):
                obj = json.loads(sse.data)
                if on_event is not None:
                    on_event(index)
                b64 = obj["b64_json"]
                handled += len(base64.b64decode(b64)) if decode else len(b64)
        return handled

    async def aclose(self) -> None:
        await self.http.aclose()


class OpenAIPeer:
    name = OPENAI

    def __init__(self, http: Any, base_url: str = BASE_URL) -> None:
        self.client = AsyncOpenAI(api_key="bench-key", base_url=base_url, http_client=http)

    async def run(self, decode: bool, tag: str | None = None, on_event: OnEvent = None) -> int:
        extra = {} if tag is None else {"user": tag}
        handled = 0
        stream = await self.client.images.generate(
            prompt=PROMPT, model=MODEL, stream=True, partial_images=3, **extra
        )
        async with stream:
            async for index, event in _enumerate(stream):
                if on_event is not None:
                    on_event(index)
                handled += len(base64.b64decode(event.b64_json)) if decode else len(event.b64_json)
        return handled

    async def aclose(self) -> None:
        await self.client.close()


class FloorJsonPeer:
    """json.loads + base64 of each event's data, already split out of the stream."""

    name = FLOOR_JSON

    def __init__(self, stream: Stream) -> None:
        self.datas = stream.datas

    async def run(self, decode: bool, tag: str | None = None, on_event: OnEvent = None) -> int:
        handled = 0
        for data in self.datas:
            b64 = json.loads(data)["b64_json"]
            handled += len(base64.b64decode(b64)) if decode else len(b64)
        return handled

    async def aclose(self) -> None:
        pass


class FloorBase64Peer:
    """base64 decoding of each image's b64_json, already out of its JSON."""

    name = FLOOR_B64

    def __init__(self, stream: Stream) -> None:
        self.b64s = stream.b64s

    async def run(self, decode: bool, tag: str | None = None, on_event: OnEvent = None) -> int:
        return sum(len(base64.b64decode(b64)) for b64 in self.b64s)

    async def aclose(self) -> None:
        pass


class FloorReadPeer:
    """The body read through the same mock transport (64 KiB chunks), then base64
    decoding of each image's b64_json, already out of its JSON: the work no client
    reading this body can avoid."""

    name = FLOOR_READ

    def __init__(self, http: httpx2.AsyncClient, stream: Stream) -> None:
        self.http = http
        self.b64s = stream.b64s

    async def run(self, decode: bool, tag: str | None = None, on_event: OnEvent = None) -> int:
        async with self.http.stream("POST", f"{BASE_URL}/images/generations") as response:
            async for _chunk in response.aiter_raw():
                pass
        return sum(len(base64.b64decode(b64)) for b64 in self.b64s)

    async def aclose(self) -> None:
        await self.http.aclose()


async def _enumerate(items: Any) -> AsyncIterator[tuple[int, Any]]:
    index = 0
    async for item in items:
        yield index, item
        index += 1


Peer = TTStreamPeer | HttpxSSEPeer | OpenAIPeer | FloorJsonPeer | FloorBase64Peer | FloorReadPeer


def in_memory_peers(stream: Stream, names: list[str], chunk: int = CHUNK) -> list[Peer]:
    """The peers ``names``, each over a mock transport that serves ``stream`` in chunks."""
    chunks = stream.chunks(chunk)
    make = {
        **{
            name: lambda name=name: TTStreamPeer(mock_client(chunks), name=name)
            for name in (TTSTREAM, TT_STDLIB, TT_TODAY)
        },
        HTTPX_SSE: lambda: HttpxSSEPeer(mock_client(chunks)),
        OPENAI: lambda: OpenAIPeer(mock_client2(chunks)),
        FLOOR_JSON: lambda: FloorJsonPeer(stream),
        FLOOR_B64: lambda: FloorBase64Peer(stream),
        FLOOR_READ: lambda: FloorReadPeer(mock_client(chunks), stream),
    }
    return [make[name]() for name in names]


def network_peer(name: str, base_url: str, connections: int) -> Peer:
    """A peer over real HTTP to ``base_url``, its pool sized for ``connections`` streams
    (httpx's default pool of 100 would queue a larger fan-out)."""
    if name in (TTSTREAM, TT_STDLIB, TT_TODAY, TT_AIOHTTP):
        limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
        make = http_client if name == TT_AIOHTTP else httpx2.AsyncClient
        return TTStreamPeer(make(limits=limits, timeout=600), base_url, name)
    if name == HTTPX_SSE:
        limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
        return HttpxSSEPeer(httpx2.AsyncClient(limits=limits, timeout=600), base_url)
    if name == OPENAI:
        limits = sdk_httpx.Limits(
            max_connections=connections, max_keepalive_connections=connections
        )
        return OpenAIPeer(sdk_httpx.AsyncClient(limits=limits, timeout=600), base_url)
    raise ValueError(name)
