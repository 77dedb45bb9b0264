"""The fast paths for multi-megabyte events (benchmarks/RESULTS.md): an event whose data
line arrived split stays in pieces (``data_pieces``), and ``parse_event`` slices a long
``b64_json`` out of the JSON instead of scanning it. Both must give exactly what the
plain path gives: ``"".join`` of the pieces, and ``json.loads`` of the data, errors
included."""

from __future__ import annotations

import base64
import itertools
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ttstream
from ttstream import Completed, MalformedEventError, PartialImage, ServerSentEvent, SSEDecoder
from ttstream.events import _fast_loads, parse_event
from ttstream.sse import data_pieces

KiB = 1024
B64 = base64.b64encode(random.Random(7).randbytes(150 * KiB)).decode()  # 200 KiB of base64


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)] + decoder.close()


def split(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def outcome(sse: ServerSentEvent) -> Any:
    """What parse_event makes of ``sse``: the event's fields, or the error raised."""
    try:
        event = parse_event(sse)
    except ttstream.TTStreamError as exc:
        return type(exc), str(exc)
    return event if event is None else (type(event), event)


def plain(sse: ServerSentEvent) -> ServerSentEvent:
    """The same event with its data as one string (the slow paths)."""
    return ServerSentEvent(event=sse.event, data=sse.data, id=sse.id, retry=sse.retry)


# -- SSEDecoder keeps a split line in pieces ---------------------------------------------


def test_a_split_data_line_stays_in_pieces_until_data_is_read() -> None:
    raw = b"event: image_generation.completed\ndata: " + B64.encode() + b"\n\n"
    (event,) = decode(*split(raw, 64 * KiB))
    assert isinstance(event, ServerSentEvent)
    pieces = data_pieces(event)
    assert len(pieces) > 1
    assert "".join(pieces) == B64
    assert event.data == B64  # joined on first use...
    assert data_pieces(event) == (B64,)  # ...and then held once, as one string
    assert (event.event, event.id, event.retry) == ("image_generation.completed", "", None)


def test_an_event_of_short_lines_is_a_plain_event() -> None:
    (event,) = decode(b"data: a\ndata: b\n\n")
    assert data_pieces(event) == ("a\nb",)
    assert data_pieces(ServerSentEvent(data="x")) == ("x",)


@pytest.mark.parametrize("chunk", [1000, 64 * KiB, 100_000])
def test_long_and_short_lines_of_one_event_join_with_lf(chunk: int) -> None:
    lines = ["short", B64, "", B64[:70_000], "end"]
    raw = b"id: 7\n" + b"".join(b"data: " + line.encode() + b"\n" for line in lines) + b"\n"
    (event,) = decode(*split(raw, chunk))
    assert "".join(data_pieces(event)) == "\n".join(lines)
    assert event.data == "\n".join(lines)
    assert (event.event, event.id) == ("message", "7")


# -- parse_event's fast path equals json.loads -----------------------------------------


def image_data(b64: str = B64, **fields: Any) -> dict[str, Any]:
    return {"type": "image_generation.completed", "b64_json": b64, "size": "1024x1024", **fields}


@pytest.mark.parametrize(
    "data",
    [
        json.dumps(image_data()),
        json.dumps(image_data(), separators=(",", ":")),
        json.dumps(image_data(), indent=2),
        # JSON whitespace everywhere it may go, and keys in other orders
        ' \r\n\t{ \n"b64_json" \t:\r\n "' + B64 + '" ,\n "type":"image_generation.completed" }\n ',
        '{"size":"1x1","type":"image_generation.partial_image","partial_image_index":0,'
        '"b64_json":"' + B64 + '"}',
        # the key twice: the last one wins, as in json.loads
        '{"type":"image_generation.completed","b64_json":"' + B64 + '","b64_json":"QUJD"}',
        '{"type":"image_generation.completed","b64_json":"QUJD","b64_json":"' + B64 + '"}',
        # look-alikes before the real key
        '{"x":{"b64_json":"QQ=="},"type":"image_generation.completed","b64_json":"' + B64 + '"}',
        '{"\\"b64_json":"QQ==","y":"\\"b64_json\\": \\"","type":"image_generation.completed",'
        '"b64_json":"' + B64 + '"}',
        # escapes inside the value: json.loads decides
        json.dumps(image_data(B64[:1000] + "\\/" + B64[1000:])),
        '{"type":"image_generation.completed","b64_json":"' + B64[:500] + "\\u0041" + B64 + '"}',
        # a value that is not a string
        '{"type":"image_generation.completed","b64_json":' + "1" * 70_000 + "}",
        '{"type":"image_generation.completed","b64_json":["' + B64 + '"]}',
        # not JSON: a control character, a trailing comma, extra data, a BOM, unterminated
        '{"type":"image_generation.completed","b64_json":"' + B64[:9] + "\t" + B64 + '"}',
        '{"type":"image_generation.completed","b64_json":"' + B64 + '\x00"}',
        '{"type":"image_generation.completed","b64_json":"' + B64 + '",}',
        '{"type":"image_generation.completed","b64_json":"' + B64 + '"} {}',
        '\ufeff{"type":"image_generation.completed","b64_json":"' + B64 + '"}',
        '{"type":"image_generation.completed","b64_json":"' + B64,
        '{"type":"image_generation.completed","b64_json":"' + B64 + '"',
        '{"type":"image_generation.completed" "b64_json":"' + B64 + '"}',
        '{"type":"image_generation.completed","b64_json":"' + B64 + '","n":01}',
        '["' + B64 + '"]',
        " " * 70_000,
    ],
)
@pytest.mark.parametrize("chunk", [None, 7, 64 * KiB])
def test_fast_path_gives_exactly_what_json_loads_gives(data: str, chunk: int | None) -> None:
    try:
        expected: Any = json.loads(data)
    except ValueError:
        expected = ValueError
    sse = ServerSentEvent(event="image_generation.completed", data=data)
    if chunk is not None:  # through the decoder, so the data arrives in pieces
        raw = b"event: image_generation.completed\ndata: " + data.encode() + b"\n\n"
        (sse,) = decode(*split(raw, chunk))
    fast = _fast_loads(data_pieces(sse))
    assert fast is None or fast == expected
    assert outcome(sse) == outcome(plain(sse))


def test_fast_path_takes_a_plain_final_image_without_json_loads() -> None:
    data = json.dumps(image_data(usage={"total_tokens": 3}))
    (sse,) = decode(*split(f"event: x\ndata: {data}\n\n".encode(), 64 * KiB))
    assert _fast_loads(data_pieces(sse)) == json.loads(data)
    event = parse_event(sse)
    assert isinstance(event, Completed)
    assert event.b64_json == B64
    assert event.image_bytes == base64.b64decode(B64)


def test_a_control_character_in_the_image_is_still_malformed_json() -> None:
    data = '{"type":"image_generation.completed","b64_json":"' + B64 + '\x1f"}'
    (sse,) = decode(*split(f"data: {data}\n\n".encode(), 64 * KiB))
    assert _fast_loads(data_pieces(sse)) is None
    with pytest.raises(MalformedEventError, match="data is not JSON"):
        parse_event(sse)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False),
    st.text(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
_whitespace = st.text(alphabet=" \t\n\r", max_size=2)


@st.composite
def image_objects(draw: st.DrawFn) -> str:
    """JSON text of an object with a long b64_json among other members, in any order and
    spacing; sometimes escaped, duplicated or broken."""
    b64 = B64[: draw(st.integers(70_000, len(B64)))]
    if draw(st.integers(0, 4)) == 0:  # an escape, a control character or a quote
        at = draw(st.integers(0, len(b64)))
        b64 = (
            b64[:at]
            + draw(st.sampled_from(["\\/", "\\u0041", "\\\\", "\t", "\x01", '\\"']))
            + b64[at:]
        )
    members = [
        (json.dumps(key), json.dumps(value))
        for key, value in draw(st.dictionaries(st.text(max_size=10), _values, max_size=4)).items()
    ]
    members.insert(draw(st.integers(0, len(members))), ('"b64_json"', f'"{b64}"'))
    if draw(st.booleans()):  # the key again, before or after
        members.insert(draw(st.integers(0, len(members))), ('"b64_json"', json.dumps("QUJD")))
    parts = [
        draw(_whitespace) + key + draw(_whitespace) + ":" + draw(_whitespace) + value
        for key, value in members
    ]
    text = draw(_whitespace) + "{" + ",".join(p + draw(_whitespace) for p in parts) + "}"
    text += draw(_whitespace)
    if draw(st.integers(0, 5)) == 0:  # break it somewhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["", ",", "}", '"', "x", "\x00"])) + text[at + 1 :]
    return text


@settings(max_examples=300, deadline=None)
@given(text=image_objects(), cuts=st.lists(st.integers(0, 250_000), max_size=6))
def test_fast_path_equals_json_loads_for_any_object_and_any_pieces(
    text: str, cuts: list[int]
) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError:
        expected = ValueError
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    fast = _fast_loads(pieces)
    assert fast is None or (fast == expected and list(fast) == list(expected))


# -- end to end ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_stream_of_large_events_in_64_kib_chunks() -> None:
    images = [random.Random(n).randbytes(900 * KiB) for n in range(3)]
    events = [
        {
            "type": "image_generation.partial_image",
            "b64_json": base64.b64encode(images[0]).decode(),
            "partial_image_index": 0,
        },
        {
            "type": "image_generation.partial_image",
            "b64_json": base64.b64encode(images[1]).decode(),
            "partial_image_index": 1,
        },
        {
            "type": "image_generation.completed",
            "b64_json": base64.b64encode(images[2]).decode(),
            "usage": {"total_tokens": 9},
        },
    ]
    body = b"".join(
        f"event: {e['type']}\ndata: {json.dumps(e, separators=(',', ':'))}\n\n".encode()
        for e in events
    )

    class Chunks(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in split(body, 64 * KiB):
                yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Chunks())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = ttstream.AsyncClient("key", base_url="http://test/v1", http_client=http)
        got = [event async for event in client.generate("p", partial_images=2)]
    assert [type(e) for e in got] == [PartialImage, PartialImage, Completed]
    assert [e.image_bytes for e in got] == images
    assert got[2].usage is not None
    assert got[2].usage.total_tokens == 9
