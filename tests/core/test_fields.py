"""The one typed-field extractor and error-event parser (``ttstream._fields``): the
Images and the Responses shapes differ only by their parameters."""

from __future__ import annotations

import pytest

from ttstream import MalformedEventError, StreamError
from ttstream._fields import Fields, error_event, stream_error


def test_a_named_object_names_itself_in_its_errors() -> None:
    fields = Fields({"n": "1", "usage": {"total_tokens": True}}, "image_generation.completed")
    with pytest.raises(
        MalformedEventError,
        match=r": image_generation.completed field 'n' should be int, got str '1'",
    ):
        fields.take("n", int)
    with pytest.raises(MalformedEventError, match=r": image_generation.completed has no 'x' field"):
        fields.required("x", str)
    usage = fields.nested("usage")
    assert usage is not None
    with pytest.raises(
        MalformedEventError,
        match=r": image_generation.completed.usage field 'total_tokens' should be int, got bool",
    ):
        usage.take("total_tokens", int)


def test_the_event_itself_is_unnamed() -> None:
    fields = Fields({"n": 1.5, "usage": {"total_tokens": "3"}}, event="e", event_id="7")
    with pytest.raises(
        MalformedEventError, match=r": field 'n' should be int, got float 1.5"
    ) as info:
        fields.peek("n", int)
    assert (info.value.event, info.value.event_id) == ("e", "7")
    with pytest.raises(MalformedEventError, match=r": the event has no 'x' field"):
        fields.required("x", str, keep=True)
    usage = fields.nested("usage")
    assert usage is not None
    with pytest.raises(MalformedEventError, match=r": field 'total_tokens' should be int"):
        usage.take("total_tokens", int)


def test_peek_leaves_a_field_in_extra_take_removes_it() -> None:
    obj = {"a": 1, "b": "x", "c": None}
    fields = Fields(obj)
    assert fields.peek("a", int) == 1
    assert fields.take("b", str) == "x"
    assert fields.take("c", str) is None
    assert fields.extra() == {"a": 1}
    assert obj == {"a": 1, "b": "x", "c": None}  # the object given is never changed


@pytest.mark.parametrize("flat_type", [False, True])
def test_an_error_event_nested_or_flat(flat_type: bool) -> None:
    nested = {"type": "error", "error": {"message": "m", "code": 5, "type": "t", "param": "p"}}
    error = error_event(nested, fallback="f", flat_type=flat_type, sequence_number=3)
    assert isinstance(error, StreamError)
    assert (error.message, error.code, error.param, error.type) == ("m", "5", "p", "t")
    assert error.sequence_number == 3
    flat = error_event({"type": "error", "code": "c"}, fallback="none", flat_type=flat_type)
    assert (flat.message, flat.code) == ("none", "c")
    assert flat.type == ("error" if flat_type else None)


def test_an_error_object_without_a_type_gets_the_default() -> None:
    error = stream_error(
        {}, fallback="image item i failed", default_type="x.failed", response_id="r"
    )
    assert (error.message, error.type, error.response_id) == (
        "image item i failed",
        "x.failed",
        "r",
    )
