"""The current models and output formats (gif, svg) end to end: the client and the emulator
over loopback HTTP, both judging requests by the one table of ttstream.params."""

from __future__ import annotations

import base64
import io
import xml.dom.minidom
from typing import Any

import httpx2
import pytest
from PIL import Image

from tests.support.streams import collect
from ttstream import AsyncClient, Completed, ValidationError
from ttstream.client import DEFAULT_MODEL
from ttstream.emulator import EmulatorServer

pytestmark = pytest.mark.anyio

KEY = {"TT-API-KEY": "test-key"}


def http(server: EmulatorServer) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=server.base_url, headers=KEY, timeout=30)


def test_the_default_model_is_gpt_image_2() -> None:
    assert DEFAULT_MODEL == "gpt-image-2"


@pytest.mark.parametrize("frames", [2, 5])
async def test_a_gif_is_a_real_animated_gif_in_one_completed_event(
    server: EmulatorServer, frames: int
) -> None:
    async with AsyncClient("k", base_url=server.base_url) as client:
        stream = client.generate(
            "a spinning top", size="64x32", output_format="gif", frame_count=frames,
            frame_duration_ms=120,
        )  # fmt: skip
        events = await collect(stream)
    [final] = events
    assert isinstance(final, Completed)
    assert (final.operation, final.output_format, final.size) == ("generation", "gif", "64x32")
    with Image.open(io.BytesIO(final.image_bytes)) as image:
        assert (image.format, image.size, image.n_frames) == ("GIF", (64, 32), frames)
        assert image.info["duration"] == 120
        assert image.info["loop"] == 0


async def test_a_gif_defaults_to_nine_frames(server: EmulatorServer) -> None:
    async with http(server) as client:
        response = await client.post(
            "/images/generations", json={"prompt": "p", "size": "32x32", "output_format": "gif"}
        )
    body = response.json()
    assert (response.status_code, body["output_format"]) == (200, "gif")
    with Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"]))) as image:
        assert (image.n_frames, image.info["duration"]) == (9, 200)


async def test_an_svg_is_a_small_real_svg_document(server: EmulatorServer) -> None:
    async with AsyncClient("k", base_url=server.base_url) as client:
        [final] = await collect(
            client.edit(
                "a <b> & c",
                images=[{"image_url": "https://example.invalid/a.png"}],
                model="gpt-image-2.5-flare",
                size="96x48",
                output_format="svg",
                quality="xhigh",
            )
        )
    assert isinstance(final, Completed)
    assert (final.operation, final.output_format, final.quality) == ("edit", "svg", "xhigh")
    svg = xml.dom.minidom.parseString(final.image_bytes).documentElement
    assert svg.tagName == "svg"
    assert (svg.getAttribute("width"), svg.getAttribute("height")) == ("96", "48")
    assert svg.getElementsByTagName("rect")
    assert svg.getElementsByTagName("title")[0].firstChild.data == "a <b> & c"  # type: ignore[union-attr]
    assert len(final.image_bytes) < 20_000


@pytest.mark.parametrize(
    "model",
    ["gpt-image-2-2026-04-21", "gpt-image-2.5-sunburst-2026-09-08", "gpt-image-2.6-flare",
     "chatgpt-image-latest", "gpt-image-1-mini"],
)  # fmt: skip
async def test_the_new_models_stream_on_the_emulator(server: EmulatorServer, model: str) -> None:
    async with AsyncClient("k", base_url=server.base_url) as client:
        events = await collect(
            client.generate("p", model=model, size="1024x1024", partial_images=1, quality="low")
        )
    assert [type(e).__name__ for e in events] == ["PartialImage", "Completed"]


# One rule for the client and the emulator: each request below is refused by both, with
# the same parameter and the same words, or accepted by both.
SHARED = [
    ({"model": "gpt-image-2", "size": "999984x333328"}, "size"),
    ({"model": "gpt-image-2", "size": "4096x2048"}, "size"),
    ({"model": "gpt-image-2.5-flare", "size": "2896x2896"}, "size"),
    ({"model": "gpt-image-2.6-sunburst", "size": "1536x864"}, "size"),
    ({"model": "gpt-image-2", "quality": "max"}, "quality"),
    ({"model": "gpt-image-2", "complexity": "huge"}, "complexity"),
    ({"model": "gpt-image-2", "output_format": "gif", "stream": True}, "stream"),
    ({"model": "gpt-image-2", "output_format": "gif", "frame_count": 17}, "frame_count"),
    ({"model": "gpt-image-2", "output_format": "png", "frame_count": 3}, "frame_count"),
    ({"model": "gpt-image-2", "output_format": "svg", "n": 2}, "n"),
    ({"model": "gpt-image-2", "output_format": "svg", "output_compression": 5}, "output_compression"),  # noqa: E501
    ({"model": "gpt-image-2", "safety_identifier": 5}, "safety_identifier"),
    ({"model": "gpt-image-2", "size": "48x16"}, None),
    ({"model": "gpt-image-2.5-sunburst", "quality": "max", "complexity": "high", "size": "32x32"}, None),  # noqa: E501
    ({"model": "gpt-image-2", "output_format": "gif", "frame_count": 2, "n": 2, "size": "32x32"}, None),  # noqa: E501
    ({"model": "gpt-image-2", "safety_identifier": "h", "user": "u", "size": "16x16"}, None),
]  # fmt: skip


@pytest.mark.parametrize(("params", "param"), SHARED)
async def test_client_and_emulator_follow_one_rule(
    server: EmulatorServer, params: dict[str, Any], param: str | None
) -> None:
    params = dict(params)
    model = params.pop("model")
    body = {"prompt": "p", "model": model, **params}
    async with http(server) as client:
        response = await client.post("/images/generations", json=body)
    if param is None:
        assert response.status_code == 200, response.text
        async with AsyncClient("k", base_url=server.base_url) as ours:
            events = await collect(ours.generate("p", model=model, **params))
        assert all(isinstance(event, Completed) for event in events[-params.get("n", 1) :])
        return
    with pytest.raises(ValidationError) as caught:
        AsyncClient("k", base_url=server.base_url).generate("p", model=model, **params)
    error = response.json()["error"]
    assert (response.status_code, error["param"]) == (400, param)
    assert caught.value.param == param
    assert caught.value.allowed in error["message"]


async def test_the_emulator_refuses_a_mask_with_gif(server: EmulatorServer) -> None:
    async with http(server) as client:
        response = await client.post(
            "/images/edits",
            json={
                "prompt": "p",
                "images": [{"file_id": "file-1"}],
                "mask": {"file_id": "file-2"},
                "output_format": "gif",
            },
        )
    assert (response.status_code, response.json()["error"]["param"]) == (400, "mask")
