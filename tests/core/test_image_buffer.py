"""How a decoded image is gathered (``ttstream/_imageline.py``, docs/fast.md): the first
image of a stream in a buffer grown by half at a time, or sized like the latest image of
the same request shape in an earlier stream (``ImageSizes``), the next ones in a buffer
sized from the previous image, grown again past that size. Whatever the sizes and the
chunking, the events are exactly those of the plain path (``decode_images=False``), on
both base64 backends."""

from __future__ import annotations

import base64
import random
import tracemalloc
from collections.abc import Hashable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.base64_backends import NAMES, using
from ttstream import SSEDecoder, ValidationError, parse_event
from ttstream._imagehook import image_shape
from ttstream.events import ImageLineHook, ImageSizes, decoded_data, image_decoder

KiB = 1024
CAP = 1 << 26  # the decoders' max_event_bytes here (SSEDecoder's default)


@pytest.fixture(params=NAMES, autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[None]:
    with using(request.param):
        yield


def stream(sizes: list[int], *, broken: int | None = None) -> tuple[bytes, list[bytes]]:
    """One event per size (previews, then the final image); the event at index
    ``broken`` has a backslash in the middle of its base64 (not plain base64: the line
    falls back to text)."""
    rng = random.Random(sum(sizes))
    images, frames = [], []
    for index, size in enumerate(sizes):
        image = rng.randbytes(size)
        b64 = base64.b64encode(image).decode()
        if index == broken:
            b64 = b64[: len(b64) // 2] + "\\/" + b64[len(b64) // 2 :]
        kind = "completed" if index == len(sizes) - 1 else "partial_image"
        more = f',"partial_image_index":{index}' if kind == "partial_image" else ""
        data = f'{{"type":"image_generation.{kind}","b64_json":"{b64}","size":"1x1"{more}}}'
        frames.append(f"event: image_generation.{kind}\ndata: {data}\n\n".encode())
        images.append(image)
    return b"".join(frames), images


def events(
    raw: bytes, chunk: int, *, decode_images: bool, hook: ImageLineHook | None = None
) -> list[object]:
    decoder = (
        SSEDecoder(line_hook=hook) if hook else image_decoder() if decode_images else SSEDecoder()
    )
    out = []
    for start in range(0, len(raw), chunk):
        out += decoder.feed(raw[start : start + chunk])
    return out


SIZES = [
    [300 * KiB] * 4,  # all alike: each image after the first fills its buffer exactly
    [100 * KiB, 300 * KiB, 50 * KiB, 300 * KiB],  # larger and smaller than the hint
    [1, 2, 3, 200 * KiB],  # tiny hints, then a large image
]


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("chunk", [7, 4 * KiB + 3, 64 * KiB, 256 * KiB, 1 << 22])
def test_images_are_exact_whatever_the_sizes_and_the_chunks(sizes: list[int], chunk: int) -> None:
    raw, images = stream(sizes)
    fast = events(raw, chunk, decode_images=True)
    plain = events(raw, chunk, decode_images=False)
    assert [parse_event(sse).image_bytes for sse in fast] == images  # type: ignore[union-attr]
    assert [sse.data for sse in fast] == [sse.data for sse in plain]
    assert all(decoded_data(sse) is not None for sse in fast)


@pytest.mark.parametrize("broken", [0, 2])
@pytest.mark.parametrize("chunk", [7, 64 * KiB])
def test_a_line_that_falls_back_after_a_hinted_buffer_gives_the_plain_text(
    broken: int, chunk: int
) -> None:
    raw, images = stream([200 * KiB] * 4, broken=broken)
    fast = events(raw, chunk, decode_images=True)
    plain = events(raw, chunk, decode_images=False)
    assert [sse.data for sse in fast] == [sse.data for sse in plain]
    assert decoded_data(fast[broken]) is None
    for index, sse in enumerate(fast):
        if index != broken:
            assert parse_event(sse).image_bytes == images[index]  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40 * KiB), min_size=1, max_size=5),
    chunk=st.integers(1, 70 * KiB),
    remembered=st.integers(0, 60 * KiB),
    cap=st.integers(1, 100 * KiB),
)
def test_growth_and_hints_match_the_plain_path(
    sizes: list[int], chunk: int, remembered: int, cap: int
) -> None:
    """Any image sizes (growth past a hint, hints past the image, one-byte images), any
    size remembered from an earlier stream (0: none) and cap it is taken up to, and any
    chunking: the fast path's images and data are the plain path's."""
    raw, images = stream(sizes)
    known = ImageSizes()
    if remembered:
        known.put("shape", remembered)
    hook = ImageLineHook(sizes=known, shape="shape", max_event_bytes=cap)
    fast = events(raw, chunk, decode_images=True, hook=hook)
    plain = events(raw, chunk, decode_images=False)
    assert [sse.data for sse in fast] == [sse.data for sse in plain]
    assert [parse_event(sse).image_bytes for sse in fast] == images  # type: ignore[union-attr]


def test_sizes_are_remembered_per_shape_the_least_recent_forgotten_first() -> None:
    sizes = ImageSizes(limit=2)
    sizes.put("a", 10)
    sizes.put("b", 20)
    sizes.put("a", 11)  # "b" is now the least recent
    sizes.put("c", 30)
    assert (sizes.get("a"), sizes.get("b"), sizes.get("c")) == (11, 0, 30)
    with pytest.raises(ValidationError, match="limit"):
        ImageSizes(limit=0)


def reserved(
    raw: bytes, sizes: ImageSizes, shape: Hashable, fed: int, max_event_bytes: int = 1 << 24
) -> int:
    """The peak of memory allocated while a new stream of ``shape`` takes one chunk of
    ``fed`` bytes of its first image's base64, the head of the line already fed."""
    hook = ImageLineHook(sizes=sizes, shape=shape, max_event_bytes=max_event_bytes)
    decoder = SSEDecoder(max_event_bytes, line_hook=hook)
    decoder.feed(raw[: 2 * KiB])
    chunk = raw[2 * KiB : 2 * KiB + fed]
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        decoder.feed(chunk)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if not tracing:
            tracemalloc.stop()


def test_a_new_stream_sizes_its_first_image_like_the_latest_of_its_shape() -> None:
    """The latest image's size of a shape is remembered (not the first one's), and a new
    stream of that shape makes its first image's buffer that large once the image holds
    a sixteenth of it, not before: a server makes a stream hold at most 16 times what
    it sent. A stream of another shape, or of none, does not, and records nothing."""
    sizes = ImageSizes()
    raw, images = stream([300 * KiB, 280 * KiB])
    hook = ImageLineHook(sizes=sizes, shape="a", max_event_bytes=CAP)
    first = events(raw, 64 * KiB, decode_images=True, hook=hook)
    assert [parse_event(sse).image_bytes for sse in first] == images  # type: ignore[union-attr]
    assert sizes.get("a") == 280 * KiB
    events(raw, 64 * KiB, decode_images=True, hook=ImageLineHook(sizes=sizes, shape=None))
    assert sizes.get(None) == 0
    assert reserved(raw, sizes, "a", fed=4 * KiB) < 64 * KiB  # 3 KiB of 280: too early
    assert reserved(raw, sizes, "a", fed=40 * KiB) >= 280 * KiB  # 30 KiB of 280
    assert reserved(raw, sizes, "b", fed=40 * KiB) < 100 * KiB


def test_a_remembered_size_is_taken_only_up_to_the_streams_own_event_cap() -> None:
    """Another client of the same shape may take larger events: a stream never makes a
    buffer larger than an event within its own ``max_event_bytes`` can hold."""
    sizes = ImageSizes()
    sizes.put("a", 4096 * KiB)
    raw, _ = stream([300 * KiB])
    assert reserved(raw, sizes, "a", fed=360 * KiB, max_event_bytes=1 << 23) >= 4096 * KiB
    clamped = reserved(raw, sizes, "a", fed=360 * KiB, max_event_bytes=600 * KiB)
    assert 450 * KiB <= clamped < 1024 * KiB


def test_a_line_that_falls_back_records_no_size() -> None:
    sizes = ImageSizes()
    raw, _ = stream([200 * KiB], broken=0)
    hook = ImageLineHook(sizes=sizes, shape="a", max_event_bytes=CAP)
    [sse] = events(raw, 64 * KiB, decode_images=True, hook=hook)
    assert decoded_data(sse) is None
    assert sizes.get("a") == 0


def test_a_shape_keeps_no_credentials_of_its_url() -> None:
    """The table outlives the clients: a key in the URL's user information or query
    (some gateways take one there) is left out of the shape."""
    fields = {"model": "gpt-image-2", "size": "1024x1024"}
    url = "https://user:s3cret@gw.example/v1/images/generations?key=s3cret"
    shape = image_shape(url, fields)
    assert "s3cret" not in repr(shape)
    assert shape == image_shape("https://GW.example/v1/images/generations", fields)
    assert shape != image_shape("https://gw.example:8443/v1/images/generations", fields)
    for odd in ("", "no scheme", "http://[::1", "http://h:99999/v1#s3cret", "http://@/?"):
        assert "s3cret" not in repr(image_shape(odd, fields))


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"keys": "b64_json"}, "keys"),  # a str, not a tuple: its letters would be keys
        ({"keys": ()}, "keys"),
        ({"keys": ("",)}, "keys"),
        ({"shape": ["a"]}, "shape"),
        ({"shape": "a"}, "max_event_bytes"),  # a shape's sizes are capped by the decoder's
        ({"shape": "a", "max_event_bytes": 0}, "max_event_bytes"),
    ],
)
def test_a_hook_is_refused_at_construction_naming_the_argument(
    arguments: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        ImageLineHook(**arguments)  # type: ignore[arg-type]
    assert caught.value.param == named


@pytest.mark.parametrize(
    ("shape", "size", "named"), [("a", -1, "size"), ("a", "big", "size"), ([1], 1, "shape")]
)
def test_a_size_is_put_only_as_bytes_under_a_key(shape: object, size: object, named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ImageSizes().put(shape, size)  # type: ignore[arg-type]
    assert caught.value.param == named
