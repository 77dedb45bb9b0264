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
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ttstream
from tests.support.base64_backends import NAMES, using
from ttstream import Completed, MalformedEventError, PartialImage, ServerSentEvent, SSEDecoder
from ttstream._jsonfast import loads_cutting
from ttstream.events import decoded_data, image_decoder, parse_event
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


def fast_loads(pieces: list[str]) -> Any:
    """What the Images events' JSON fast path makes of ``pieces`` (the object, or ``None``
    when it leaves the data to ``json.loads``)."""
    found = loads_cutting(pieces, "b64_json", keep=True)
    return None if found is None else found[0]


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
    fast = fast_loads(data_pieces(sse))
    assert fast is None or fast == expected
    assert outcome(sse) == outcome(plain(sse))


def test_fast_path_takes_a_plain_final_image_without_json_loads() -> None:
    data = json.dumps(image_data(usage={"total_tokens": 3}))
    (sse,) = decode(*split(f"event: x\ndata: {data}\n\n".encode(), 64 * KiB))
    assert fast_loads(data_pieces(sse)) == json.loads(data)
    event = parse_event(sse)
    assert isinstance(event, Completed)
    assert event.b64_json == B64
    assert event.image_bytes == base64.b64decode(B64)


def test_a_control_character_in_the_image_is_still_malformed_json() -> None:
    data = '{"type":"image_generation.completed","b64_json":"' + B64 + '\x1f"}'
    (sse,) = decode(*split(f"data: {data}\n\n".encode(), 64 * KiB))
    assert fast_loads(data_pieces(sse)) is None
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
    if members[1:] and draw(st.booleans()):  # another key again, maybe across the image
        key = draw(st.sampled_from([k for k, _ in members if k != '"b64_json"'] or ['"a"']))
        value = json.dumps(draw(_values))
        members.insert(draw(st.integers(0, len(members))), (key, value))
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
    fast = fast_loads(pieces)
    assert fast is None or (fast == expected and list(fast) == list(expected))


@settings(max_examples=200, deadline=None)
@given(text=image_objects(), cuts=st.lists(st.integers(0, 250_000), max_size=6))
def test_an_image_line_decoded_on_arrival_holds_what_json_loads_gives(
    text: str, cuts: list[int]
) -> None:
    text = text.replace("\n", " ").replace("\r", "\t")  # one data line: JSON whitespace only
    try:
        expected: Any = json.loads(text)
    except ValueError:
        expected = None
    raw = f"data: {text}\n\n".encode("utf-8", "surrogatepass")
    bounds = sorted({0, len(raw), *(c for c in cuts if c < len(raw))})
    decoder = image_decoder()
    (sse,) = [e for a, b in itertools.pairwise(bounds) for e in decoder.feed(raw[a:b])]
    decoded = decoded_data(sse)
    if decoded is None:
        assert sse.data == text  # the text as it came
        return
    assert expected is not None
    members = {
        key: base64.b64encode(value).decode() if key == decoded.key else value
        for key, value in decoded.members.items()
    }
    assert members == expected
    assert list(members) == list(expected)


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

    class Chunks(httpx2.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in split(body, 64 * KiB):
                yield chunk

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Chunks())

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        client = ttstream.AsyncClient("key", base_url="http://test/v1", http_client=http)
        got = [event async for event in client.generate("p", partial_images=2)]
    assert [type(e) for e in got] == [PartialImage, PartialImage, Completed]
    assert [e.image_bytes for e in got] == images
    assert got[2].usage is not None
    assert got[2].usage.total_tokens == 9


# -- image_decoder(): decoded as it arrives, equal to the plain path ----------------------

IMG = random.Random(11).randbytes(300)
SMALL = base64.b64encode(IMG).decode()  # 400 chars: cheap at 1-byte chunks
HEAD = '{"type":"image_generation.completed","b64_json":"'
TAIL = '","size":"1x1","usage":{"total_tokens":3}}'


@pytest.fixture(params=NAMES, autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[None]:
    with using(request.param):
        yield


def described(sse: ServerSentEvent) -> Any:
    """Everything a consumer can see of one event: its fields, what parse_event makes of
    it, the image's bytes and base64, or the errors raised."""
    fields = (sse.event, sse.data, sse.id, sse.retry)
    try:
        event = parse_event(sse)
    except ttstream.TTStreamError as exc:
        return fields, type(exc), str(exc)
    if event is None:
        return fields, None
    try:
        image: Any = event.image_bytes
    except ttstream.TTStreamError as exc:
        image = type(exc), str(exc)
    return fields, type(event), event, event.b64_json, image, repr(event)


def stream_outcome(raw: bytes, chunk: int, *, decode_images: bool, limit: int = 1 << 20) -> Any:
    decoder = image_decoder(limit) if decode_images else SSEDecoder(limit)
    seen: list[Any] = []
    try:
        for part in split(raw, chunk):
            seen += [described(sse) for sse in decoder.feed(part)]
        decoder.close()
    except ttstream.EventTooLargeError as exc:
        seen.append(str(exc))
    return seen


def fast_events(raw: bytes, chunk: int) -> list[ServerSentEvent]:
    decoder = image_decoder()
    return [sse for part in split(raw, chunk) for sse in decoder.feed(part)]


CHUNKS = [1, 3, 7, 1 << 20]
CLEAN = [
    HEAD + SMALL + TAIL,
    HEAD + SMALL + '"}',
    ' \t{ "type" : "image_generation.partial_image" ,"partial_image_index": 0, "x":[1,{"y":'
    'null}], "n": -1.5e3,"b64_json" :\t"' + SMALL + '" , "z": "\\u00e9" }  ',
    '{"revised_prompt":"say \\"hi\\"","type":"image_generation.completed","b64_json":"'
    + SMALL
    + '","note":"café"}',  # an escape before, non-ASCII after: both fine
    HEAD + SMALL[:-4] + "QQ==" + TAIL,  # padded
    HEAD + SMALL[:-4] + "QUI=" + TAIL,
    HEAD + TAIL,  # empty: malformed, on both paths alike
    '{"type":"response.image_generation_call.partial_image","partial_image_b64":"'
    + SMALL
    + '","partial_image_index":0}',
    '{"b64_json":1,"type":"image_generation.completed"}',  # not a string: json decides
]
DOUBTFUL = [
    HEAD + SMALL[:100] + "\\/" + SMALL[100:] + TAIL,  # an escape
    HEAD + SMALL[:100] + "\\u0041" + SMALL[101:] + TAIL,
    HEAD + SMALL[:100] + "é" + SMALL[101:] + TAIL,  # non-ASCII
    HEAD + SMALL[:100] + "\x01" + SMALL[101:] + TAIL,  # a control character
    HEAD + SMALL[:101] + "\t" + SMALL[101:] + TAIL,
    HEAD + SMALL[:100] + "\r" + SMALL[100:] + TAIL,  # a CR: a line end inside the value
    HEAD + SMALL[:100] + "QQ==" + SMALL[100:] + TAIL,  # padding in the middle
    HEAD + SMALL[:-4] + "QR==" + TAIL,  # non-canonical bits under the padding
    HEAD + SMALL[:-4] + "Q===" + TAIL,
    HEAD + SMALL[:-2] + TAIL,  # not a multiple of 4
    HEAD + SMALL + '","b64_json":"QUJD"}',  # the key twice
    '{"type":"image_generation.completed","b64_json":"QUJD","b64_json":"' + SMALL + '"}',
    HEAD + SMALL + '",}',  # a trailing comma
    HEAD + SMALL + '"} {}',  # extra data
    HEAD + SMALL + '"',  # unterminated object
    HEAD + SMALL,  # unterminated string
    HEAD + SMALL + '","n":01}',
    "\ufeff" + HEAD + SMALL + TAIL,  # a BOM inside the data
    '["' + SMALL + '"]',
    "{" + '"a":' * 3 + "1" + HEAD[1:] + SMALL + TAIL,
]
# Decoded on arrival too, and still exactly what json.loads gives.
LOOKALIKES = [
    '{"x":{"b64_json":"' + SMALL + '"},"type":"image_generation.completed","b64_json":"QQ=="}',
    '{"b64_jsonx":"' + SMALL + '","type":"image_generation.completed","b64_json":"QQ=="}',
    '{"\\"b64_json":"' + SMALL + '","type":"image_generation.completed","b64_json":"QQ=="}',
    '{"type":"error","b64_json":"' + SMALL + '","message":"boom"}',
    # a member repeated across the image: the later value, in the first place
    '{"a":1,"b64_json":"' + SMALL + '","c":3,"a":2,"c":4}',
    '{"a":1,"type":"image_generation.completed","b64_json":"' + SMALL + '","a":[2]}',
    # error events without a message: the error quotes the object, its image as text
    '{"type":"error","b64_json":"' + SMALL + '"}',
    '{"b64_json":"' + SMALL + '","error":{}}',
]


def frame(data: str, eol: str = "\n") -> bytes:
    return f"event: image_generation.completed{eol}id: 4{eol}data: {data}{eol}{eol}".encode(
        "utf-8", "surrogatepass"
    )


@pytest.mark.parametrize("data", CLEAN + LOOKALIKES + DOUBTFUL)
@pytest.mark.parametrize("chunk", CHUNKS)
def test_decoding_on_arrival_gives_what_the_plain_path_gives(data: str, chunk: int) -> None:
    raw = frame(data)
    assert stream_outcome(raw, chunk, decode_images=True) == stream_outcome(
        raw, 1 << 20, decode_images=False
    )


@pytest.mark.parametrize("data", CLEAN[:-1] + LOOKALIKES)
@pytest.mark.parametrize("chunk", CHUNKS)
def test_clean_images_are_decoded_on_arrival(data: str, chunk: int) -> None:
    (sse,) = fast_events(frame(data), chunk)
    decoded = decoded_data(sse)
    assert decoded is not None
    obj = json.loads(data)
    assert decoded.image == base64.b64decode(obj[decoded.key])
    assert list(decoded.members) == list(obj)
    assert {k: v for k, v in decoded.members.items() if k != decoded.key} == {
        k: v for k, v in obj.items() if k != decoded.key
    }
    assert sse.data == data  # the text, rebuilt


@pytest.mark.parametrize("data", DOUBTFUL)
def test_anything_doubtful_stays_text(data: str) -> None:
    for sse in fast_events(frame(data), 5):
        assert decoded_data(sse) is None


@pytest.mark.parametrize("eol", ["\r\n", "\r"])
@pytest.mark.parametrize("chunk", [1, 3, 64, 1 << 20])
def test_line_endings_and_a_bom_do_not_change_the_outcome(eol: str, chunk: int) -> None:
    raw = b"\xef\xbb\xbf" + frame(HEAD + SMALL + TAIL, eol) + frame(DOUBTFUL[0], eol)
    fast = stream_outcome(raw, chunk, decode_images=True)
    assert fast == stream_outcome(raw, 1 << 20, decode_images=False)
    assert len(fast) == 2
    assert decoded_data(fast_events(raw, chunk)[0]) is not None


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_several_data_lines_and_other_fields(chunk: int) -> None:
    raw = (
        b"retry: 10\ndata: " + (HEAD + SMALL).encode() + b'"\ndata: }\n\n'  # JSON on two lines
        b"data: x\ndata: " + (HEAD + SMALL + TAIL).encode() + b"\n\n"  # an image line second
        b": comment\nevent: error\ndata: not json\n\n"
        b"data: : PING\n\n"
    )
    fast = stream_outcome(raw, chunk, decode_images=True)
    assert fast == stream_outcome(raw, 1 << 20, decode_images=False)
    assert len(fast) == 4
    assert all(decoded_data(sse) is None for sse in fast_events(raw, chunk))


@pytest.mark.parametrize("limit", [len(SMALL) - 10, len(SMALL) + 60, len(SMALL) + 200])
@pytest.mark.parametrize("chunk", [1, 64, 1 << 20])
def test_max_event_bytes_holds_on_the_fast_path(limit: int, chunk: int) -> None:
    raw = frame(HEAD + SMALL + TAIL) * 2
    fast = stream_outcome(raw, chunk, decode_images=True, limit=limit)
    assert fast == stream_outcome(raw, chunk, decode_images=False, limit=limit)


def test_a_decoded_event_equals_the_text_one_and_costs_nothing_to_read() -> None:
    (sse,) = fast_events(frame(HEAD + B64 + TAIL), 64 * KiB)
    event = parse_event(sse)
    text_event = parse_event(plain(sse))
    assert isinstance(event, Completed)
    assert event == text_event
    assert event.image_bytes is event.image_bytes  # held, not decoded per access
    assert event.b64_json == B64
    assert repr(event) == repr(text_event)
    assert "b64_json=<" in repr(event)
    assert f"{len(B64)} base64 chars" in repr(event)
    assert "decoded" in repr(sse)


def test_events_can_still_be_built_from_text() -> None:
    event = Completed(b64_json="QUJD", operation="generation")
    assert (event.image_bytes, event.b64_json) == (b"ABC", "QUJD")
    assert attrs_evolve(event, b64_json="QQ==").image_bytes == b"A"
    assert Completed(b64_json=None, operation="edit", url="http://x").b64_json is None


def attrs_evolve(event: Completed, **changes: Any) -> Completed:
    import attrs

    return attrs.evolve(event, **changes)


_corruptions = st.sampled_from(["\\", '"', "=", "é", "\x00", "\r", "\n", "}", ",", " ", "\ud800"])


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    image=st.binary(min_size=0, max_size=120),
    extra=st.dictionaries(st.sampled_from(["size", "n", "b64_json", "x"]), _values, max_size=2),
    before=st.booleans(),
    corrupt=st.lists(st.tuples(st.integers(0, 400), _corruptions), max_size=2),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_any_split_and_corruption_gives_the_plain_outcome(
    image: bytes,
    extra: dict[str, Any],
    before: bool,
    corrupt: list[tuple[int, str]],
    cuts: list[int],
) -> None:
    members = {"type": "image_generation.partial_image", "partial_image_index": 0}
    b64 = base64.b64encode(image).decode()
    obj = {**extra, **members, "b64_json": b64} if before else {**members, "b64_json": b64, **extra}
    text = json.dumps(obj, separators=(",", ":"))
    for at, char in corrupt:
        text = text[:at] + char + text[at:]
    raw = frame(text)
    bounds = sorted({0, len(raw), *(c for c in cuts if c < len(raw))})
    decoder = image_decoder()
    fast = [described(e) for a, b in itertools.pairwise(bounds) for e in decoder.feed(raw[a:b])]
    assert fast == stream_outcome(raw, 1 << 20, decode_images=False)


@pytest.mark.parametrize(
    "data", [CLEAN[0], CLEAN[4], DOUBTFUL[0], DOUBTFUL[5], DOUBTFUL[6], DOUBTFUL[7]]
)
def test_every_split_near_the_string_end_gives_the_plain_outcome(data: str) -> None:
    """Whole chunks inside the string are decoded without searching them for line ends or
    quotes; a chunk that holds one, anywhere (its last bytes included), is not."""
    raw = frame(data) + frame(CLEAN[1])
    expected = stream_outcome(raw, 1 << 20, decode_images=False)
    for cut in range(len(raw) - 1):
        for second in (cut + 1, cut + 2, cut + 3, cut + 5, cut + 9):
            decoder = image_decoder()
            parts = [raw[:cut], raw[cut:second], raw[second:]]
            assert [described(e) for p in parts for e in decoder.feed(p)] == expected
