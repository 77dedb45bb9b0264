"""The frames of SSERelay and the text frames of WebSocketSink: built by splicing the
event's base64 (never json.dumps of a multi-megabyte data URL), byte for byte what
json.dumps of the whole object gives, strict JSON, and always encodable."""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.base64_backends import NAMES, using
from ttstream import Completed, PartialImage, Reconnecting, StreamItem, parse_event
from ttstream._browser.frames import WRITE_CHUNK, Frame
from ttstream._browser.items import item_metadata, strict_json
from ttstream.events import image_decoder
from ttstream.sinks import SSERelay
from ttstream.sse import SSEDecoder

pytestmark = pytest.mark.anyio
IMAGE = random.Random(3).randbytes(100_000)
B64 = base64.b64encode(IMAGE).decode()


@pytest.fixture(params=NAMES, autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[None]:
    with using(request.param):
        yield


def todays_frame(event_id: int, item: StreamItem) -> bytes:
    """The frame as SSERelay built it before: json.dumps of the metadata and a data URL."""
    payload = item_metadata(item)
    if not isinstance(item, Reconnecting):
        if item.b64_json is not None:
            payload["image"] = f"data:{payload['media_type']};base64,{item.b64_json}"
        else:
            payload["image"] = getattr(item, "url", None)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event_id}\nevent: {payload['type']}\ndata: {body}\n\n".encode()


async def frames_of(relay: SSERelay) -> list[bytes]:
    """What a browser connecting after the end receives, one body part per frame."""
    bodies: list[bytes] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    await relay({"type": "http", "method": "GET", "headers": []}, receive, send)
    # The relay writes large frames in pieces: cut the whole body at the blank lines.
    parts = [part + b"\n\n" for part in b"".join(bodies).split(b"\n\n") if part]
    return parts[1:-1]  # without the retry line and the end frame


def events(decode_images: bool) -> list[PartialImage | Completed]:
    """Image events through the decoder, decoded on arrival or kept as text."""
    datas = [
        {"type": "image_generation.partial_image", "b64_json": B64, "partial_image_index": 0},
        {"type": "image_edit.completed", "b64_json": B64, "output_format": 'we"bp\\é'},
        {"type": "image_generation.completed", "b64_json": B64[:50] + "\\/" + B64[50:]},
        {"type": "image_generation.completed", "b64_json": "QUJD", "size": "é"},
    ]
    raw = b"".join(
        b"data: " + json.dumps(d, ensure_ascii=False).replace("\\\\/", "\\/").encode() + b"\n\n"
        for d in datas
    )
    decoder = image_decoder() if decode_images else SSEDecoder()
    found = [
        parse_event(sse)
        for i in range(0, len(raw), 65536)
        for sse in decoder.feed(raw[i : i + 65536])
    ]
    assert all(event is not None for event in found)
    return found  # type: ignore[return-value]


@pytest.mark.parametrize("decode_images", [True, False])
async def test_frames_are_byte_identical_to_json_dumps_of_the_data_url(decode_images: bool) -> None:
    items: list[StreamItem] = [
        *events(decode_images),
        Reconnecting(attempt=1, delay=0.5, last_event_id="3", regenerating=False, reason="x"),
        Completed(b64_json=None, operation="generation", url="https://example.invalid/a.png"),
    ]
    relay = SSERelay(replay=len(items))
    for item in items:
        await relay.send(item)
    await relay.aclose()
    frames = await frames_of(relay)
    assert frames == [todays_frame(n, item) for n, item in enumerate(items, 1)]
    for frame in frames:
        json.loads(frame.decode().split("data: ", 1)[1])


def with_usage(extra: dict[str, Any]) -> Completed:
    data = json.dumps(
        {
            "type": "image_generation.completed",
            "b64_json": "QUJD",
            "usage": {"input_tokens": 1, **extra},
        }
    )
    data = data.replace('"NAN"', "NaN").replace('"INF"', "-Infinity")
    (sse,) = SSEDecoder().feed(f"data: {data}\n\n".encode())
    event = parse_event(sse)
    assert isinstance(event, Completed)
    return event


async def test_nan_and_infinity_reach_browsers_as_null() -> None:
    event = with_usage({"cost": "NAN", "deep": {"x": ["INF", 1.5]}})
    assert event.usage is not None
    assert math.isnan(event.usage.extra["cost"])
    relay = SSERelay()
    await relay.send(event)
    await relay.aclose()
    (frame,) = await frames_of(relay)
    text = frame.decode()
    assert "NaN" not in text
    assert "Infinity" not in text
    usage = json.loads(text.split("data: ", 1)[1], parse_constant=pytest.fail)["usage"]
    assert usage == {"input_tokens": 1, "cost": None, "deep": {"x": [None, 1.5]}}
    assert json.loads(strict_json(item_metadata(event)))["usage"]["cost"] is None


async def test_a_lone_surrogate_does_not_break_send() -> None:
    data = (
        '{"type":"image_generation.completed","b64_json":"QUJD","size":"\\ud800x1",'
        '"usage":{"note":"caf\\u00e9"}}'
    )
    (sse,) = SSEDecoder().feed(f"data: {data}\n\n".encode())
    event = parse_event(sse)
    assert isinstance(event, Completed)
    assert event.size == "\ud800x1"
    relay = SSERelay()
    await relay.send(event)  # raised UnicodeEncodeError before
    await relay.aclose()
    (frame,) = await frames_of(relay)
    payload = json.loads(frame.decode("utf-8").split("data: ", 1)[1])
    assert payload["size"] == "\ud800x1"  # the same string, escaped
    assert payload["usage"] == {"note": "café"}
    assert payload["image"].endswith("QUJD")
    strict_json(item_metadata(event)).encode()  # the websocket's text frame encodes too


def relayed_ids(relay: SSERelay, last_event_id: bytes) -> list[str] | int:
    """The ids a viewer sending ``last_event_id`` gets, or the status when not 200."""
    parts: list[bytes] = []
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            parts.append(message["body"])

    scope = {"type": "http", "method": "GET", "headers": [(b"last-event-id", last_event_id)]}
    anyio.run(relay, scope, receive, send)
    if status != [200]:
        return status[0]
    return [event.id for event in SSEDecoder().feed(b"".join(parts))]


def ended_relay() -> SSERelay:
    relay = SSERelay()

    async def feed() -> None:
        for index in range(3):
            await relay.send(PartialImage(b64_json="QUJD", index=index, operation="generation"))
        await relay.send(Completed(b64_json="QUJD", operation="generation"))
        await relay.aclose()

    anyio.run(feed)
    return relay


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=5000),
        st.text("0123456789", min_size=1, max_size=5000).map(str.encode),
        st.sampled_from([b"0", b"1", b"5", b"6", b" 3 ", b"-1", b"+2", b"\xd9\xa1"]),
    )
)
def test_any_last_event_id_resumes_after_an_id_issued_or_starts_over(sent: bytes) -> None:
    relay = ended_relay()
    got = relayed_ids(relay, sent)
    everything = ["1", "2", "3", "4", "5"]
    text = sent.decode("latin-1").strip()
    if text in everything:  # an id this relay issued: what came after it
        assert got == (everything[int(text) :] or 204)
    else:  # anything else: from the start, never an error
        assert got == everything


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 3 * WRITE_CHUNK + 5))
def test_a_frames_pieces_are_its_bytes_cut_once(size: int) -> None:
    """SSERelay writes a frame from pieces cut once for every viewer: they join to the
    frame's bytes, each of WRITE_CHUNK bytes but the last, and the frame's bytes stay
    the same after the cut (the frame then holds only the pieces)."""
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = Frame(1, "message", data)
    pieces = frame.pieces()
    assert b"".join(pieces) == data
    assert all(len(piece) == WRITE_CHUNK for piece in pieces[:-1])
    assert len(pieces) == max(1, -(-size // WRITE_CHUNK))
    assert frame.pieces() is pieces
    assert frame.data == data


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 3 * WRITE_CHUNK), decoded=st.booleans())
def test_an_images_frame_is_made_in_pieces_of_the_chunk(size: int, decoded: bool) -> None:
    """frame_of makes an image's frame in its pieces (the base64 encoded or copied piece
    by piece, from the image bytes or the text): they join to json.dumps's frame, none
    is larger than WRITE_CHUNK, and only the first and the last two are smaller."""
    from ttstream._browser.frames import frame_of

    image = IMAGE[:size]
    b64 = base64.b64encode(image).decode()
    data = json.dumps({"type": "image_generation.completed", "b64_json": b64})
    (sse,) = (image_decoder() if decoded else SSEDecoder()).feed(f"data: {data}\n\n".encode())
    item = parse_event(sse)
    assert isinstance(item, Completed)
    pieces = frame_of(7, item).pieces()
    assert b"".join(pieces) == todays_frame(7, item)
    assert all(0 < len(piece) <= WRITE_CHUNK for piece in pieces)
    assert all(len(piece) == WRITE_CHUNK for piece in pieces[1:-2])


@pytest.mark.parametrize("head_bytes", [10, WRITE_CHUNK - 3, WRITE_CHUNK, 3 * WRITE_CHUNK + 7])
@pytest.mark.parametrize("text", ["QUFB" * 40_000, "é" * 100_000])
def test_spliced_pieces_stay_within_the_chunk(head_bytes: int, text: str) -> None:
    # a head of any length (cut too when longer than a piece), and a verbatim text that
    # is not ASCII (its characters are up to 4 bytes): no piece above WRITE_CHUNK
    from ttstream._browser.frames import _spliced
    from ttstream.events import InlineImage

    head = "h" * head_bytes
    payload = {"type": "x", "image": "data:image/png;base64,"}
    pieces = _spliced(head, payload, InlineImage(text, verbatim=True))
    whole = f"{head}{strict_json(payload)[:-2]}{text}" + '"}\n\n'
    assert b"".join(pieces) == whole.encode()
    assert all(0 < len(piece) <= WRITE_CHUNK for piece in pieces)
