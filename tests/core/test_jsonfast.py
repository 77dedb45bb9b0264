"""The one JSON fast path (``ttstream._jsonfast.loads_cutting``) against ``json.loads``:
for any text and any pieces, it gives exactly what ``json.loads`` gives (the strings cut
put back, or ``None`` in their place) or declines (``None``); it declines no plain
image."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ttstream._jsonfast import loads_cutting

KEYS = ("b64_json", "result")
B64 = st.text(alphabet="ABCDEFabcdef0123456789+/=", min_size=1, max_size=300)
# what may break a string cut verbatim: escapes, control characters, quotes, non-ASCII
ODD = st.sampled_from(["\\/", "\\u0041", "\\\\", '\\"', "\t", "\x01", "\x00", "é", "\U0001f600"])
NAMES = st.sampled_from([*KEYS, '"b64_json', "b64_json\\", "result\\", "x", "type", ""])


def image(plain: bool) -> st.SearchStrategy[str]:
    if plain:
        return B64
    return st.builds(lambda a, odd, b: a + odd + b, B64, ODD, B64) | B64


def values(plain: bool) -> st.SearchStrategy[Any]:
    floats = st.floats(allow_nan=not plain, allow_infinity=not plain)
    texts = st.text(alphabet="xyz é", max_size=6) if plain else st.text(max_size=6)
    scalars = st.none() | st.booleans() | st.integers() | floats | texts
    return st.recursive(
        scalars | image(plain),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                NAMES if not plain else st.sampled_from([*KEYS, "x"]), inner, max_size=4
            )
        ),
        max_leaves=12,
    )


@st.composite
def json_texts(draw: st.DrawFn, plain: bool = False) -> str:
    value = draw(values(plain))
    key = draw(st.sampled_from(KEYS))
    value = {"type": "t", key: draw(image(plain)), "inner": value}
    spaced = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : "), None]))
    text = json.dumps(value, separators=spaced, indent=None if spaced else 2, ensure_ascii=False)
    if not plain and draw(st.integers(0, 3)) == 0:  # a raw control character in the image
        found = re.search(f'"{key}"[ \n]*:[ \n]*"', text)
        assert found is not None
        at = found.end() + draw(st.integers(0, 1))
        text = text[:at] + draw(st.sampled_from(["\x00", "\x1f", "\t", "\n"])) + text[at:]
    if not plain and draw(st.integers(0, 4)) == 0:  # break it somewhere
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(st.sampled_from(["", ",", "}", '"', "\\", "x", "\ufeff", "\x1f", "\t"]))
            + text[at:]
        )
    return text


def nulled(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return {
            k: None if k == key and isinstance(v, str) else nulled(v, key) for k, v in value.items()
        }
    if isinstance(value, list):
        return [nulled(v, key) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    """Equal, NaN included, and dicts in the same order."""
    return json.dumps(a, sort_keys=False) == json.dumps(b, sort_keys=False)


@settings(max_examples=400, deadline=None)
@given(
    json_texts(), st.sampled_from(KEYS), st.booleans(), st.lists(st.integers(0, 2000), max_size=5)
)
def test_it_is_json_loads_or_it_declines(text: str, key: str, keep: bool, cuts: list[int]) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError:
        expected = ValueError
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)] or [text]
    found = loads_cutting(pieces, key, keep=keep)
    if found is None:
        return
    assert expected is not ValueError
    value, cut = found
    assert same(value, expected if keep else nulled(expected, key))
    assert all(string in text for string in cut)


@settings(max_examples=200, deadline=None)
@given(json_texts(plain=True))
def test_it_takes_every_plain_image(text: str) -> None:
    """No escape in an image, no NaN, one piece: never left to json.loads."""
    for key in KEYS:
        if re.search(f'"{key}"[ \t\n\r]*:[ \t\n\r]*"', text):  # a string to cut
            found = loads_cutting([text], key, keep=True)
            assert found is not None
            assert same(found[0], json.loads(text))


def test_a_name_ending_in_an_escaped_quote_is_not_the_member() -> None:
    text = '{"\\"b64_json": "QQ==", "b64_json": "QUJD"}'
    assert loads_cutting([text], "b64_json", keep=True) == (json.loads(text), ["QUJD"])
    assert loads_cutting([text], "b64_json", keep=False) == (
        {'"b64_json': "QQ==", "b64_json": None},
        ["QUJD"],
    )


def test_a_nan_of_the_data_is_left_to_json_loads() -> None:
    assert loads_cutting(['{"result": "QQ==", "n": NaN}'], "result", keep=False) is None
    assert loads_cutting(['{"n": NaN, "result": "QQ=="}'], "result", keep=False) is None


def test_a_string_spans_pieces() -> None:
    pieces = ['{"type": "t", "b64_json": "QU', "JD", 'RE", "n": 1}']
    assert loads_cutting(pieces, "b64_json", keep=True) == (
        {"type": "t", "b64_json": "QUJDRE", "n": 1},
        ["QUJDRE"],
    )
