"""Testing your own code with ttstream's pytest plugin (fixtures from ttstream.testing).

Run: ``pytest examples/testing`` (needs ``pip install 'ttstream[emulator]'`` and pytest;
the plugin loads by itself). The code under test is ``first_preview_or_final``; the
tests run it against the emulator, on a free port, with and without faults.
"""

from __future__ import annotations

import pytest

import ttstream
from ttstream.emulator import EmulatorServer

pytestmark = pytest.mark.anyio  # anyio's pytest plugin runs the async tests (asyncio)


async def first_preview_or_final(client: ttstream.AsyncClient, prompt: str) -> bytes:
    """The code under test: the final image, or the last preview if the stream breaks."""
    try:
        async with client.generate(
            prompt, model="gpt-image-2", size="64x48", partial_images=2
        ) as stream:
            async for event in stream:
                if isinstance(event, ttstream.Completed):
                    return event.image_bytes
    except ttstream.IncompleteStreamError as exc:
        if exc.last_partial is None:
            raise
        return exc.last_partial.image_bytes
    raise AssertionError("the stream ended without an image")


async def test_returns_the_final_image(ttstream_client: ttstream.AsyncClient) -> None:
    image = await first_preview_or_final(ttstream_client, "a kite")
    assert image.startswith(b"\x89PNG")


@pytest.mark.ttstream_faults("drop-between-events")
async def test_falls_back_to_the_last_preview(
    ttstream_client: ttstream.AsyncClient, ttstream_emulator: EmulatorServer
) -> None:
    image = await first_preview_or_final(ttstream_client, "a kite")
    assert image.startswith(b"\x89PNG")
    assert ttstream_emulator.stream_stats.open_streams == 0  # the connection was closed


@pytest.mark.parametrize("ttstream_faults", ["error-flat", "malformed-json"])
async def test_other_failures_are_raised(ttstream_client: ttstream.AsyncClient) -> None:
    with pytest.raises(ttstream.TTStreamError):
        await first_preview_or_final(ttstream_client, "a kite")


@pytest.mark.ttstream_faults("end-early")
async def test_code_that_builds_its_own_client(ttstream_env: str) -> None:
    async with ttstream.AsyncClient() as client:  # TTAPI_API_KEY / TTAPI_BASE_URL: emulator
        image = await first_preview_or_final(client, "a kite")
    assert image.startswith(b"\x89PNG")
