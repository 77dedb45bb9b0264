"""How a decoded image is gathered (``ttstream/_imageline.py``, docs/fast.md): the first
image of a stream in a buffer grown by half at a time, the next ones in a buffer sized
from the previous image, grown again past that size. Whatever the sizes and the chunking, the
events are exactly those of the plain path (``decode_images=False``), on both base64
backends."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.base64_backends import NAMES, using
from ttstream import SSEDecoder, parse_event
from ttstream.events import decoded_data, image_decoder

KiB = 1024


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


def events(raw: bytes, chunk: int, *, decode_images: bool) -> list[object]:
    decoder = image_decoder() if decode_images else SSEDecoder()
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
)
def test_growth_and_hints_match_the_plain_path(sizes: list[int], chunk: int) -> None:
    """Any image sizes (growth past a hint, hints past the image, one-byte images) and any
    chunking: the fast path's images and data are the plain path's."""
    raw, images = stream(sizes)
    fast = events(raw, chunk, decode_images=True)
    plain = events(raw, chunk, decode_images=False)
    assert [sse.data for sse in fast] == [sse.data for sse in plain]
    assert [parse_event(sse).image_bytes for sse in fast] == images  # type: ignore[union-attr]
