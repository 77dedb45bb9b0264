"""ttstream._base64: the strict decoder behaves the same on both backends (pybase64 and
binascii), bytes and error messages alike; runs of the fast path agree with it."""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.base64_backends import NAMES, using
from ttstream import _base64

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@pytest.fixture(params=NAMES, autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[_base64.Codec]:
    with using(request.param) as codec:
        yield codec


def verdict(text: str) -> bytes | str:
    try:
        return _base64.codec().decode(text)
    except _base64.Base64Error as exc:
        return f"error: {exc}"


def reference(text: str) -> bytes | str:
    """The rule, written out: binascii's decoder plus the length check."""
    if len(text) % 4:
        return f"error: length {len(text)} is not a multiple of 4"
    try:
        out = binascii.a2b_base64(text)
    except (binascii.Error, ValueError) as exc:
        return f"error: {exc}"
    if len(out) != _base64.decoded_length(text):
        return "error: it holds characters outside the base64 alphabet"
    return out


CRAFTED = [
    "",
    "QQ==",
    "QUI=",
    "QUJD",
    "QR==",  # non-zero bits under the padding: accepted, as binascii accepts them
    "QUJ=" + "QUJD",
    "QQ==QUJD",
    "Q===",
    "====",
    "QQ",
    "QU=J",
    "QUJD\n",
    " QUJ",
    "QUJ\\",
    'QUJ"',
    "QUJé",
    "QU\x00D",
    "-_-_",  # the URL-safe alphabet is not this one
]


@pytest.mark.parametrize("text", CRAFTED)
def test_both_backends_decode_and_refuse_alike(text: str) -> None:
    assert verdict(text) == reference(text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=ALPHABET + "=\n \\é-_\x00", max_size=16))
def test_any_text_gets_the_reference_verdict(text: str) -> None:
    assert verdict(text) == reference(text)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=64))
def test_encode_then_decode(data: bytes) -> None:
    codec = _base64.codec()
    assert codec.encode(data) == base64.b64encode(data)
    assert codec.encode_text(data) == base64.b64encode(data).decode()
    assert codec.decode(codec.encode_text(data)) == data


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.text(alphabet=ALPHABET + "=\n\\é", min_size=4, max_size=16).filter(lambda t: len(t) % 4 == 0)
)
def test_a_last_run_is_taken_only_when_its_text_comes_back(text: str) -> None:
    run = text.encode()
    codec = _base64.codec()
    out = codec.decode_run(run, last=True)
    expected = reference(text)
    if out is not None:  # taken: exactly the decoder's bytes, and they encode back
        assert out == expected
        assert codec.encode_text(out) == text
    elif isinstance(expected, bytes):  # refused although valid: only non-canonical bits
        assert codec.encode_text(expected) != text
    # a run that is not the last takes no padding at all
    middle = codec.decode_run(run, last=False)
    if "=" in text:
        assert middle is None
    else:
        assert middle == (expected if isinstance(expected, bytes) else None)


def test_without_pybase64_binascii_is_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pybase64", None)  # import pybase64 now fails
    assert _base64._pybase64() is None
    assert "binascii" in _base64.BACKENDS


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(KeyError):
        _base64.set_backend("nope")


def test_the_mode_decodes_unless_a_relay_lacks_pybase64(monkeypatch: pytest.MonkeyPatch) -> None:
    for accelerated in (True, False):
        monkeypatch.setattr(_base64, "ACCELERATED", accelerated)
        assert _base64.decode_on_arrival(relays_base64=False)
        assert _base64.decode_on_arrival(relays_base64=True) is accelerated
    from ttstream.sinks import SSERelay

    assert SSERelay.relays_base64
