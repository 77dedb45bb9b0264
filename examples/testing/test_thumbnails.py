"""Testing your own code with ttstream's pytest plugin (fixtures from ttstream.testing).

Run: ``pytest examples/testing`` (needs ``pip install 'ttstream[emulator]'`` and pytest;
the plugin loads by itself). The code under test is ``thumbnail``: it generates an
image and makes a PNG thumbnail of it with Pillow, falling back to the last preview
when the stream breaks. The tests run it against the emulator, on a free port, with
and without faults (docs/testing.md).
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

import ttstream
from ttstream.emulator import EmulatorServer
from ttstream.sinks import to_pil

pytestmark = pytest.mark.anyio  # anyio's plugin runs them on asyncio (and trio where installed)

BOX = (64, 64)  # the thumbnail fits in this box


async def final_or_last_preview(
    client: ttstream.AsyncClient, prompt: str, **params: object
) -> ttstream.PartialImage | ttstream.Completed:
    """The final image's event, or the last preview's if the stream breaks after one."""
    try:
        async with client.generate(
            prompt, model="gpt-image-2", partial_images=2, **params
        ) as stream:
            async for event in stream:
                if isinstance(event, ttstream.Completed):
                    return event
    except ttstream.IncompleteStreamError as exc:
        if exc.last_partial is None:
            raise
        return exc.last_partial
    raise AssertionError("the stream ended without an image")


async def thumbnail(client: ttstream.AsyncClient, prompt: str, **params: object) -> bytes:
    """The code under test: a PNG thumbnail, at most ``BOX``, of the generated image
    (the aspect ratio kept, transparency too)."""
    event = await final_or_last_preview(client, prompt, **params)
    with to_pil(event) as image:
        image.thumbnail(BOX)
        out = io.BytesIO()
        image.save(out, format="PNG")
    return out.getvalue()


def opened(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image


async def test_a_wide_image_gives_a_wide_thumbnail(ttstream_client: ttstream.AsyncClient) -> None:
    with opened(await thumbnail(ttstream_client, "a kite", size="256x128")) as image:
        assert image.size == (64, 32)  # fits the box, keeps 2:1
        low, high = image.convert("L").getextrema()
        assert high - low > 32  # a picture, not a blank


async def test_a_transparent_background_stays_transparent(
    ttstream_client: ttstream.AsyncClient,
) -> None:
    png = await thumbnail(ttstream_client, "a kite", size="128x128", background="transparent")
    with opened(png) as image:
        assert image.size == BOX
        assert image.mode == "RGBA"
        assert image.getchannel("A").getextrema()[0] == 0  # some pixels are see-through


@pytest.mark.ttstream_faults("drop-between-events")
async def test_a_broken_stream_gives_the_thumbnail_of_the_last_preview(
    ttstream_client: ttstream.AsyncClient, ttstream_emulator: EmulatorServer
) -> None:
    with opened(await thumbnail(ttstream_client, "a kite", size="256x128")) as image:
        assert image.size == (64, 32)
    await ttstream_emulator.wait_closed(timeout=10)  # the emulator's side has caught up
    assert ttstream_emulator.stream_stats.open_streams == 0  # the connection was closed


@pytest.mark.parametrize("ttstream_faults", ["error-flat", "malformed-json", "status=500"])
async def test_other_failures_are_raised(ttstream_client: ttstream.AsyncClient) -> None:
    with pytest.raises(ttstream.TTStreamError):  # status=500: no retry, no backoff
        await thumbnail(ttstream_client, "a kite", size="256x128")


@pytest.mark.ttstream_faults("end-early")
async def test_code_that_builds_its_own_client(ttstream_env: str) -> None:
    async with ttstream.AsyncClient() as client:  # TTAPI_API_KEY / TTAPI_BASE_URL: emulator
        png = await thumbnail(client, "a kite", size="128x256")
    with opened(png) as image:
        assert image.size == (32, 64)
