"""JSON from outside the process, its nesting bounded (``ttstream._json``): ``loads``
gives exactly ``json.loads``'s value for any JSON nested at most ``MAX_DEPTH`` levels,
and refuses deeper nesting before ``json.loads`` recurses into it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttstream._json import MAX_DEPTH, NestedTooDeeply, loads, too_deep

# strings full of what the scan must not count: brackets, quotes, backslashes
TEXTS = st.text(alphabet='[]{}"\\ xé\n', max_size=8)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXTS
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=30,
)


def depth(value: Any) -> int:
    """The nesting of arrays and objects of a parsed value (a scalar is 0)."""
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


def nest(value: Any, levels: int) -> Any:
    for number in range(levels):
        value = [value] if number % 2 else {"[{": value}
    return value


def padded(value: Any, pad: str) -> Any:
    """``value`` inside a text long enough for the long paths: after a long string
    holding escaped quotes and brackets (jumped over), after more strings than are
    jumped over one by one (the rest checked in bulk), or after more than a block of
    brackets outside strings (added up block by block)."""
    if pad == "long":
        return ['\\"' + "[" * 300 + "A" * 20_000, value]
    if pad == "many":
        return [*(['\\"[{' * 100] * 80), "B" * 20_000, value]
    if pad == "wide":
        return [[[1]] * 40_000, value]
    return value


@given(
    VALUES,
    st.integers(0, MAX_DEPTH + 3),
    st.sampled_from(["str", "utf-8", "utf-16"]),
    st.sampled_from(["none", "long", "many", "wide"]),
)
def test_loads_is_json_loads_up_to_the_bound(value: Any, extra: int, form: str, pad: str) -> None:
    value = padded(nest(value, extra), pad)
    text = json.dumps(value, ensure_ascii=False)
    data: str | bytes = text if form == "str" else text.encode(form)
    if depth(value) <= MAX_DEPTH:
        assert loads(data) == json.loads(data)
        assert too_deep(text) is None
        return
    with pytest.raises(NestedTooDeeply) as info:
        loads(data)
    # the position is the opening bracket of the first level too many
    assert text[info.value.pos] in "[{"
    assert too_deep(text[: info.value.pos]) is None
    assert too_deep(text[: info.value.pos + 1]) == info.value.pos


def test_brackets_inside_strings_and_escaped_quotes_are_not_nesting() -> None:
    text = json.dumps(["[" * 500, '\\"{' * 300, {"{": "]" * 200}])
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize(
    "text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000]
)
def test_hostile_nesting_is_refused_without_recursing(text: str) -> None:
    # json.loads itself raises RecursionError here, after recursing to the limit
    with pytest.raises(RecursionError):
        json.loads(text)
    with pytest.raises(NestedTooDeeply, match=f"more than {MAX_DEPTH} levels") as info:
        loads(text)
    assert isinstance(info.value, ValueError)
    assert info.value.pos == MAX_DEPTH * (1 if text[0] == "[" else 5)


def test_loads_keeps_json_loads_options_and_errors() -> None:
    assert loads('{"a": 1.5}', parse_float=str) == {"a": "1.5"}
    with pytest.raises(json.JSONDecodeError):
        loads("[1,")
    with pytest.raises(UnicodeDecodeError):
        loads(b"\xff\xfe\x00")


def test_loads_refuses_what_json_loads_refuses_by_type() -> None:
    for value in (5, None, memoryview(b"[]")):
        with pytest.raises(TypeError, match="must be str, bytes or bytearray"):
            loads(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("levels", [MAX_DEPTH - 1, MAX_DEPTH, 100_000])
@pytest.mark.parametrize("place", ["before", "after"])
def test_the_image_fast_path_keeps_the_bound(levels: int, place: str) -> None:
    # a member nested around the image string: inside the event's object, so one level
    # deeper than its own brackets; the fast path takes it exactly when loads does
    # (once it recursed into 100,000 levels after the image's closing quote)
    from ttstream._imagehook import decoded_data, image_decoder

    member = '"x":' + "[" * levels + "]" * levels
    image = '"b64_json":"QUFB"'
    members = [member, image] if place == "before" else [image, member]
    data = '{"type":"image_generation.partial_image",' + ",".join(members) + "}"
    (event,) = image_decoder(max_event_bytes=10_000_000).feed(f"data: {data}\n\n".encode())
    fast = decoded_data(event)
    if levels + 1 <= MAX_DEPTH:
        assert fast is not None
        assert fast.members == {**loads(data), "b64_json": b"AAA"}
    else:
        assert fast is None
        with pytest.raises(NestedTooDeeply):
            loads(data)
