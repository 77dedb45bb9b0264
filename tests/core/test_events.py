"""parse_event and the typed events (the Images API's stream events and error shapes)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttstream import (
    Completed,
    MalformedEventError,
    PartialImage,
    ProtocolError,
    ServerSentEvent,
    StreamError,
    TTStreamError,
    parse_event,
)
from ttstream.events import decode_base64, parse_response

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
B64 = base64.b64encode(IMAGE).decode()


def sse(obj: Any, *, event: str | None = None, id: str = "") -> ServerSentEvent:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    if event is None and isinstance(obj, dict):
        event = obj.get("type")
    return ServerSentEvent(event=event, data=data, id=id)


def partial(**fields: Any) -> dict[str, Any]:
    return {
        "type": "image_generation.partial_image",
        "b64_json": B64,
        "created_at": 1745818538,
        "size": "1024x1024",
        "quality": "high",
        "background": "opaque",
        "output_format": "png",
        "partial_image_index": 0,
        **fields,
    }


def completed(**fields: Any) -> dict[str, Any]:
    body = {**partial(), "type": "image_generation.completed", **fields}
    del body["partial_image_index"]
    body.setdefault(
        "usage",
        {
            "input_tokens": 50,
            "input_tokens_details": {"image_tokens": 40, "text_tokens": 10},
            "output_tokens": 4160,
            "total_tokens": 4210,
        },
    )
    return body


@pytest.mark.parametrize(
    ("prefix", "operation"), [("image_generation", "generation"), ("image_edit", "edit")]
)
def test_partial_image_fields(prefix: str, operation: str) -> None:
    event = parse_event(sse(partial(type=f"{prefix}.partial_image", partial_image_index=2)))
    assert isinstance(event, PartialImage)
    assert event.partial_image_index == 2  # openai-python's name for index
    assert (event.operation, event.index, event.size, event.quality) == (
        operation,
        2,
        "1024x1024",
        "high",
    )
    assert (event.background, event.output_format, event.created_at) == (
        "opaque",
        "png",
        1745818538,
    )
    assert event.image_bytes == IMAGE


@pytest.mark.parametrize(
    ("prefix", "operation"), [("image_generation", "generation"), ("image_edit", "edit")]
)
def test_completed_fields_and_usage(prefix: str, operation: str) -> None:
    event = parse_event(sse(completed(type=f"{prefix}.completed")))
    assert isinstance(event, Completed)
    assert event.operation == operation
    assert event.usage is not None
    assert (event.usage.input_tokens, event.usage.output_tokens, event.usage.total_tokens) == (
        50,
        4160,
        4210,
    )
    details = event.usage.input_tokens_details
    assert details is not None
    assert (details.image_tokens, details.text_tokens) == (40, 10)
    assert event.image_bytes == IMAGE


def test_unknown_fields_are_kept_and_known_newer_fields_are_first_class() -> None:
    event = parse_event(
        sse(
            completed(
                sequence_number=7,
                safety_identifier="user-42",
                moderation_score=0.1,
                usage={"input_tokens": 1, "output_tokens_details": {"x": 1}},
            )
        )
    )
    assert isinstance(event, Completed)
    assert event.sequence_number == 7
    assert event.safety_identifier == "user-42"
    assert event.extra == {"moderation_score": 0.1}
    assert event.usage is not None
    assert event.usage.extra == {"output_tokens_details": {"x": 1}}


def test_new_enum_values_pass_through_as_strings() -> None:
    event = parse_event(sse(partial(quality="xhigh", size="4096x2304")))
    assert isinstance(event, PartialImage)
    assert (event.quality, event.size) == ("xhigh", "4096x2304")


def test_missing_optional_fields_are_none() -> None:
    event = parse_event(sse({"type": "image_generation.completed", "b64_json": B64}))
    assert isinstance(event, Completed)
    assert (event.size, event.usage, event.created_at) == (None, None, None)


def test_repr_never_prints_base64() -> None:
    for event in (parse_event(sse(partial())), parse_event(sse(completed()))):
        assert B64[:20] not in repr(event)
        assert f"<{len(B64)} base64 chars>" in repr(event)


def test_repr_shortens_large_unknown_fields() -> None:
    event = parse_event(sse(partial(debug="z" * 10_000)))
    assert len(repr(event)) < 600


def test_image_bytes_is_decoded_once() -> None:
    event = parse_event(sse(partial()))
    assert event is not None
    assert event.image_bytes is event.image_bytes


def test_events_are_frozen() -> None:
    event = parse_event(sse(partial()))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.index = 3  # type: ignore[misc, union-attr]


@pytest.mark.parametrize(
    "data",
    [
        "[DONE]",
        "",
        "  ",
        json.dumps({"type": "image_generation.in_progress"}),
        json.dumps({"type": "response.created"}),
        json.dumps({"type": "keepalive"}),
    ],
)
def test_events_that_carry_no_image_give_none(data: str) -> None:
    assert parse_event(ServerSentEvent(data=data)) is None


def test_nested_error_event_raises_stream_error() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "code": "moderation_blocked",
            "message": "Your request was rejected by the safety system.",
            "param": "prompt",
        },
    }
    with pytest.raises(StreamError) as info:
        parse_event(sse(body, event="error", id="9"))
    error = info.value
    assert (error.code, error.param, error.type) == (
        "moderation_blocked",
        "prompt",
        "invalid_request_error",
    )
    assert error.message == "Your request was rejected by the safety system."
    assert error.event_id == "9"


def test_flat_error_event_raises_stream_error_not_an_image() -> None:
    body = {
        "type": "error",
        "code": "server_error",
        "message": "boom",
        "param": None,
        "sequence_number": 3,
    }
    with pytest.raises(StreamError) as info:
        parse_event(sse(body, event="message"))
    assert (info.value.code, info.value.message, info.value.param) == ("server_error", "boom", None)
    assert info.value.sequence_number == 3


def test_error_sse_event_type_without_json_type_raises() -> None:
    with pytest.raises(StreamError, match="overloaded"):
        parse_event(sse({"message": "overloaded"}, event="error"))


def test_error_object_without_type_raises() -> None:
    with pytest.raises(StreamError, match="quota"):
        parse_event(sse({"error": {"message": "quota exceeded", "code": 429}}))


def test_error_event_without_message_still_says_something() -> None:
    with pytest.raises(StreamError, match="without a message"):
        parse_event(sse({"type": "error"}))


def test_malformed_json_names_the_event_and_is_not_a_bare_json_error() -> None:
    with pytest.raises(MalformedEventError) as info:
        parse_event(sse('{"type": "image_generation.partial_image", "b64', event="x", id="4"))
    error = info.value
    assert (error.event, error.event_id) == ("x", "4")
    assert "not JSON" in str(error)
    assert not isinstance(error, json.JSONDecodeError)
    assert isinstance(error, TTStreamError)


def test_malformed_json_message_does_not_quote_megabytes() -> None:
    with pytest.raises(MalformedEventError) as info:
        parse_event(sse('{"b64_json": "' + "A" * 5_000_000))
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([1, 2], "JSON list"),
        (partial(partial_image_index="1"), "'partial_image_index' should be int, got str"),
        (partial(partial_image_index=True), "should be int, got bool"),
        (partial(b64_json=None), "no 'b64_json'"),
        (partial(b64_json=123), "'b64_json' should be str"),
        ({k: v for k, v in partial().items() if k != "partial_image_index"}, "partial_image_index"),
        (completed(usage=[1]), "'usage' should be dict"),
        (completed(usage={"input_tokens": "5"}), "usage field 'input_tokens'"),
        (partial(size=1024), "'size' should be str"),
        ({"type": 5}, "'type' should be str"),
    ],
)
def test_fields_of_the_wrong_shape_raise_malformed_event(body: Any, reason: str) -> None:
    with pytest.raises(MalformedEventError, match=reason):
        parse_event(sse(body, event="image_generation.partial_image"))


@pytest.mark.parametrize(
    "b64",
    ["QUJDRA", "QUJD!!!!", "QQ==QQ==", "QUJD\nREVG", "QUJD====", "A", "4pyT✓==", "QUJDRA=="[:-1]],
)
def test_invalid_base64_raises_malformed_event_on_image_bytes(b64: str) -> None:
    event = parse_event(sse(partial(b64_json=b64, partial_image_index=1)))
    assert event is not None  # parsing does not decode megabytes eagerly
    with pytest.raises(
        MalformedEventError, match="b64_json of partial image 1 is not valid base64"
    ):
        event.image_bytes  # noqa: B018


@given(st.binary(max_size=64))
def test_decode_base64_round_trips(raw: bytes) -> None:
    assert decode_base64(base64.b64encode(raw).decode(), what="x") == raw


@given(st.text(alphabet="ABCDab01+/=\n -_!é", max_size=24))
def test_decode_base64_is_at_least_as_strict_as_validating_b64decode(text: str) -> None:
    try:
        ours: bytes | None = decode_base64(text, what="x")
    except MalformedEventError:
        ours = None
    if ours is not None:
        assert base64.b64decode(text, validate=True) == ours


def test_decode_base64_error_is_not_a_bare_binascii_error() -> None:
    with pytest.raises(MalformedEventError) as info:
        decode_base64("QUJDRA", what="b64_json")
    assert not isinstance(info.value, binascii.Error)


# -- hostile data (issue 10) -------------------------------------------------------------


def test_an_empty_b64_json_is_malformed() -> None:
    with pytest.raises(MalformedEventError, match="empty 'b64_json'"):
        parse_event(sse(completed(b64_json="")))
    with pytest.raises(MalformedEventError, match="empty 'b64_json'"):
        parse_response({"data": [{"b64_json": ""}]}, operation="generation")


@pytest.mark.parametrize("data", [": PING", "PING", "ping 12", "[not json", ":"])
def test_heartbeats_sent_as_data_are_skipped_and_logged(
    data: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="ttstream"):
        assert parse_event(ServerSentEvent(data=data)) is None
    assert any("not JSON" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


@pytest.mark.parametrize("data", ["{PING", ' \t{"type": "image_generation.completed", "b64'])
def test_data_that_starts_like_an_object_and_is_not_json_is_malformed(data: str) -> None:
    with pytest.raises(MalformedEventError, match="not JSON"):
        parse_event(ServerSentEvent(data=data))


@pytest.mark.parametrize("data", ["upstream overloaded " * 500_000, "{broken", '"a string"'])
def test_an_error_event_whose_data_is_not_an_object_is_a_stream_error(data: str) -> None:
    with pytest.raises(StreamError) as info:
        parse_event(ServerSentEvent(event="error", data=data, id="5"))
    assert data[:10] in str(info.value)
    assert len(str(info.value)) < 400  # shortened, whatever the server sent
    assert info.value.event_id == "5"


def test_deeply_nested_json_in_an_event_is_malformed() -> None:
    data = '{"a":' * 100_000 + "1" + "}" * 100_000
    with pytest.raises(MalformedEventError, match="nested too deeply"):
        parse_event(ServerSentEvent(event="image_generation.completed", data=data))


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, bytearray(b'{"a":' * 100_000)])
def test_deeply_nested_json_in_a_response_body_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError, match=r"nested too deeply|not JSON") as info:
        parse_response(body, operation="generation")
    assert not isinstance(info.value, RecursionError)
    assert len(str(info.value)) < 400


def test_a_raw_response_body_is_parsed() -> None:
    body = json.dumps({"created": 1, "data": [{"b64_json": B64}]}).encode()
    (event,) = parse_response(body, operation="generation")
    assert event.image_bytes == IMAGE
    with pytest.raises(ProtocolError, match="not JSON"):
        parse_response(memoryview(b"<html>"), operation="generation")
