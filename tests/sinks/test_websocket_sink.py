"""WebSocketSink: the frames a websocket client sees, through Starlette's TestClient (on
asyncio and trio) and over real loopback (uvicorn with wsproto, read with httpx-ws)."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import Any, Literal

import anyio
import httpx2
import pytest
from httpx2.websockets import AsyncWebSocketSession
from httpx2.websockets import WebSocketDisconnect as ClientDisconnect
from PIL import Image
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect
from wsproto.events import BytesMessage, TextMessage

import ttstream
from tests.support.uvicorn_thread import ServerThread
from ttstream import Completed, PartialImage, Reconnecting, StreamItem
from ttstream.emulator import EmulatorServer
from ttstream.sinks import MAX_FRAME_BYTES, SinkError, WebSocketSink, pump, serve_generations

SIZE = "64x48"
IMAGE_KEYS = {
    "type",
    "operation",
    "size",
    "quality",
    "background",
    "output_format",
    "created_at",
    "bytes",
    "media_type",
}
Source = Callable[[dict[str, Any]], AsyncIterable[StreamItem]]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=0.0) as server:
        yield server


@pytest.fixture(scope="module")
def generated(emulator: EmulatorServer) -> list[StreamItem]:
    """The items of one generation with two previews, fetched once."""

    async def collect() -> list[StreamItem]:
        async with ttstream.AsyncClient("emulator-key", base_url=emulator.base_url) as client:
            stream = client.generate("a kite", model="gpt-image-2", size=SIZE, partial_images=2)
            async with stream:
                return [item async for item in stream]

    return anyio.run(collect)


def from_emulator(emulator: EmulatorServer) -> Source:
    """Each websocket's request ``{"prompt": ...}`` becomes a generation."""

    async def source(request: dict[str, Any]) -> AsyncIterator[StreamItem]:
        async with ttstream.AsyncClient("emulator-key", base_url=emulator.base_url) as client:
            stream = client.generate(
                request["prompt"], model="gpt-image-2", size=SIZE, partial_images=2
            )
            async with stream:
                async for item in stream:
                    yield item

    return source


def listed(items: list[StreamItem], *, pause: float = 0.0) -> Source:
    async def source(request: dict[str, Any]) -> AsyncIterator[StreamItem]:
        for item in items:
            await anyio.sleep(pause)
            yield item

    return source


def websocket_app(
    source: Source, *, close_on_exit: bool, outcomes: list[object] | None = None
) -> Starlette:
    """``/ws``: accepts, reads one JSON request, pumps ``source(request)`` into a
    WebSocketSink. Without ``close_on_exit`` it then sends ``{"type": "done"}`` itself
    and closes. ``outcomes`` gets what ``pump`` returned or raised."""

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        request = await websocket.receive_json()
        sink = WebSocketSink(websocket, close_on_exit=close_on_exit)
        try:
            completed = await pump(source(request), sink)
        except Exception as exc:
            if outcomes is not None:
                outcomes.append(exc)
            return
        if outcomes is not None:
            outcomes.append(completed)
        if not close_on_exit:
            await websocket.send_json({"type": "done"})
            await websocket.close(code=1000)

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


def frames_through_testclient(
    app: Starlette, backend: Literal["asyncio", "trio"]
) -> tuple[list[str | bytes], int]:
    """Every data frame the client received, in order, and the close code."""
    frames: list[str | bytes] = []
    with TestClient(app, backend=backend) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"prompt": "a kite"})
        while True:
            message = ws.receive()
            if message["type"] == "websocket.close":
                return frames, message["code"]
            frames.append(message["text"] if "text" in message else message["bytes"])


def check_generation_frames(frames: list[str | bytes], items: list[StreamItem]) -> None:
    """Text then binary for each of 2 previews and the final image, matching ``items``."""
    assert [type(frame) for frame in frames] == [str, bytes] * 3
    metadata = [json.loads(frame) for frame in frames[::2]]
    images = frames[1::2]
    assert [m["type"] for m in metadata] == ["partial_image", "partial_image", "completed"]
    assert [m.get("index") for m in metadata] == [0, 1, None]
    assert set(metadata[0]) == IMAGE_KEYS | {"index"}
    assert set(metadata[2]) == IMAGE_KEYS | {"usage"}
    for meta, image, item in zip(metadata, images, items, strict=True):
        assert isinstance(item, PartialImage | Completed)
        assert isinstance(image, bytes)
        assert image == item.image_bytes
        assert meta["bytes"] == len(image)
        assert meta["media_type"] == "image/png"
        assert meta["operation"] == "generation"
        assert (meta["size"], meta["output_format"]) == (SIZE, "png")
        assert (meta["quality"], meta["background"]) == (item.quality, item.background)
        assert isinstance(meta["created_at"], int)
        opened = Image.open(io.BytesIO(image))
        assert (opened.format, opened.size) == ("PNG", (64, 48))
    final = items[2]
    assert isinstance(final, Completed)
    assert final.usage is not None
    usage = metadata[2]["usage"]
    assert usage["total_tokens"] == final.usage.total_tokens
    assert usage["input_tokens_details"]["text_tokens"] == (
        final.usage.input_tokens_details and final.usage.input_tokens_details.text_tokens
    )


def test_testclient_gets_metadata_then_image_per_event_then_close_1000(
    anyio_backend: Literal["asyncio", "trio"], emulator: EmulatorServer, generated: list[StreamItem]
) -> None:
    app = websocket_app(from_emulator(emulator), close_on_exit=True)
    frames, code = frames_through_testclient(app, anyio_backend)
    check_generation_frames(frames, generated)
    assert code == 1000


def test_without_close_on_exit_the_socket_stays_open_for_the_app(
    anyio_backend: Literal["asyncio", "trio"], generated: list[StreamItem]
) -> None:
    outcomes: list[object] = []
    app = websocket_app(listed(generated), close_on_exit=False, outcomes=outcomes)
    frames, code = frames_through_testclient(app, anyio_backend)
    check_generation_frames(frames[:-1], generated)
    assert json.loads(frames[-1]) == {"type": "done"}  # sent by the app after pump
    assert code == 1000
    assert outcomes == [[generated[-1]]]


def test_a_reconnecting_notice_is_one_json_frame(
    anyio_backend: Literal["asyncio", "trio"], generated: list[StreamItem]
) -> None:
    notice = Reconnecting(
        attempt=2, delay=1.5, last_event_id="7", regenerating=False, reason="read timeout"
    )
    app = websocket_app(listed([notice, generated[-1]]), close_on_exit=True)
    frames, code = frames_through_testclient(app, anyio_backend)
    assert frames[0] == (
        '{"type":"reconnecting","attempt":2,"delay":1.5,"regenerating":false,'
        '"reason":"read timeout"}'
    )
    assert [type(frame) for frame in frames[1:]] == [str, bytes]
    assert json.loads(frames[1])["type"] == "completed"
    assert code == 1000


def test_an_image_given_as_a_url_is_refused_before_anything_is_sent(
    anyio_backend: Literal["asyncio", "trio"],
) -> None:
    by_url = Completed(b64_json=None, url="https://example.test/i.png", operation="generation")
    outcomes: list[object] = []
    app = websocket_app(listed([by_url]), close_on_exit=True, outcomes=outcomes)
    frames, code = frames_through_testclient(app, anyio_backend)
    assert frames == []
    assert code == 1000  # close_on_exit still closes the socket
    [failure] = outcomes
    assert isinstance(failure, SinkError)
    [(_, cause)] = failure.failures
    assert isinstance(cause, ttstream.TTStreamError)
    assert "URL" in str(cause)


async def frames_until_closed(ws: AsyncWebSocketSession) -> tuple[list[str | bytes], int]:
    """Every data frame received, in order, and the server's close code (10 s at most)."""
    frames: list[str | bytes] = []
    with anyio.fail_after(10):
        while True:
            try:
                event = await ws.receive()
            except ClientDisconnect as closed:
                return frames, closed.code
            if isinstance(event, TextMessage | BytesMessage):
                frames.append(event.data if isinstance(event.data, str) else bytes(event.data))


@pytest.mark.anyio
async def test_frames_over_a_real_loopback_websocket(
    emulator: EmulatorServer, generated: list[StreamItem]
) -> None:
    app = websocket_app(from_emulator(emulator), close_on_exit=True)
    with ServerThread(app, ws="wsproto") as server:
        async with (
            httpx2.AsyncClient(base_url=server.url) as http,
            http.websocket("/ws", max_message_size_bytes=16 * 1024 * 1024) as ws,
        ):
            await ws.send_json({"prompt": "a kite"})
            frames, code = await frames_until_closed(ws)
    check_generation_frames(frames, generated)
    assert code == 1000


@pytest.mark.anyio
async def test_a_client_that_leaves_fails_the_sink_with_websocket_disconnect(
    generated: list[StreamItem],
) -> None:
    outcomes: list[object] = []
    slow = listed(generated * 4, pause=0.05)  # still sending when the client leaves
    app = websocket_app(slow, close_on_exit=True, outcomes=outcomes)
    with ServerThread(app, ws="wsproto") as server:
        async with (
            httpx2.AsyncClient(base_url=server.url) as http,
            http.websocket("/ws", max_message_size_bytes=16 * 1024 * 1024) as ws,
        ):
            await ws.send_json({"prompt": "a kite"})
            first = json.loads(await ws.receive_text(timeout=10))
            assert first["type"] == "partial_image"
        with anyio.fail_after(10):
            while not outcomes:  # noqa: ASYNC110 - the server thread appends it
                await anyio.sleep(0.01)
    [failure] = outcomes
    assert isinstance(failure, SinkError)
    [(sink, cause)] = failure.failures
    assert isinstance(sink, WebSocketSink)
    assert isinstance(cause, WebSocketDisconnect)
    assert sink.frames_sent < 2 * len(generated) * 4


def silent_websocket_peer(url: str) -> socket.socket:
    """A websocket client on a raw socket (RFC 6455, section 4.1): it opens ``/ws``, sends
    one masked text frame (the request), then never reads, as a browser tab that froze."""
    host, port = url.removeprefix("http://").split(":")
    peer = socket.create_connection((host, int(port)), timeout=10)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    peer.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += peer.recv(1)  # only the handshake's answer, byte by byte: no frame
    assert answer.startswith(b"HTTP/1.1 101"), answer
    payload = json.dumps({"prompt": "a kite"}).encode()
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    peer.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return peer


@pytest.mark.anyio
async def test_a_peer_that_stops_reading_fails_the_sink_with_a_send_timeout() -> None:
    # It was a bare TimeoutError from anyio; now ttstream's SendTimeoutError (still a
    # TimeoutError), after send_timeout and not later: the frozen tab never holds the
    # generation. Closing that socket (close_on_exit) waited for pump's cleanup bound and
    # failed the sink a second time; it now gives up after send_timeout too.
    image = os.urandom(1 << 20)  # incompressible: 1 MiB a frame
    items: list[StreamItem] = [
        PartialImage(b64_json=base64.b64encode(image).decode(), operation="generation", index=0)
    ] * 64
    outcomes: list[object] = []

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_json()
        sink = WebSocketSink(websocket, send_timeout=0.5, close_on_exit=True)
        try:
            outcomes.append(await pump(listed(items)(request={}), sink))
        except Exception as exc:
            outcomes.append(exc)

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    with ServerThread(app, ws="wsproto") as server:
        peer = silent_websocket_peer(server.url)
        try:
            with anyio.fail_after(20):
                while not outcomes:  # noqa: ASYNC110 - the server thread appends it
                    await anyio.sleep(0.01)
        finally:
            peer.close()
    [failure] = outcomes
    assert isinstance(failure, SinkError)
    [(sink, cause)] = failure.failures
    assert isinstance(cause, ttstream.SendTimeoutError)
    assert isinstance(cause, TimeoutError)
    assert cause.timeout == 0.5
    assert str(cause) == "the peer took no frame within send_timeout=0.5 s"
    assert isinstance(sink, WebSocketSink)
    assert 0 < sink.frames_sent < 2 * len(items)


# The websocket protocol (docs/live-previews.md): jobs, cut images, end and error frames,
# cancel, several generations on one socket.

BIG = "1024x1024"  # a PNG of several hundred KiB: cut into frames of 64 KiB


def protocol_app(
    emulator: EmulatorServer, *, fault: str | None = None, size: str = SIZE, **options: Any
) -> Starlette:
    """``/ws``: serve_generations, each job a generation of the emulator (with the
    ``X-Emulator-Fault`` ``fault`` on its requests)."""

    async def endpoint(websocket: WebSocket) -> None:
        headers = {} if fault is None else {"X-Emulator-Fault": fault}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            ttstream.AsyncClient(
                "emulator-key", base_url=emulator.base_url, http_client=http
            ) as client,
        ):

            def start(params: dict[str, Any]) -> ttstream.ImageStream:
                return client.generate(
                    params["prompt"], model="gpt-image-2", size=size, partial_images=2
                )

            await serve_generations(websocket, start, **options)

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


def read_job_frames(ws: Any, until_ends: int) -> dict[str, list[Any]]:
    """Reads until ``until_ends`` terminal frames came; returns each job's messages in
    order: headers as dicts, each image as the bytes of its binary frames joined, with
    the list of its frame sizes after it."""
    jobs: dict[str, list[Any]] = {}
    ended = 0
    while ended < until_ends:
        header = json.loads(ws.receive_text())
        messages = jobs.setdefault(header.get("job", ""), [])
        messages.append(header)
        if header["type"] in ("preview", "completed"):
            sizes = []
            for _ in range(header["frames"]):
                sizes.append(len(piece := ws.receive_bytes()))
                messages.append(piece)
            messages[len(messages) - len(sizes) :] = [b"".join(messages[-len(sizes) :]), sizes]
        if header["type"] in ("end", "error"):
            ended += 1
    return jobs


def test_two_jobs_on_one_socket_arrive_whole_cut_into_frames_and_end(
    anyio_backend: Literal["asyncio", "trio"], emulator: EmulatorServer
) -> None:
    app = protocol_app(emulator, size=BIG)
    with TestClient(app, backend=anyio_backend) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "start", "job": "one", "params": {"prompt": "a kite"}})
        ws.send_json({"type": "start", "job": "two", "params": {"prompt": "a boat"}})
        jobs = read_job_frames(ws, until_ends=2)
    assert set(jobs) == {"one", "two"}
    for job, messages in jobs.items():
        headers = messages[::3][:-1]
        images = messages[1::3]
        sizes = messages[2::3]
        assert [h["type"] for h in headers] == ["preview", "preview", "completed"]
        assert all(h["job"] == job for h in headers)
        assert messages[-1] == {"type": "end", "job": job, "images": 1}
        for header, image, frame_sizes in zip(headers, images, sizes, strict=True):
            assert header["bytes"] == len(image)
            assert header["frames"] == len(frame_sizes)
            assert max(frame_sizes) <= MAX_FRAME_BYTES
            assert frame_sizes[:-1] == [MAX_FRAME_BYTES] * (len(frame_sizes) - 1)
            opened = Image.open(io.BytesIO(image))
            assert (opened.format, opened.size) == ("PNG", (1024, 1024))
        assert len(sizes[-1]) > 1  # the final image is cut: it is over 64 KiB
        assert set(headers[0]) == IMAGE_KEYS | {"index", "job", "frames"}


def test_a_failed_generation_ends_its_job_with_one_error_frame(
    anyio_backend: Literal["asyncio", "trio"], emulator: EmulatorServer
) -> None:
    app = protocol_app(emulator, fault="error-nested")
    with TestClient(app, backend=anyio_backend) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "start", "job": "j", "params": {"prompt": "a kite"}})
        jobs = read_job_frames(ws, until_ends=1)
        # The socket stays open: the next job runs.
        ws.send_json({"type": "start", "job": "k", "params": {"prompt": "a kite"}})
        again = read_job_frames(ws, until_ends=1)
    [*_, last] = jobs["j"]
    assert last["type"] == "error"
    assert last["job"] == "j"
    assert "error-nested" in last["message"]
    assert [m["type"] for m in jobs["j"] if isinstance(m, dict)][-1] == "error"  # no end after
    assert again["k"][-1]["type"] == "error"


def test_bad_messages_are_answered_with_error_frames_and_the_socket_stays(
    anyio_backend: Literal["asyncio", "trio"], emulator: EmulatorServer
) -> None:
    app = protocol_app(emulator, fault="stall=30", max_jobs=1)
    with TestClient(app, backend=anyio_backend) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("not json")
        assert json.loads(ws.receive_text()) == {
            "type": "error",
            "message": "a message is a JSON object",
        }
        ws.send_json({"type": "dance"})
        assert "start" in json.loads(ws.receive_text())["message"]
        ws.send_json({"type": "start", "job": "", "params": {}})
        assert "job" in json.loads(ws.receive_text())["message"]
        ws.send_json({"type": "start", "job": "a", "params": []})
        assert json.loads(ws.receive_text())["message"] == '"params" must be a JSON object'
        ws.send_json({"type": "start", "job": "a", "params": {"prompt": "a kite"}})
        first = json.loads(ws.receive_text())
        assert (first["type"], first["job"]) == ("preview", "a")
        for _ in range(first["frames"]):
            ws.receive_bytes()
        ws.send_json({"type": "start", "job": "a", "params": {"prompt": "a kite"}})
        assert json.loads(ws.receive_text())["message"] == (
            "a job with this id is running on this socket"
        )
        ws.send_json({"type": "start", "job": "b", "params": {"prompt": "a kite"}})
        assert json.loads(ws.receive_text()) == {
            "type": "error",
            "job": "b",
            "message": "at most 1 generations run at once on one socket",
        }
        ws.send_json({"type": "cancel", "job": "a"})
        assert json.loads(ws.receive_text()) == {
            "type": "end",
            "job": "a",
            "images": 0,
            "cancelled": True,
        }


def wait_for_no_open_stream(emulator: EmulatorServer, limit: float) -> bool:
    """Whether the emulator's streams are all closed within ``limit`` seconds."""
    import time

    deadline = time.monotonic() + limit
    while emulator.stream_stats.open_streams and time.monotonic() < deadline:
        time.sleep(0.005)
    return emulator.stream_stats.open_streams == 0


def test_cancel_closes_the_api_stream_at_once(
    anyio_backend: Literal["asyncio", "trio"], emulator: EmulatorServer
) -> None:
    # The emulator stalls 30 s after the first preview: without the cancel, the stream
    # would stay open that long; it is closed well before (the bound is not a timing).
    app = protocol_app(emulator, fault="stall=30")
    with TestClient(app, backend=anyio_backend) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "start", "job": "j", "params": {"prompt": "a kite"}})
        first = json.loads(ws.receive_text())
        for _ in range(first["frames"]):
            ws.receive_bytes()
        assert emulator.stream_stats.open_streams == 1
        ws.send_json({"type": "cancel"})
        assert json.loads(ws.receive_text()) == {
            "type": "end",
            "job": "j",
            "images": 0,
            "cancelled": True,
        }
        assert wait_for_no_open_stream(emulator, 10)


@pytest.mark.anyio
async def test_a_browser_that_disconnects_has_its_api_streams_closed_at_once(
    emulator: EmulatorServer,
) -> None:
    app = protocol_app(emulator, fault="stall=30")
    with ServerThread(app, ws="wsproto") as server:
        async with (
            httpx2.AsyncClient(base_url=server.url) as http,
            http.websocket("/ws") as ws,
        ):
            for job in ("a", "b"):
                await ws.send_json({"type": "start", "job": job, "params": {"prompt": "x"}})
            seen = 0
            while seen < 2:  # both generations are running
                if isinstance(await ws.receive(timeout=10), TextMessage):
                    seen += 1
            assert emulator.stream_stats.open_streams == 2
        # The socket is closed here: both API streams close, long before the stall ends.
        assert await anyio.to_thread.run_sync(wait_for_no_open_stream, emulator, 10)


def test_a_failed_job_is_logged_with_the_key_redacted_from_its_traceback(
    anyio_backend: Literal["asyncio", "trio"], caplog: pytest.LogCaptureFixture
) -> None:
    # docs/logging.md: keys are redacted from every record. serve_generations logs an
    # application's failing start() with its traceback, whose text may quote the key
    # (a configuration echoed back, an exception of another library).
    key = "ws-logged-key-0123456789"

    async def endpoint(websocket: WebSocket) -> None:
        async with ttstream.AsyncClient(key, base_url="http://127.0.0.1:9"):  # registers it

            def start(params: dict[str, Any]) -> ttstream.ImageStream:
                raise RuntimeError(f"the upstream refused api_key={key} for {key}")

            await serve_generations(websocket, start)

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    with (
        caplog.at_level("ERROR"),
        TestClient(app, backend=anyio_backend) as client,
        client.websocket_connect("/ws") as ws,
    ):
        ws.send_json({"type": "start", "job": "j", "params": {}})
        jobs = read_job_frames(ws, until_ends=1)
    assert jobs["j"][-1]["message"] == "the server failed to run this generation"
    [record] = [r for r in caplog.records if r.name.startswith("ttstream")]
    assert "RuntimeError: the upstream refused" in caplog.text  # the traceback is there
    assert key not in caplog.text
    assert key not in logging.Formatter().format(record)


def test_settings_are_checked() -> None:
    with pytest.raises(ttstream.ValidationError, match="max_frame_bytes"):
        WebSocketSink(None, job="j", max_frame_bytes=10)  # type: ignore[arg-type]
    with pytest.raises(ttstream.ValidationError, match="job"):
        WebSocketSink(None, job="")  # type: ignore[arg-type]
    with pytest.raises(ttstream.ValidationError, match="send_timeout"):
        WebSocketSink(None, send_timeout=0)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_reasons_and_errors_reach_the_browser_redacted() -> None:
    key = "sk-" + "k" * 40
    sent: list[str] = []

    class Socket:
        async def send_text(self, text: str) -> None:
            sent.append(text)

    sink = WebSocketSink(Socket(), job="j")  # type: ignore[arg-type]
    notice = Reconnecting(
        attempt=1, delay=0.5, last_event_id="", regenerating=False, reason=f"echo {key}"
    )
    await sink.send(notice)
    await sink.fail(ttstream.APIConnectionError(f"Authorization: Bearer {key}"))
    assert len(sent) == 2
    assert all(key not in text for text in sent)
    assert json.loads(sent[0])["reason"] == "echo [REDACTED]"
    assert json.loads(sent[1])["type"] == "error"


def test_a_key_a_server_echoes_in_any_field_never_reaches_the_socket(
    anyio_backend: Literal["asyncio", "trio"],
) -> None:
    key = "emulator-echoed-key-0123"
    client = ttstream.AsyncClient(key, base_url="http://127.0.0.1:9")  # registers the key
    png = base64.b64encode(b"\x89PNG not really").decode()
    fields = {"size": key, "quality": f"api_key={key}", "background": key, "output_format": key}
    usage = ttstream.Usage(input_tokens=1, extra={"note": key, key: [key]})
    items: list[StreamItem] = [
        ttstream.PartialImage(b64_json=png, index=0, operation="generation", **fields),
        Completed(b64_json=png, usage=usage, operation="generation", **fields),
    ]

    async def endpoint(websocket: WebSocket) -> None:
        await serve_generations(websocket, listed(items))

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    with TestClient(app, backend=anyio_backend) as http, http.websocket_connect("/ws") as ws:
        ws.send_json({"type": "start", "job": "k", "params": {}})
        texts = []
        while not texts or json.loads(texts[-1])["type"] not in ("end", "error"):
            message = ws.receive()
            if "text" in message:
                texts.append(message["text"])
    del client
    # (serve_generations' policy "latest" may skip the preview)
    assert [json.loads(text)["type"] for text in texts][-2:] == ["completed", "end"]
    assert all(key not in text for text in texts)


def test_a_job_whose_sink_refuses_an_image_ends_with_an_error_frame(
    anyio_backend: Literal["asyncio", "trio"],
) -> None:
    by_url = Completed(b64_json=None, url="https://example.test/i.png", operation="generation")

    async def endpoint(websocket: WebSocket) -> None:
        await serve_generations(websocket, listed([by_url]))

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    with TestClient(app, backend=anyio_backend) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "start", "job": "u", "params": {}})
        error = json.loads(ws.receive_text())
    assert (error["type"], error["job"]) == ("error", "u")
    assert "URL" in error["message"]
