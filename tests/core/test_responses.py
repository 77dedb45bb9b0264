"""The Responses API interpreter replaying recorded streams (tests/recordings/*.jsonl, one
JSON event per line), encoded as SSE text and decoded by ttstream's SSEDecoder in chunks
of several sizes."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.paths import ROOT
from ttstream import Completed, MalformedEventError, PartialImage, SSEDecoder, StreamError
from ttstream._responses import (
    MAX_IMAGE_ITEMS,
    MAX_ITEM_ID_CHARS,
    ResponsesInterpreter,
    loads_without_results,
)
from ttstream.events import image_decoder

RECORDINGS = ROOT / "tests" / "recordings"
CHUNKS = (1, 7, 64, 997, 1 << 30)
Out = PartialImage | Completed


def recording(name: str) -> list[dict[str, Any]]:
    lines = (RECORDINGS / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def sse_bytes(events: Iterable[Mapping[str, Any]]) -> bytes:
    """The events as the API frames them: ``event: <type>``, one ``data:`` line."""
    frames = (
        f"event: {e['type']}\ndata: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events
    )
    return "".join(frames).encode()


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def feed(
    interpreter: ResponsesInterpreter,
    events: Sequence[Mapping[str, Any]],
    size: int = 1 << 30,
    *,
    decode_images: bool = True,
) -> list[Out]:
    """Every image event the interpreter makes of ``events`` fed in ``size``-byte chunks."""
    decoder = image_decoder() if decode_images else SSEDecoder()
    out: list[Out] = []
    for chunk in chunks(sse_bytes(events), size):
        for sse in decoder.feed(chunk):
            if (event := interpreter.handle(sse)) is not None:
                out.append(event)
    for sse in decoder.close():
        if (event := interpreter.handle(sse)) is not None:
            out.append(event)
    return out


def of_type(events: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [e for e in events if e["type"] == kind]


def decoded(b64: str) -> bytes:
    return base64.b64decode(b64, validate=True)


def image_item(events: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    [done] = [
        e["item"]
        for e in of_type(events, "response.output_item.done")
        if e["item"]["type"] == "image_generation_call"
    ]
    return done


@pytest.mark.parametrize("size", CHUNKS)
@pytest.mark.parametrize(
    ("name", "output_index", "partials"),
    [
        ("openai_normal", 0, 2),
        ("azure_without_call_completed", 0, 1),
        ("reasoning_first", 1, 1),
        ("unasked_partial", 0, 1),
    ],
)
def test_a_recorded_stream_gives_its_previews_then_one_completed(
    name: str, output_index: int, partials: int, size: int
) -> None:
    events = recording(name)
    interpreter = ResponsesInterpreter()
    out = feed(interpreter, events, size)
    assert [type(e) for e in out] == [PartialImage] * partials + [Completed]
    response_id = events[0]["response"]["id"]
    wire_partials = of_type(events, "response.image_generation_call.partial_image")
    for event, wire in zip(out, wire_partials, strict=False):
        assert isinstance(event, PartialImage)
        assert (event.index, event.item_id) == (wire["partial_image_index"], wire["item_id"])
        assert (event.output_index, event.sequence_number) == (
            output_index,
            wire["sequence_number"],
        )
        assert (event.operation, event.response_id) == ("response", response_id)
        assert event.image_bytes == decoded(wire["partial_image_b64"])
    final = out[-1]
    item = image_item(events)
    assert isinstance(final, Completed)
    assert final.image_bytes == decoded(item["result"])
    assert (final.item_id, final.output_index, final.response_id) == (
        item["id"],
        output_index,
        response_id,
    )
    assert (final.size, final.quality, final.output_format) == ("1536x1024", "medium", "png")
    assert final.revised_prompt == item["revised_prompt"]
    assert final.extra["status"] == item["status"]  # "generating" on Azure
    assert final.usage is None  # the response's usage is the text model's
    assert interpreter.done
    assert interpreter.incomplete() is None
    assert interpreter.last_sequence_number == events[-1]["sequence_number"]


@pytest.mark.parametrize("size", CHUNKS[1:4])
def test_the_final_response_is_kept_without_its_images(size: int) -> None:
    events = recording("openai_normal")
    interpreter = ResponsesInterpreter()
    assert interpreter.response is None
    feed(interpreter, events, size)
    response = interpreter.response
    wire = events[-1]["response"]
    assert response is not None
    assert (response.id, response.status, response.model) == (wire["id"], "completed", "gpt-5")
    assert response.output_text == "Here is your fox."
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.total_tokens) == (1234, 1331)
    assert response.usage.extra["output_tokens_details"] == {"reasoning_tokens": 64}
    assert [item["type"] for item in response.output] == ["image_generation_call", "message"]
    assert response.output[0]["result"] is None
    assert response.extra["tools"][0]["type"] == "image_generation"
    assert image_item(events)["result"][:40] not in repr(response)


def test_a_partial_not_asked_for_is_delivered_and_can_be_the_full_image() -> None:
    events = recording("unasked_partial")
    assert "partial_images" not in events[0]["response"]["tools"][0]
    preview, final = feed(ResponsesInterpreter(), events)
    assert isinstance(preview, PartialImage)
    assert preview.image_bytes == final.image_bytes
    assert (preview.size, preview.quality) == (None, None)


@pytest.mark.parametrize("size", CHUNKS)
def test_an_error_event_then_response_failed_raises_the_error(size: int) -> None:
    events = recording("error_then_failed")
    interpreter = ResponsesInterpreter()
    with pytest.raises(StreamError) as caught:
        feed(interpreter, events, size)
    err = caught.value
    assert (err.code, err.param, err.type) == (
        "moderation_blocked",
        "tools[0]",
        "invalid_request_error",
    )
    assert err.message == "Your request was rejected by the safety system."
    assert (err.response_id, err.sequence_number) == ("resp_error0004", 2)
    assert not interpreter.done


def test_a_flat_error_event_raises_too() -> None:
    events = recording("error_then_failed")[:2]
    events.append(
        {"type": "error", "sequence_number": 2, "code": "x_code", "message": "boom", "param": None}
    )
    with pytest.raises(StreamError) as caught:
        feed(ResponsesInterpreter(), events)
    assert (caught.value.code, caught.value.message, caught.value.param) == ("x_code", "boom", None)


@pytest.mark.parametrize("size", CHUNKS)
def test_response_failed_alone_raises_after_the_previews(size: int) -> None:
    events = recording("failed_alone")
    interpreter = ResponsesInterpreter()
    out = feed(interpreter, events[:-1], size)
    assert [type(e) for e in out] == [PartialImage]
    assert interpreter.incomplete() == "while image item ig_failed0005 was still generating"
    with pytest.raises(StreamError) as caught:
        feed(interpreter, events[-1:], size)
    err = caught.value
    assert (err.code, err.type, err.response_id) == (
        "server_error",
        "response.failed",
        "resp_failed0005",
    )
    assert err.message == "The image generation failed. Please try again."
    assert err.sequence_number == events[-1]["sequence_number"]


def test_response_incomplete_raises_with_its_reason() -> None:
    with pytest.raises(StreamError) as caught:
        feed(ResponsesInterpreter(), recording("incomplete"))
    err = caught.value
    assert (err.code, err.type, err.response_id) == (
        "max_output_tokens",
        "response.incomplete",
        "resp_incomplete0006",
    )
    assert "max_output_tokens" in str(err)


def test_a_cut_stream_says_why_it_is_incomplete_and_resumes_each_event_once() -> None:
    events = recording("openai_normal")
    [second_partial] = [i for i, e in enumerate(events) if e.get("partial_image_index") == 1]
    interpreter = ResponsesInterpreter()
    before = feed(interpreter, events[: second_partial + 1])
    assert [type(e) for e in before] == [PartialImage, PartialImage]
    assert interpreter.incomplete() == "while image item ig_68b1c0ffee0001 was still generating"
    assert not interpreter.done
    starting_after = interpreter.last_sequence_number
    assert starting_after == events[second_partial]["sequence_number"]
    # What the server sends after starting_after; a replay of earlier events is skipped.
    after = feed(interpreter, events[second_partial - 3 :])
    assert [type(e) for e in after] == [Completed]
    assert interpreter.done
    assert feed(interpreter, events) == []  # everything again: all replays


def test_an_end_after_the_image_but_before_response_completed_is_incomplete() -> None:
    events = recording("openai_normal")
    interpreter = ResponsesInterpreter()
    assert interpreter.incomplete() == "before the response sent any event"
    feed(interpreter, events[:-1])
    reason = interpreter.incomplete()
    assert reason is not None
    assert "response.completed" in reason
    assert str(events[-2]["sequence_number"]) in reason


def test_never_both_completed_events_for_one_item() -> None:
    """A server whose image_generation_call.completed carries the image: one Completed,
    from whichever of the two events comes first."""
    events = recording("openai_normal")
    item = image_item(events)
    for event in of_type(events, "response.image_generation_call.completed"):
        event["result"] = item["result"]
    out = feed(ResponsesInterpreter(), events)
    completed = [e for e in out if isinstance(e, Completed)]
    assert len(completed) == 1
    [call_completed] = of_type(events, "response.image_generation_call.completed")
    assert completed[0].sequence_number == call_completed["sequence_number"]


def test_two_image_items_give_two_completed_events() -> None:
    events = recording("openai_normal")
    first = [
        e for e in events if e.get("item_id", e.get("item", {}).get("id")) == "ig_68b1c0ffee0001"
    ]
    second = json.loads(json.dumps(first).replace("ig_68b1c0ffee0001", "ig_second"))
    for event in second:
        event["output_index"] = 2
    stream = [*events[:2], *first, *second, events[-1]]
    for number, event in enumerate(stream):
        event["sequence_number"] = number
    out = feed(ResponsesInterpreter(), stream)
    assert [(type(e).__name__, e.item_id) for e in out if isinstance(e, Completed)] == [
        ("Completed", "ig_68b1c0ffee0001"),
        ("Completed", "ig_second"),
    ]


def test_a_large_response_completed_is_parsed_without_its_image_strings() -> None:
    """The third copy of the image is not even kept: here it is not base64 at all, and
    nothing complains."""
    events = recording("openai_normal")
    completed = events[-1]
    completed["response"]["output"][0]["result"] = "not base64 ~ at all! " * 20_000
    interpreter = ResponsesInterpreter()
    feed(interpreter, events, 65_536)
    assert interpreter.done
    assert interpreter.response is not None
    assert interpreter.response.output[0]["result"] is None
    assert interpreter.response.output_text == "Here is your fox."


JSON_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | JSON_TEXT,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["result", "id", "x", "type"]) | JSON_TEXT, inner, max_size=4
        )
    ),
    max_leaves=20,
)


def without_results(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: None if k == "result" and isinstance(v, str) else without_results(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [without_results(v) for v in value]
    return value


@given(JSON_VALUES, st.booleans())
def test_loads_without_results_is_json_loads_with_result_strings_as_null(
    value: Any, spaced: bool
) -> None:
    text = json.dumps(value, separators=(", ", ": ") if spaced else (",", ":"))
    got = loads_without_results(text)
    if got is not None:
        assert got == without_results(json.loads(text))
    else:  # only when there is no "result" string to cut out, or it holds an escape
        assert re.search(r'"result": ?"', text) is None or "\\" in text
        json.loads(text)


PARTIAL = '{"type": "response.image_generation_call.partial_image"}'


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected an object"),
        ('{"type": 5}', "'type'"),
        (
            '{"type": "response.image_generation_call.partial_image", "partial_image_index": 0}',
            "partial_image_b64",
        ),
        (PARTIAL[:-1] + ', "partial_image_b64": "AAAA", "partial_image_index": "0"}', "be int"),
        (
            '{"type": "response.output_item.done", "item": {"type": "image_generation_call",'
            ' "id": "ig_1", "status": "completed"}}',
            "without its 'result'",
        ),
        ('{"type": "response.created", "sequence_number": true}', "should be int"),
    ],
)
def test_malformed_events_raise_naming_what_was_wrong(event: str, reason: str) -> None:
    data = sse_bytes([]) + f"event: x\ndata: {event}\n\n".encode()
    [sse] = SSEDecoder().feed(data)
    with pytest.raises(MalformedEventError) as caught:
        ResponsesInterpreter().handle(sse)
    assert reason in str(caught.value)


def test_response_completed_before_an_image_item_is_done_is_malformed() -> None:
    events = recording("openai_normal")
    cut = [
        e
        for e in events
        if e["type"] != "response.output_item.done" or e["item"]["type"] != "image_generation_call"
    ]
    with pytest.raises(MalformedEventError, match="before image item ig_68b1c0ffee0001"):
        feed(ResponsesInterpreter(), cut)


def test_a_failed_image_item_raises_its_error() -> None:
    events = recording("openai_normal")
    for event in of_type(events, "response.output_item.done")[:1]:
        event["item"] = {
            "id": "ig_68b1c0ffee0001",
            "type": "image_generation_call",
            "status": "failed",
            "error": {
                "type": "image_generation_user_error",
                "code": "moderation_blocked",
                "message": "Blocked.",
            },
        }
    with pytest.raises(StreamError) as caught:
        feed(ResponsesInterpreter(), events)
    assert (caught.value.code, caught.value.message) == ("moderation_blocked", "Blocked.")
    assert caught.value.response_id == "resp_68b1c0ffee0001"


def test_keep_alives_and_done_markers_carry_nothing() -> None:
    decoder = SSEDecoder()
    interpreter = ResponsesInterpreter()
    for sse in decoder.feed(b"data: [DONE]\n\ndata:  \n\n"):
        assert interpreter.handle(sse) is None
    assert interpreter.last_sequence_number is None


def test_a_resume_in_a_new_process_starts_after_the_given_sequence_number() -> None:
    events = recording("openai_normal")
    interpreter = ResponsesInterpreter(response_id="resp_68b1c0ffee0001", starting_after=5)
    assert interpreter.incomplete() is not None
    out = feed(interpreter, events)  # the server would send only those after 5
    assert [(type(e).__name__, e.sequence_number) for e in out] == [
        ("PartialImage", 6),
        ("Completed", 8),
    ]
    assert out[-1].response_id == "resp_68b1c0ffee0001"
    assert interpreter.done


def test_restart_expects_a_whole_new_response() -> None:
    events = recording("openai_normal")
    interpreter = ResponsesInterpreter()
    feed(interpreter, events[:7])
    interpreter.restart()
    assert (interpreter.last_sequence_number, interpreter.response_id) == (None, None)
    out = feed(interpreter, events)
    assert [type(e) for e in out] == [PartialImage, PartialImage, Completed]


NAMES = sorted(path.stem for path in RECORDINGS.glob("*.jsonl"))


@given(st.sampled_from(NAMES), st.lists(st.integers(min_value=1, max_value=400), max_size=30))
def test_any_chunking_gives_the_same_events_and_errors(name: str, cuts: list[int]) -> None:
    """However the bytes are split, the interpreter gives what the whole body gives."""

    def run(pieces: Iterable[bytes]) -> tuple[list[tuple[str, int | None]], str | None]:
        interpreter, decoder = ResponsesInterpreter(), SSEDecoder()
        out: list[tuple[str, int | None]] = []
        try:
            for piece in pieces:
                for sse in decoder.feed(piece):
                    if (event := interpreter.handle(sse)) is not None:
                        out.append((type(event).__name__, event.sequence_number))
        except StreamError as exc:
            return out, exc.code
        return out, None

    data = sse_bytes(recording(name))
    bounds, position = [], 0
    for cut in cuts:
        position += cut
        bounds.append(position)
    pieces = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    assert run(pieces) == run([data])


@pytest.mark.parametrize("name", ["openai_normal", "azure_without_call_completed"])
def test_partials_decoded_on_arrival_equal_the_text_path(name: str) -> None:
    events = recording(name)
    fast = feed(ResponsesInterpreter(), events, 4096)
    text = feed(ResponsesInterpreter(), events, 4096, decode_images=False)
    assert fast == text  # equal events: same fields, same base64
    assert [e.image_bytes for e in fast] == [e.image_bytes for e in text]


# Issue 21 item 2: an image the server sent is delivered, or the stream fails typed.


def without_image_events(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The stream with every event of the image item taken out, except the copy inside
    ``response.completed``."""
    return [
        dict(e)
        for e in events
        if not e["type"].startswith("response.image_generation_call")
        and (e.get("item") or {}).get("type") != "image_generation_call"
    ]


@pytest.mark.parametrize("pad", [0, 100_000], ids=["small", "large"])
def test_an_image_only_in_response_completed_is_delivered(pad: int) -> None:
    events = recording("openai_normal")
    expected = image_item(events)["result"]
    cut = without_image_events(events)
    if pad:  # a large response.completed: its image strings are cut out before parsing
        cut[-1]["response"]["instructions"] = "x" * pad
    interpreter = ResponsesInterpreter()
    out = feed(interpreter, cut)
    assert [type(e) for e in out] == [Completed]
    assert out[0].image_bytes == decoded(expected)
    assert (out[0].item_id, out[0].output_index) == ("ig_68b1c0ffee0001", 0)
    assert interpreter.done
    assert interpreter.response is not None
    assert interpreter.response.output[0]["result"] is None


def test_two_images_only_in_response_completed_fail_typed() -> None:
    cut = without_image_events(recording("openai_normal"))
    output = cut[-1]["response"]["output"]
    output.append({**output[0], "id": "ig_second"})
    with pytest.raises(MalformedEventError, match="2 image items"):
        feed(ResponsesInterpreter(), cut)


def test_an_image_done_with_a_lower_sequence_number_is_delivered() -> None:
    events = [dict(e) for e in recording("openai_normal")]
    for event in events:
        if event["type"] in (
            "response.output_item.done",
            "response.image_generation_call.completed",
        ) and (event.get("item") or {}).get("type", "image_generation_call") == (
            "image_generation_call"
        ):
            event["sequence_number"] = 3  # below the partials' 5 and 6
    interpreter = ResponsesInterpreter()
    out = feed(interpreter, events)
    assert [type(e) for e in out] == [PartialImage, PartialImage, Completed]
    assert out[-1].image_bytes == decoded(image_item(events)["result"])
    assert interpreter.done


def test_a_replayed_image_event_is_not_delivered_twice() -> None:
    events = recording("openai_normal")
    done = of_type(events, "response.output_item.done")[0]
    replayed = [*events[:9], dict(done), *events[9:]]
    out = feed(ResponsesInterpreter(), replayed)
    assert [type(e) for e in out] == [PartialImage, PartialImage, Completed]


def test_an_image_handled_by_another_process_is_not_delivered_again() -> None:
    events = recording("openai_normal")
    late = [*events[:10], *of_type(events, "response.output_item.done")[:1], *events[10:]]
    out = feed(ResponsesInterpreter(starting_after=8), late[9:])
    assert out == []


# Issue 21 item 17: empty image strings are malformed, as the Images API's b64_json.


@pytest.mark.parametrize("decode_images", [True, False])
def test_an_empty_partial_image_is_malformed(decode_images: bool) -> None:
    events = [dict(e) for e in recording("openai_normal")]
    for event in of_type(events, "response.image_generation_call.partial_image"):
        event["partial_image_b64"] = ""
    with pytest.raises(MalformedEventError, match="'partial_image_b64' is empty"):
        feed(ResponsesInterpreter(), events, decode_images=decode_images)


def test_an_empty_result_is_malformed() -> None:
    events = [dict(e) for e in recording("openai_normal")]
    for event in of_type(events, "response.output_item.done")[:1]:
        event["item"] = {**event["item"], "result": ""}
    with pytest.raises(MalformedEventError, match="empty 'result'"):
        feed(ResponsesInterpreter(), events)


# An error or an end is never skipped as a replay; a completed response that did not
# complete is a failure.


@pytest.mark.parametrize("kind", ["error", "response.failed"])
def test_an_error_with_a_sequence_number_seen_before_still_raises(kind: str) -> None:
    """Only a resumed stream replays, and only up to where it was handled: an error at a
    number already seen, in a stream never resumed, is an error all the same."""
    events = recording("openai_normal")[:7]
    error = {"message": "boom", "code": "server_error"}
    late = {"type": kind, "sequence_number": 5}
    late.update({"error": error} if kind == "error" else {"response": {"error": error}})
    with pytest.raises(StreamError, match="boom") as caught:
        feed(ResponsesInterpreter(), [*events, late])
    assert caught.value.sequence_number == 5


def test_response_incomplete_with_a_sequence_number_seen_before_still_raises() -> None:
    events = recording("openai_normal")[:7]
    [incomplete] = of_type(recording("incomplete"), "response.incomplete")
    with pytest.raises(StreamError, match="max_output_tokens"):
        feed(ResponsesInterpreter(), [*events, {**incomplete, "sequence_number": 2}])


def test_an_error_at_or_below_starting_after_was_handled_elsewhere() -> None:
    events = recording("openai_normal")
    late = {"type": "error", "sequence_number": 3, "error": {"message": "old news"}}
    out = feed(ResponsesInterpreter(starting_after=5), [*events[6:8], late, *events[8:]])
    assert [type(e) for e in out] == [PartialImage, Completed]


@pytest.mark.parametrize("status", ["failed", "cancelled", "incomplete", "in_progress"])
def test_response_completed_whose_status_is_not_completed_raises(status: str) -> None:
    events = recording("openai_normal")
    events[-1]["response"]["status"] = status
    events[-1]["response"]["error"] = {"message": "it broke"} if status == "failed" else None
    interpreter = ResponsesInterpreter()
    with pytest.raises(StreamError) as caught:
        feed(interpreter, events)
    err = caught.value
    assert (err.code, err.type) == (status, "response.completed")
    assert f"status is '{status}', not 'completed'" in str(err)
    assert ("it broke" in str(err)) == (status == "failed")
    assert not interpreter.done


# What the interpreter keeps per response is bounded: MAX_IMAGE_ITEMS ids of at most
# MAX_ITEM_ID_CHARS characters.


def added(item_id: str, number: int) -> dict[str, Any]:
    return {
        "type": "response.output_item.added",
        "sequence_number": number,
        "output_index": number,
        "item": {"type": "image_generation_call", "id": item_id, "status": "in_progress"},
    }


@pytest.mark.parametrize("via", ["added", "partial"])
def test_more_image_items_than_the_cap_are_malformed(via: str) -> None:
    events = [added(f"ig_{n}", n) for n in range(MAX_IMAGE_ITEMS)]
    events.append(added("ig_7", MAX_IMAGE_ITEMS))  # an item known already: not a new one
    interpreter = ResponsesInterpreter()
    assert feed(interpreter, events) == []  # the cap itself is allowed
    partial = of_type(recording("openai_normal"), "response.image_generation_call.partial_image")
    number = MAX_IMAGE_ITEMS + 1
    one_more = (
        added("ig_more", number)
        if via == "added"
        else {**partial[0], "item_id": "ig_more", "sequence_number": number}
    )
    with pytest.raises(MalformedEventError, match=f"more than the {MAX_IMAGE_ITEMS} image items"):
        feed(interpreter, [one_more])


def test_an_image_item_id_longer_than_the_cap_is_malformed() -> None:
    interpreter = ResponsesInterpreter()
    feed(interpreter, [added("i" * MAX_ITEM_ID_CHARS, 0)])
    with pytest.raises(MalformedEventError) as caught:
        feed(interpreter, [added("x" * 900_000, 1)])
    assert f"900000 characters long; at most {MAX_ITEM_ID_CHARS} are allowed" in str(caught.value)
    assert len(str(caught.value)) < 1000


@pytest.mark.parametrize("pad", [0, 100_000], ids=["small", "large"])
def test_only_image_items_lose_their_result(pad: int) -> None:
    """A ``result`` elsewhere (metadata, an annotation, another item) is the server's
    data, kept whole; only an image item's image is dropped from the response."""
    events = recording("openai_normal")
    response = events[-1]["response"]
    response["metadata"] = {"result": "keep me"}
    response["instructions"] = "x" * pad  # a large response.completed is cut first
    message = response["output"][1]
    message["content"][0]["annotations"] = [{"result": "keep me too"}]
    response["output"].append({"type": "function_call_output", "id": "f", "result": "42"})
    interpreter = ResponsesInterpreter()
    feed(interpreter, events)
    got = interpreter.response
    assert got is not None
    assert got.extra["metadata"] == {"result": "keep me"}
    assert got.output[1]["content"][0]["annotations"] == [{"result": "keep me too"}]
    assert got.output[2]["result"] == "42"
    assert got.output[0]["result"] is None


@pytest.mark.parametrize("item_id", [[1], {"a": 1}, 7])
def test_an_image_item_in_response_completed_whose_id_is_not_a_string_is_malformed(
    item_id: object,
) -> None:
    # An unhashable id raised a bare TypeError while looking it up.
    item = {"type": "image_generation_call", "id": item_id, "status": "completed"}
    completed = {
        "type": "response.completed",
        "sequence_number": 1,
        "response": {"id": "resp_1", "status": "completed", "output": [item]},
    }
    with pytest.raises(MalformedEventError, match="'id'"):
        feed(ResponsesInterpreter(), [completed])
