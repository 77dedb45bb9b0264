"""SSEDecoder against the WHATWG rules (HTML, "Interpreting an event stream"; docs/sse.md)."""

from __future__ import annotations

import itertools
import random

import httpx2
import pytest
from httpx_sse import EventSource
from hypothesis import given, settings
from hypothesis import strategies as st

from ttstream import EventTooLargeError, ServerSentEvent, SSEDecoder


def decode(*chunks: bytes, decoder: SSEDecoder | None = None) -> list[ServerSentEvent]:
    decoder = decoder or SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


def as_tuples(events: list[ServerSentEvent]) -> list[tuple[str, str, str, int | None]]:
    return [(e.event, e.data, e.id, e.retry) for e in events]


# -- line endings ----------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_is_a_line_end(eol: bytes) -> None:
    stream = eol.join([b"event: a", b"data: 1", b"", b"data: 2", b"", b""])
    assert as_tuples(decode(stream)) == [("a", "1", "", None), ("message", "2", "", None)]


def test_mixed_line_endings_in_one_stream() -> None:
    assert [e.data for e in decode(b"data: a\r\ndata: b\rdata: c\n\r\n")] == ["a\nb\nc"]


def test_cr_at_end_of_chunk_ends_the_line_at_once() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\r") != []  # the lone CR is the blank line: dispatch now
    assert decoder.feed(b"\ndata: y\n\n")[0].data == "y"  # the LF of that CRLF is skipped


def test_lf_after_cr_across_chunks_is_not_a_second_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    # Were this LF a line of its own, it would be a blank line dispatching "x" now and
    # the next data would start a new event; instead the two data lines join.
    assert decoder.feed(b"\ndata: y\r") == []
    assert [e.data for e in decoder.feed(b"\r\n")] == ["x\ny"]


def test_cr_cr_is_two_line_ends() -> None:
    assert [e.data for e in decode(b"data: a\r\rdata: b\r\r")] == ["a", "b"]


# -- decoding --------------------------------------------------------------------------


def test_utf8_always_and_invalid_bytes_become_replacement_characters() -> None:
    assert decode("data: été ✓\n\n".encode())[0].data == "été ✓"
    assert decode(b"data: a\xffb\xc3\n\n")[0].data == "a\ufffdb\ufffd"


def test_multibyte_character_split_across_chunks() -> None:
    raw = "data: ✓\n\n".encode()
    assert decode(raw[:7], raw[7:8], raw[8:])[0].data == "✓"


def test_one_leading_bom_is_stripped() -> None:
    assert decode(b"\xef\xbb\xbfdata: x\n\n")[0].data == "x"


def test_bom_split_across_chunks_is_stripped() -> None:
    assert decode(b"\xef", b"\xbb", b"\xbfdata: x\n\n")[0].data == "x"


def test_only_one_bom_is_stripped() -> None:
    # A second BOM is part of the first line's field name, so "data" is not recognised.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n")[0].data == "y"


def test_a_bom_later_in_the_stream_is_kept() -> None:
    assert decode(b"data: \xef\xbb\xbfx\n\n")[0].data == "\ufeffx"


def test_a_prefix_of_a_bom_that_is_not_one_is_kept() -> None:
    assert decode(b"\xef", b"data: x\n\n") == []  # "\ufffddata" is an unknown field
    assert decode(b"\xefdata\n\ndata: y\n\n")[0].data == "y"


# -- fields ----------------------------------------------------------------------------


def test_comment_lines_are_ignored() -> None:
    assert as_tuples(decode(b": keep-alive\ndata: x\n: more\n\n")) == [("message", "x", "", None)]


def test_one_leading_space_of_a_value_is_dropped() -> None:
    assert decode(b"data:x\n\ndata: x\n\ndata:  x\n\n")[0].data == "x"
    assert [e.data for e in decode(b"data:x\n\ndata: x\n\ndata:  x\n\n")] == ["x", "x", " x"]


def test_a_line_without_colon_is_a_field_with_empty_value() -> None:
    assert [e.data for e in decode(b"data\n\n")] == [""]
    assert [e.data for e in decode(b"data\ndata\n\n")] == ["\n"]


def test_value_keeps_later_colons() -> None:
    assert decode(b'data: {"a": "b:c"}\n\n')[0].data == '{"a": "b:c"}'


def test_unknown_fields_are_ignored() -> None:
    assert as_tuples(decode(b"foo: bar\ndata: x\nDATA: y\ndata : z\n\n")) == [
        ("message", "x", "", None)
    ]


def test_event_type_defaults_to_message_and_resets_after_dispatch() -> None:
    events = decode(b"event: a\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n")
    assert [e.event for e in events] == ["a", "message", "message"]


def test_event_type_set_by_a_block_that_does_not_dispatch_is_reset() -> None:
    assert [e.event for e in decode(b"event: a\n\ndata: 1\n\n")] == ["message"]


def test_data_lines_join_with_lf_and_one_trailing_lf_is_dropped() -> None:
    assert decode(b"data: a\ndata:\ndata: b\ndata\n\n")[0].data == "a\n\nb\n"


# -- dispatch --------------------------------------------------------------------------


def test_no_dispatch_when_the_data_buffer_is_empty() -> None:
    assert decode(b"event: ping\n\nid: 3\n\nretry: 5\n\n\n\n") == []


def test_an_empty_data_field_still_dispatches() -> None:
    assert as_tuples(decode(b"data:\n\n")) == [("message", "", "", None)]


def test_last_event_id_persists_across_events() -> None:
    events = decode(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "1", "2"]


def test_an_empty_id_resets_the_last_event_id() -> None:
    decoder = SSEDecoder()
    assert [e.id for e in decode(b"id: 1\ndata: a\n\nid\ndata: b\n\n", decoder=decoder)] == [
        "1",
        "",
    ]
    assert decoder.last_event_id == ""


def test_an_id_set_without_dispatch_still_sets_the_last_event_id() -> None:
    decoder = SSEDecoder()
    assert decode(b"id: 7\n\ndata: x\n\n", decoder=decoder)[0].id == "7"
    assert decoder.last_event_id == "7"


def test_the_last_event_id_moves_only_at_the_blank_line() -> None:
    decoder = SSEDecoder()
    assert as_tuples(decoder.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b")) == [
        ("message", "a", "1", None)
    ]
    assert decoder.last_event_id == "1"  # event 2 is not whole yet
    decoder.close()  # the body was cut inside event 2
    assert decoder.last_event_id == "1"  # so a reconnection resumes after event 1
    assert [e.id for e in decode(b"data: b\n\n", decoder=decoder)] == ["1"]


def test_an_id_containing_nul_is_ignored() -> None:
    decoder = SSEDecoder()
    events = decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", decoder=decoder)
    assert [e.id for e in events] == ["1", "1"]
    assert decoder.last_event_id == "1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"1500", 1500),
        (b"0", 0),
        (b"007", 7),
        (b"", None),
        (b" 15", 15),  # the one leading space is dropped first
        (b"  15", None),
        (b"15 ", None),
        (b"-1", None),
        (b"+1", None),
        (b"1.5", None),
        (b"1_000", None),
        ("\u0661\u0662".encode(), None),  # Arabic-Indic digits are not ASCII digits
        ("\u00b2".encode(), None),  # superscript two: isdigit() but not ASCII
    ],
)
def test_retry_is_taken_only_from_ascii_digits(value: bytes, expected: int | None) -> None:
    decoder = SSEDecoder()
    events = decode(b"retry:" + value + b"\ndata: x\n\n", decoder=decoder)
    assert decoder.retry == expected
    assert events[0].retry == expected


def test_retry_persists_on_the_decoder_but_not_on_later_events() -> None:
    decoder = SSEDecoder()
    events = decode(b"retry: 10\ndata: a\n\ndata: b\n\n", decoder=decoder)
    assert [e.retry for e in events] == [10, None]
    assert decoder.retry == 10


# -- end of body -----------------------------------------------------------------------


@pytest.mark.parametrize("tail", [b"data: b\n", b"data: b", b"event: x\ndata: b\n"])
def test_a_pending_event_is_discarded_at_end_of_body(tail: bytes) -> None:
    assert [e.data for e in decode(b"data: a\n\n" + tail)] == ["a"]


def test_close_starts_a_new_body_and_keeps_id_and_retry() -> None:
    decoder = SSEDecoder()
    decode(b"id: 5\nretry: 100\ndata: a\n\ndata: half", decoder=decoder)
    assert (decoder.last_event_id, decoder.retry) == ("5", 100)
    # The next body (a reconnection) starts clean, strips its own BOM, keeps the id.
    events = decode(b"\xef\xbb\xbfdata: b\n\n", decoder=decoder)
    assert as_tuples(events) == [("message", "b", "5", None)]


# -- limits ----------------------------------------------------------------------------


def test_event_too_large_raises_before_buffering_past_the_limit() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    decoder.feed(b"data: " + b"x" * 90)
    with pytest.raises(EventTooLargeError) as info:
        decoder.feed(b"x" * 20)
    assert info.value.limit == 100
    assert info.value.size == 116
    assert "buffered=0 bytes" in repr(decoder)
    with pytest.raises(EventTooLargeError):  # the decoder stays failed
        decoder.feed(b"\n\n")


def test_event_limit_counts_all_data_lines_of_one_event() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"data: " + b"x" * 60 + b"\ndata: " + b"y" * 60 + b"\n")


def test_event_limit_resets_after_each_event() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    events = [e for _ in range(10) for e in decoder.feed(b"data: " + b"x" * 80 + b"\n\n")]
    assert len(events) == 10


def test_an_event_of_exactly_the_limit_passes() -> None:
    line = b"data: " + b"x" * 94
    assert len(decode(line + b"\n\n", decoder=SSEDecoder(max_event_bytes=100))) == 1


def test_events_completed_before_an_oversized_one_in_the_same_chunk_are_kept() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    chunk = b"data: a\n\ndata: b\n\ndata: " + b"x" * 200
    assert [e.data for e in decoder.feed(chunk)] == ["a", "b"]
    with pytest.raises(EventTooLargeError) as info:  # the next call raises
        decoder.feed(b"\n\n")
    assert info.value.limit == 100
    with pytest.raises(EventTooLargeError):
        decoder.close()
    with pytest.raises(EventTooLargeError):  # at once, with no data
        decoder.raise_failure()
    SSEDecoder(max_event_bytes=100).raise_failure()  # a decoder that has not failed


@pytest.mark.parametrize("chunk", [1, 7, 50, 1000])
def test_a_comment_line_past_the_limit_is_refused_however_it_is_split(chunk: int) -> None:
    raw = b"data: a\n\n:" + b"c" * 100 + b"\ndata: b\n\n"
    pieces = [raw[i : i + chunk] for i in range(0, len(raw), chunk)]
    with pytest.raises(EventTooLargeError) as info:
        decode(*pieces, decoder=SSEDecoder(max_event_bytes=100))
    assert info.value.size == 101
    assert as_tuples(decode(raw[:9] + b":" + b"c" * 99 + b"\n", decoder=SSEDecoder(100))) == [
        ("message", "a", "", None)
    ]


def test_max_event_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_event_bytes"):
        SSEDecoder(max_event_bytes=0)


@pytest.mark.parametrize("chunk", [1 << 20, 1024])
def test_an_event_repr_shows_the_length_of_long_data(chunk: int) -> None:
    raw = b"id: 7\ndata: " + b"A" * 300_000 + b"\n\n"
    [event] = decode(*(raw[i : i + chunk] for i in range(0, len(raw), chunk)))
    assert repr(event) == "ServerSentEvent(event='message', data=<300000 chars>, id='7')"
    [short] = decode(b"data: hi\n\n")
    assert repr(short) == "ServerSentEvent(event='message', data='hi')"


def test_repr_does_not_print_data() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: secret-payload")
    assert "secret" not in repr(decoder)


# -- properties ------------------------------------------------------------------------

_values = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)))
_lines = st.one_of(
    st.builds(lambda v: "data:" + v, _values),
    st.builds(lambda v: "data: " + v, _values),
    st.builds(lambda v: "event: " + v, _values),
    st.builds(lambda v: "id: " + v, _values),
    st.builds(lambda v: "retry: " + v, st.from_regex(r"\A[0-9]{1,6}\Z") | _values),
    st.builds(lambda v: ":" + v, _values),
    st.just(""),
    st.just("data"),
)


@st.composite
def streams(draw: st.DrawFn, eols: tuple[str, ...] = ("\n", "\r\n", "\r")) -> bytes:
    lines = draw(st.lists(_lines, max_size=30))
    text = "".join(line + draw(st.sampled_from(eols)) for line in lines)
    raw = text.encode()
    if draw(st.booleans()):
        raw = b"\xef\xbb\xbf" + raw
    return raw


@st.composite
def chunkings(draw: st.DrawFn, raw: bytes) -> list[bytes]:
    cuts = sorted(draw(st.sets(st.integers(0, len(raw)), max_size=20)))
    bounds = [0, *cuts, len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=400)
@given(data=st.data(), raw=streams())
def test_any_chunking_gives_the_same_events_as_one_chunk(data: st.DataObject, raw: bytes) -> None:
    whole = SSEDecoder()
    expected = as_tuples(decode(raw, decoder=whole))
    pieces = SSEDecoder()
    assert as_tuples(decode(*data.draw(chunkings(raw)), decoder=pieces)) == expected
    assert (pieces.last_event_id, pieces.retry) == (whole.last_event_id, whole.retry)


@settings(max_examples=200)
@given(raw=st.binary(max_size=200), data=st.data())
def test_arbitrary_bytes_never_crash_and_chunking_does_not_matter(
    raw: bytes, data: st.DataObject
) -> None:
    expected = as_tuples(decode(raw))
    assert as_tuples(decode(*data.draw(chunkings(raw)))) == expected


def _httpx_sse_events(chunks: list[bytes]) -> list[ServerSentEvent]:
    response = httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
    )
    return list(EventSource(response).iter_sse())


@st.composite
def conformant_streams(draw: st.DrawFn) -> bytes:
    """LF endings, no BOM, every block holds a data line, retry values are ASCII digits:
    the streams on which httpx-sse 0.4.3 follows the standard."""
    blocks = []
    for _ in range(draw(st.integers(0, 8))):
        lines = draw(st.lists(_lines.filter(lambda line: line and not line.startswith("retry"))))
        lines.append(draw(st.builds(lambda v: "data: " + v, _values)))
        if draw(st.booleans()):
            lines.append("retry: " + str(draw(st.integers(0, 10**6))))
        blocks.append("".join(line + "\n" for line in draw(st.permutations(lines))) + "\n")
    return "".join(blocks).encode()


@settings(max_examples=300)
@given(raw=conformant_streams(), data=st.data())
def test_same_events_as_httpx_sse_where_httpx_sse_is_conformant(
    raw: bytes, data: st.DataObject
) -> None:
    chunks = data.draw(chunkings(raw))
    assert as_tuples(decode(*chunks)) == as_tuples(_httpx_sse_events(chunks))


def test_a_large_event_fed_in_small_pieces_decodes_exactly() -> None:
    payload = b"A" * (3 * 1024 * 1024)
    raw = b"event: image_generation.completed\ndata: " + payload + b"\n\n"
    chunks = [raw[i : i + 1024] for i in range(0, len(raw), 1024)]
    events = decode(*chunks)
    assert len(events) == 1
    assert events[0].data == payload.decode()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 300_000), max_size=12),
    prefix=st.sampled_from([b"data:", b"data: ", b"data:  "]),
)
def test_long_values_with_multibyte_and_invalid_bytes_survive_any_chunking(
    seed: int, cuts: list[int], prefix: bytes
) -> None:
    # Long enough for the 64 KiB batch decoding, with characters of 1 to 4 bytes and
    # invalid bytes, so that chunk edges fall inside characters.
    rng = random.Random(seed)
    alphabet = [b"A", b"/", "é".encode(), "✓".encode(), "🖼".encode(), b"\xff", b"\xe2\x9c"]
    value = b"".join(rng.choice(alphabet) for _ in range(100_000))
    raw = b"event: image_generation.completed\n" + prefix + value + b"\ndata: tail\n\n"
    bounds = sorted({0, len(raw), *(c for c in cuts if c < len(raw))})
    chunks = [raw[a:b] for a, b in itertools.pairwise(bounds)]
    expected = (prefix[5:].removeprefix(b" ") + value).decode("utf-8", "replace") + "\ntail"
    assert [e.data for e in decode(*chunks)] == [expected]


@pytest.mark.parametrize("cut", range(48))
def test_a_long_data_line_split_anywhere_near_its_field_name(cut: int) -> None:
    value = "é" * 40_000  # 80 KB: past one decoding batch
    raw = f"event: x\ndata: {value}\n\n".encode()
    assert [e.data for e in decode(raw[:cut], raw[cut : cut + 70_000], raw[cut + 70_000 :])] == [
        value
    ]


# -- the decoder's mode ----------------------------------------------------------------

_IMAGE_LINE = b'data: {"type":"x","b64_json":"QUJD","n":1}\n\n'


def test_a_plain_decoder_keeps_text_and_the_images_layer_decodes_when_asked() -> None:
    from ttstream.events import decoded_data, image_decoder

    with pytest.raises(TypeError):
        SSEDecoder(1024, None)  # type: ignore[misc]
    (text,) = decode(_IMAGE_LINE)
    (fast,) = decode(_IMAGE_LINE, decoder=image_decoder())
    assert decoded_data(text) is None
    decoded = decoded_data(fast)
    assert decoded is not None
    assert (decoded.key, decoded.image, decoded.members) == (
        "b64_json",
        b"ABC",
        {"type": "x", "b64_json": b"ABC", "n": 1},
    )
    assert text.data == fast.data == '{"type":"x","b64_json":"QUJD","n":1}'


def test_the_image_keys_are_a_parameter() -> None:
    from ttstream.events import decoded_data, image_decoder

    raw = b'data: {"result":"QUJD"}\n\n'
    assert decoded_data(decode(raw, decoder=image_decoder())[0]) is None
    (event,) = decode(raw, decoder=image_decoder(keys=("result",)))
    decoded = decoded_data(event)
    assert decoded is not None
    assert decoded.image == b"ABC"


@pytest.mark.parametrize("decode_images", [True, False])
def test_deeply_nested_json_through_the_decoder_is_malformed(decode_images: bool) -> None:
    from ttstream import MalformedEventError, parse_event
    from ttstream.events import image_decoder

    data = '{"a":' * 100_000 + '1,"b64_json":"QUJD"' + "}" * 100_000
    raw = f"data: {data}\n\n".encode()
    decoder = image_decoder() if decode_images else SSEDecoder()
    (event,) = [e for i in range(0, len(raw), 65536) for e in decoder.feed(raw[i : i + 65536])]
    with pytest.raises(MalformedEventError, match="nested too deeply"):
        parse_event(event)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7" * 5000, 10**15), ("0" * 30 + "5", 5), ("1" + "0" * 15, 10**15), ("999", 999)],
)
def test_a_retry_of_any_length_is_taken_and_capped(value: str, expected: int) -> None:
    decoder = SSEDecoder()
    decoder.feed(f"retry: {value}\ndata: x\n\n".encode())
    assert decoder.retry == expected


# -- a generic layer: explicit fields, a hook for data lines, no I/O (issue 17 item 3) --


def test_what_the_decoder_knows_is_in_explicit_fields() -> None:
    from ttstream.events import image_decoder

    (first,) = decode(b"id: 1\ndata: a\n\n")
    decoder = SSEDecoder()
    decoder.last_event_id = "seeded"
    (seeded,) = decode(b"data: b\n\n", decoder=decoder)
    (own,) = decode(b"id: 2\ndata: c\n\n")
    assert (first.id_in_body, seeded.id_in_body, own.id_in_body) == (True, False, True)
    assert ServerSentEvent(data="x").id_in_body  # made by hand: its id is its own
    long_line = "x" * 200_000
    raw = f"data: {long_line}\n\n".encode()
    (split,) = decode(raw[:70_000], raw[70_000:], decoder=SSEDecoder())
    assert len(split.pieces) > 1
    assert split.decoded is None
    assert split.data == long_line
    assert split.pieces == (long_line,)
    (fast,) = decode(_IMAGE_LINE, decoder=image_decoder())
    assert fast.decoded is not None
    assert fast.data == '{"type":"x","b64_json":"QUJD","n":1}'


class Upper:
    """A toy line hook: takes every data line whose value starts with ``{`` and keeps
    its bytes; its product's text is the line as it arrived."""

    class Line:
        def __init__(self) -> None:
            self.raw = bytearray()

        def feed(self, data: bytes | bytearray, start: int, end: int) -> None:
            self.raw += data[start:end]

        def take_run(self, data: bytes) -> bool:
            return False

        def end(self, data: bytes | bytearray, start: int, end: int) -> Upper.Made:
            self.raw += data[start:end]
            return Upper.Made(self.raw.decode())

    class Made:
        def __init__(self, text: str) -> None:
            self._text = text

        def text(self) -> str:
            return self._text

        def __len__(self) -> int:
            return len(self._text)

    def wants(self, value: memoryview) -> bool:
        return value[:1].tobytes() == b"{"

    def start(self) -> Upper.Line:
        return Upper.Line()


@pytest.mark.parametrize("cut", [None, 3, 9])
def test_a_line_hook_takes_the_first_data_line_and_the_events_stay_the_same(
    cut: int | None,
) -> None:
    raw = b'data: {"a": 1}\n\ndata: plain\n\n'
    pieces = [raw] if cut is None else [raw[:cut], raw[cut:]]
    hooked = decode(*pieces, decoder=SSEDecoder(line_hook=Upper()))  # type: ignore[arg-type]
    plain = decode(*pieces, decoder=SSEDecoder())
    assert [e.data for e in hooked] == [e.data for e in plain] == ['{"a": 1}', "plain"]
    assert isinstance(hooked[0].decoded, Upper.Made)
    assert hooked[1].decoded is None


CORE = ["sse", "_reconnect", "_imagehook", "_imageline", "events", "_responses", "_interpret"]


@pytest.mark.parametrize("name", CORE)
def test_the_protocol_core_imports_no_io_and_hands_out_nothing_lazily(name: str) -> None:
    import ast
    import importlib
    import pathlib

    module = importlib.import_module(f"ttstream.{name}")
    tree = ast.parse(pathlib.Path(str(module.__file__)).read_text())
    imported = set()
    for node in ast.walk(tree):  # function-level imports too
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    io_modules = {"anyio", "httpx2", "httpx", "aiohttp", "trio", "asyncio", "socket"}
    ours_above = {"_eventsource", "stream", "client", "_connect", "_body", "_transport", "sinks"}
    assert not (io_modules | ours_above) & imported
    for node in tree.body:  # a module __getattr__ may only raise: it hands out nothing
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            assert not [n for n in ast.walk(node) if isinstance(n, (ast.Return, ast.Import))]


@pytest.mark.parametrize("name", ["EventSource", "IMAGE_KEYS", "DecodedData", "decoded_data"])
def test_a_name_that_moved_up_says_where_it_went(name: str) -> None:
    import ttstream
    import ttstream.events
    from ttstream import sse

    new_home = sse.MOVED[name]
    with pytest.raises(AttributeError, match=f"ttstream.sse.{name} moved: import {new_home}"):
        getattr(sse, name)
    assert not hasattr(sse, name)
    owner, _, attribute = new_home.rpartition(".")
    assert getattr(ttstream.events if owner == "ttstream.events" else ttstream, attribute)
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        sse.Nothing  # noqa: B018


def test_the_decoder_keeps_no_image_knowledge_of_its_own() -> None:
    from ttstream.events import IMAGE_KEYS, ImageLineHook, image_decoder

    assert SSEDecoder().line_hook is None  # generic by default: no image decoded
    line = f'data: {{"b64_json":"{"QUJD" * 20_000}"}}\n\n'.encode()
    (plain,) = SSEDecoder().feed(line)
    assert plain.decoded is None
    assert len(plain.data) == len(line) - 8
    with pytest.raises(TypeError):
        SSEDecoder(decode_images=True)  # type: ignore[call-arg]
    hook = image_decoder().line_hook
    assert isinstance(hook, ImageLineHook)
    assert hook.keys == IMAGE_KEYS


@settings(max_examples=60, deadline=None)
@given(
    st.text(alphabet="ab\u00e9\u4e2d", min_size=0, max_size=20_000).map(lambda t: t * 9),
    st.lists(st.integers(min_value=1, max_value=40_000), max_size=6),
)
def test_a_fingerprint_does_not_depend_on_the_chunking(text: str, cuts: list[int]) -> None:
    from ttstream.sse import fingerprint

    raw = f"event: e\ndata: {text}x\n\n".encode()
    bounds = sorted({min(cut, len(raw)) for cut in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *bounds], [*bounds, len(raw)], strict=True)]
    (whole_body,) = decode(raw)
    (chunked,) = decode(*pieces)
    for whole in (True, False):
        assert fingerprint(chunked, whole=whole) == fingerprint(whole_body, whole=whole)
    (other,) = decode(f"event: e\ndata: {text}y\n\n".encode())
    assert fingerprint(other) != fingerprint(whole_body)
    assert fingerprint(other, whole=False) != fingerprint(whole_body, whole=False)


def test_the_generic_decoder_imports_nothing_of_the_images_api() -> None:
    import ast
    import pathlib

    import ttstream.sse

    tree = ast.parse(pathlib.Path(str(ttstream.sse.__file__)).read_text())
    imported = {
        alias.name if node.level == 0 and not node.module else (node.module or alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    images = {"_imagehook", "_imageline", "events", "_responses", "_interpret", "_base64"}
    assert not {name.lstrip(".") for name in imported} & images
