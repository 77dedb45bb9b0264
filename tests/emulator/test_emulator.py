"""The emulator over real loopback HTTP: it speaks the wire format of docs/sse.md."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image, ImageChops, ImageStat

from ttstream import Completed, PartialImage, SSEDecoder, ValidationError, parse_event
from ttstream.emulator import EmulatorServer, create_app
from ttstream.emulator import main as emulator_main

pytestmark = pytest.mark.anyio

KEY = {"TT-API-KEY": "test-key"}
SMALL = {"model": "gpt-image-2", "size": "64x64"}


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as running:
        yield running


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_key="the-right-key") as running:
        yield running


def client(server: EmulatorServer, headers: dict[str, str] | None = None) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        base_url=server.base_url, headers=KEY if headers is None else headers, timeout=30
    )


def events_of(body: bytes) -> list[PartialImage | Completed]:
    decoder = SSEDecoder()
    parsed = [parse_event(sse) for sse in [*decoder.feed(body), *decoder.close()]]
    return [event for event in parsed if event is not None]


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def png(color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / len(a.getbands())


def assert_error(response: httpx2.Response, status: int, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    return error


# -- authentication ------------------------------------------------------------------


async def test_a_request_without_a_key_is_401(server: EmulatorServer) -> None:
    async with client(server, headers={}) as http:
        response = await http.post("/images/generations", json={"prompt": "x", **SMALL})
    error = assert_error(response, 401, None)
    assert error["code"] == "invalid_api_key"
    assert re.fullmatch(r"req_[0-9a-f]{32}", response.headers["x-request-id"])


@pytest.mark.parametrize(
    "headers", [{"TT-API-KEY": "any"}, {"Authorization": "Bearer any"}], ids=["tt", "bearer"]
)
async def test_both_key_headers_are_accepted(
    server: EmulatorServer, headers: dict[str, str]
) -> None:
    async with client(server, headers=headers) as http:
        response = await http.post("/images/generations", json={"prompt": "x", **SMALL})
    assert response.status_code == 200, response.text


async def test_with_a_configured_key_only_that_key_passes(keyed_server: EmulatorServer) -> None:
    async with client(keyed_server, headers={"TT-API-KEY": "a-wrong-key"}) as http:
        wrong = await http.post("/images/generations", json={"prompt": "x", **SMALL})
        right = await http.post(
            "/images/generations",
            json={"prompt": "x", **SMALL},
            headers={"TT-API-KEY": "", "Authorization": "Bearer the-right-key"},
        )
    assert assert_error(wrong, 401, None)["code"] == "invalid_api_key"
    assert "a-wrong-key" not in wrong.text
    assert right.status_code == 200, right.text


# -- streaming -----------------------------------------------------------------------


async def test_a_streamed_generation_sends_previews_then_the_final_image(
    server: EmulatorServer,
) -> None:
    request = {
        "prompt": "a lighthouse at dusk",
        "model": "gpt-image-2",
        "size": "128x96",
        "quality": "low",
        "stream": True,
        "partial_images": 2,
    }
    async with client(server) as http:
        response = await http.post("/images/generations", json=request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"].startswith("req_")

    events = events_of(response.content)
    assert [type(event) for event in events] == [PartialImage, PartialImage, Completed]
    assert [event.index for event in events if isinstance(event, PartialImage)] == [0, 1]
    for event in events:
        assert event.operation == "generation"
        assert (event.size, event.quality, event.background, event.output_format) == (
            "128x96",
            "low",
            "opaque",
            "png",
        )
        assert isinstance(event.created_at, int)
        image = open_image(event.image_bytes)
        assert (image.format, image.size) == ("PNG", (128, 96))
    completed = events[-1]
    assert isinstance(completed, Completed)
    assert completed.usage is not None
    assert completed.usage.input_tokens_details is not None
    assert completed.usage.input_tokens_details.text_tokens == len("a lighthouse at dusk") // 4 + 1
    assert completed.usage.input_tokens_details.image_tokens == 0
    assert completed.usage.output_tokens == round(272 * 128 * 96 / 1024**2)
    assert completed.usage.total_tokens == (
        completed.usage.input_tokens + completed.usage.output_tokens  # type: ignore[operator]
    )


async def test_each_event_is_framed_exactly_as_the_real_api_frames_it(
    server: EmulatorServer,
) -> None:
    request = {"prompt": "framing", **SMALL, "stream": True, "partial_images": 1}
    async with client(server) as http:
        response = await http.post("/images/generations", json=request)
    body = response.content
    assert body.endswith(b"\n\n")
    frames = body[:-2].split(b"\n\n")
    names = []
    for frame in frames:
        match = re.fullmatch(rb"event: ([a-z_.]+)\ndata: (\{[^\n]*\})", frame)
        assert match is not None, frame[:200]
        name, data = match[1].decode(), json.loads(match[2])
        assert data["type"] == name
        names.append(name)
    assert names == ["image_generation.partial_image", "image_generation.completed"]
    assert b"\nid:" not in body
    assert b"\nretry:" not in body


async def test_a_transparent_webp_has_an_alpha_channel(server: EmulatorServer) -> None:
    request = {
        "prompt": "a red balloon",
        **SMALL,
        "background": "transparent",
        "output_format": "webp",
        "output_compression": 80,
        "stream": True,
    }
    async with client(server) as http:
        response = await http.post("/images/generations", json=request)
    (completed,) = events_of(response.content)
    assert (completed.background, completed.output_format) == ("transparent", "webp")
    image = open_image(completed.image_bytes)
    assert (image.format, image.mode) == ("WEBP", "RGBA")
    low, high = image.getchannel("A").getextrema()
    assert (low, high) == (0, 255)  # clear sky, opaque shapes


async def test_previews_converge_to_the_final_image(server: EmulatorServer) -> None:
    request = {"prompt": "a forest", **SMALL, "stream": True, "partial_images": 3}
    async with client(server) as http:
        response = await http.post("/images/generations", json=request)
    *previews, completed = [open_image(event.image_bytes) for event in events_of(response.content)]
    assert len(previews) == 3
    distances = [mean_difference(preview, completed) for preview in previews]
    assert distances == sorted(distances, reverse=True)
    assert len(set(distances)) == 3
    assert distances[-1] > 0


async def test_a_streamed_n_of_2_sends_each_image_in_turn(server: EmulatorServer) -> None:
    request = {"prompt": "twins", **SMALL, "n": 2, "stream": True, "partial_images": 1}
    async with client(server) as http:
        response = await http.post("/images/generations", json=request)
    events = events_of(response.content)
    assert [type(event).__name__ for event in events] == [
        "PartialImage",
        "Completed",
        "PartialImage",
        "Completed",
    ]
    assert events[1].image_bytes != events[3].image_bytes


# -- edits ---------------------------------------------------------------------------


async def test_a_multipart_edit_with_image_parts_streams_an_edit_of_the_upload(
    server: EmulatorServer,
) -> None:
    async def edit(color: tuple[int, int, int]) -> list[PartialImage | Completed]:
        files = [
            ("image[]", ("a.png", png(color), "image/png")),
            ("image[]", ("b.png", png((0, 0, 0), (600, 300)), "image/png")),
        ]
        data = {
            "prompt": "add a hat",
            "model": "gpt-image-1",
            "size": "1024x1024",
            "quality": "low",
            "n": "1",
            "stream": "true",
            "partial_images": "1",
        }
        async with client(server) as http:
            response = await http.post("/images/edits", data=data, files=files)
        assert response.status_code == 200, response.text
        return events_of(response.content)

    red, blue = await edit((255, 0, 0)), await edit((0, 0, 255))
    assert [type(event) for event in red] == [PartialImage, Completed]
    assert all(event.operation == "edit" for event in red)
    completed = red[-1]
    assert isinstance(completed, Completed)
    assert completed.usage is not None
    assert completed.usage.input_tokens_details is not None
    assert completed.usage.input_tokens_details.image_tokens == 65 * 1 + 65 * 2
    red_mean = ImageStat.Stat(open_image(red[-1].image_bytes)).mean
    blue_mean = ImageStat.Stat(open_image(blue[-1].image_bytes)).mean
    assert red_mean[0] > red_mean[2] + 50
    assert blue_mean[2] > blue_mean[0] + 50


async def test_a_json_edit_takes_image_url_and_file_id_references(
    server: EmulatorServer,
) -> None:
    request = {
        "prompt": "make it snow",
        **SMALL,
        "images": [{"image_url": "https://example.com/a.png"}, {"file_id": "file-123"}],
        "mask": {"image_url": "https://example.com/mask.png"},
    }
    async with client(server) as http:
        response = await http.post("/images/edits", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    (item,) = body["data"]
    assert open_image(base64.b64decode(item["b64_json"])).size == (64, 64)
    assert body["usage"]["input_tokens_details"]["image_tokens"] == 2 * 4 * 65
    assert (body["size"], body["quality"], body["background"]) == ("64x64", "medium", "opaque")


@pytest.mark.parametrize(
    ("images", "param"),
    [
        ([{"image_url": "https://a", "file_id": "f"}], "images"),
        ({"image_url": "https://a"}, "images"),
        ([], "images"),
    ],
)
async def test_a_json_edit_with_bad_references_is_400(
    server: EmulatorServer, images: object, param: str
) -> None:
    async with client(server) as http:
        response = await http.post("/images/edits", json={"prompt": "x", **SMALL, "images": images})
    assert_error(response, 400, param)


async def test_a_json_edit_decodes_a_data_url_like_an_upload(server: EmulatorServer) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(png((0, 200, 0))).decode()
    request = {"prompt": "x", **SMALL, "images": [{"image_url": data_url}]}
    async with client(server) as http:
        response = await http.post("/images/edits", json=request)
    body = response.json()
    assert body["usage"]["input_tokens_details"]["image_tokens"] == 65
    red, green, _ = ImageStat.Stat(open_image(base64.b64decode(body["data"][0]["b64_json"]))).mean
    assert green > red + 50


async def test_a_dall_e_2_edit_takes_one_square_png(server: EmulatorServer) -> None:
    data = {"prompt": "x", "model": "dall-e-2", "size": "256x256", "response_format": "b64_json"}
    async with client(server) as http:
        square = await http.post(
            "/images/edits", data=data, files=[("image", ("a.png", png((5, 5, 5)), "image/png"))]
        )
        oblong = await http.post(
            "/images/edits",
            data=data,
            files=[("image", ("a.png", png((5, 5, 5), (64, 32)), "image/png"))],
        )
    assert square.status_code == 200, square.text
    assert set(square.json()) == {"created", "data"}
    assert_error(oblong, 400, "images")


async def test_a_multipart_body_without_a_boundary_is_400(server: EmulatorServer) -> None:
    async with client(server) as http:
        response = await http.post(
            "/images/edits", content=b"x", headers={"content-type": "multipart/form-data"}
        )
    assert "boundary" in assert_error(response, 400, None)["message"]


async def test_a_multipart_edit_with_a_non_integer_n_is_400(server: EmulatorServer) -> None:
    files = [("image", ("a.png", png((1, 2, 3)), "image/png"))]
    async with client(server) as http:
        response = await http.post("/images/edits", data={"prompt": "x", "n": "two"}, files=files)
    assert_error(response, 400, "n")


async def test_an_upload_that_is_not_an_image_is_400(server: EmulatorServer) -> None:
    files = [("image", ("a.png", b"not an image", "image/png"))]
    async with client(server) as http:
        response = await http.post("/images/edits", data={"prompt": "x"}, files=files)
    assert assert_error(response, 400, "image")["code"] == "invalid_image_format"


# -- synchronous answers -------------------------------------------------------------


async def test_dall_e_2_answers_with_a_url_by_default(server: EmulatorServer) -> None:
    async with client(server) as http:
        response = await http.post(
            "/images/generations", json={"prompt": "a fox", "model": "dall-e-2", "size": "256x256"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"created", "data"}
        (item,) = body["data"]
        assert set(item) == {"url"}
        assert item["url"].startswith(f"http://127.0.0.1:{server.port}/")
        fetched = await http.get(item["url"], headers={})
        missing = await http.get(item["url"].replace("img_", "img_0"))
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/png"
    image = open_image(fetched.content)
    assert (image.format, image.size) == ("PNG", (256, 256))
    assert assert_error(missing, 404, None)["code"] == "not_found"


async def test_dall_e_2_answers_b64_json_when_asked(server: EmulatorServer) -> None:
    request = {
        "prompt": "a fox",
        "model": "dall-e-2",
        "size": "256x256",
        "n": 2,
        "response_format": "b64_json",
    }
    async with client(server) as http:
        response = await http.post("/images/generations", json=request)
    items = response.json()["data"]
    assert [set(item) for item in items] == [{"b64_json"}, {"b64_json"}]
    images = [base64.b64decode(item["b64_json"]) for item in items]
    assert images[0].startswith(b"\x89PNG\r\n\x1a\n")
    assert open_image(images[1]).size == (256, 256)
    assert images[0] != images[1]


async def test_dall_e_3_items_carry_a_revised_prompt(server: EmulatorServer) -> None:
    request = {"prompt": "a fox", "model": "dall-e-3", "response_format": "b64_json"}
    async with client(server) as http:
        response = await http.post("/images/generations", json=request)
    (item,) = response.json()["data"]
    assert item["revised_prompt"] == "A detailed rendering of: a fox"
    assert open_image(base64.b64decode(item["b64_json"])).size == (1024, 1024)


async def test_the_ttapi_legacy_endpoint_wraps_its_answer(server: EmulatorServer) -> None:
    legacy = server.base_url.removesuffix("/v1") + "/openai/v1/images/generations"
    async with client(server) as http:
        response = await http.post(legacy, json={"prompt": "a cat", "size": "1024x1024"})
        wrong_model = await http.post(legacy, json={"prompt": "a cat", "model": "dall-e-2"})
    body = response.json()
    assert (body["status"], body["message"]) == ("SUCCESS", "success")
    assert isinstance(body["data"]["created"], int)
    (item,) = body["data"]["data"]
    assert set(item) == {"url", "revised_prompt"}
    assert_error(wrong_model, 400, "model")


async def test_a_gpt_image_answer_carries_usage_and_the_settings_used(
    server: EmulatorServer,
) -> None:
    request = {"prompt": "a fox", **SMALL, "output_format": "jpeg", "output_compression": 50}
    async with client(server) as http:
        response = await http.post("/images/generations", json=request)
    body = response.json()
    assert body["output_format"] == "jpeg"
    assert body["usage"]["output_tokens"] == round(1056 * 64 * 64 / 1024**2)
    image = open_image(base64.b64decode(body["data"][0]["b64_json"]))
    assert (image.format, image.size) == ("JPEG", (64, 64))


async def test_the_same_request_gives_the_same_image(server: EmulatorServer) -> None:
    async def image(prompt: str) -> str:
        async with client(server) as http:
            response = await http.post("/images/generations", json={"prompt": prompt, **SMALL})
        return str(response.json()["data"][0]["b64_json"])

    first, again, other = await image("a boat"), await image("a boat"), await image("a car")
    assert first == again
    assert first != other


async def test_the_official_openai_sdk_understands_the_emulator(server: EmulatorServer) -> None:
    import openai

    async with openai.AsyncOpenAI(api_key="any", base_url=server.base_url) as sdk:
        stream = await sdk.images.generate(
            prompt="a cat", model="gpt-image-2", size="64x64", stream=True, partial_images=1
        )
        types = [event.type async for event in stream]
        edited = await sdk.images.edit(
            image=[("a.png", png((9, 9, 9)), "image/png")], prompt="a hat", model="gpt-image-2"
        )
    assert types == ["image_generation.partial_image", "image_generation.completed"]
    assert edited.usage is not None
    assert edited.data is not None
    assert open_image(base64.b64decode(edited.data[0].b64_json or "")).size == (1024, 1024)


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"model": "gpt-image-2"}, "prompt"),
        ({"prompt": "x", **SMALL, "partial_images": 5, "stream": True}, "partial_images"),
        ({"prompt": "x", "model": "dall-e-3", "stream": True}, "stream"),
        ({"prompt": "x", "model": "gpt-image-1", "size": "64x64"}, "size"),
        (
            {"prompt": "x", **SMALL, "background": "transparent", "output_format": "jpeg"},
            "background",
        ),
        ({"prompt": "x", "model": "some-future-model", "size": "65x64"}, "model"),
    ],
)
async def test_an_invalid_request_is_400_naming_the_parameter(
    server: EmulatorServer, request_body: dict[str, Any], param: str
) -> None:
    async with client(server) as http:
        response = await http.post("/images/generations", json=request_body)
    assert_error(response, 400, param)
    assert response.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]"])
async def test_a_body_that_is_not_a_json_object_is_400(
    server: EmulatorServer, content: bytes
) -> None:
    async with client(server) as http:
        response = await http.post(
            "/images/generations", content=content, headers={"content-type": "application/json"}
        )
    assert assert_error(response, 400, None)["code"] == "invalid_json"


async def test_an_unknown_url_is_404_with_the_error_json(server: EmulatorServer) -> None:
    async with client(server) as http:
        response = await http.post("/images/variations", json={})
    assert_error(response, 404, None)


# -- running -------------------------------------------------------------------------


def test_the_server_listens_on_a_free_port_and_stops_cleanly() -> None:
    with EmulatorServer(step_delay=0.05) as running:
        assert running.port > 0
        assert running.base_url == f"http://127.0.0.1:{running.port}/v1"
        with httpx2.Client(base_url=running.base_url, headers=KEY) as http:
            response = http.post("/images/generations", json={"prompt": "x", **SMALL})
        assert response.status_code == 200
        thread = running._thread
    assert thread is not None
    assert not thread.is_alive()
    with pytest.raises(RuntimeError):
        _ = running.port


@pytest.mark.parametrize("port", [99999, 65536, -1, True])
def test_a_port_out_of_range_is_refused_not_wrapped(port: int) -> None:
    # 99999 listened on 34463 (99999 modulo 65536), -1 was a socket.gaierror.
    with (
        pytest.raises(ValidationError, match="port must be an int from 0 to 65535"),
        EmulatorServer(port=port),
    ):
        pass


def test_the_command_refuses_a_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert emulator_main(["--port", "99999"], prog="ttstream emulator") == 2
    assert capsys.readouterr().err == (
        "ttstream emulator: error: --port must be an int from 0 to 65535 (0: a free port) "
        "(got 99999)\n"
    )


def test_create_app_refuses_a_negative_step_delay() -> None:
    with pytest.raises(ValueError, match="step_delay"):
        create_app(step_delay=-1)


@pytest.mark.parametrize("step_delay", ["0.5", float("inf"), float("nan")])
def test_a_step_delay_that_is_no_finite_number_is_refused(step_delay: float) -> None:
    # "0.5" raised a bare TypeError; an infinity (from `--step-delay inf` too) held every
    # stream forever, NaN failed each request.
    with pytest.raises(ValidationError, match="step_delay must be a finite number"):
        EmulatorServer(step_delay=step_delay)


def test_the_command_refuses_a_step_delay_that_is_no_finite_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert emulator_main(["--port", "0", "--step-delay", "inf"], prog="ttstream emulator") == 2
    assert capsys.readouterr().err == (
        "ttstream emulator: error: --step-delay must be a finite number of seconds >= 0\n"
    )


def test_the_command_says_what_a_client_needs_and_works_with_it() -> None:
    """``ttstream emulator`` prints the environment for ``AsyncClient()``; with it, a
    generation streams (no real key anywhere)."""
    command = Path(sys.executable).parent / "ttstream"
    with subprocess.Popen(
        [str(command), "emulator", "--port", "0", "--step-delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline() for _ in range(3)]
            settings = dict(item.split("=", 1) for item in lines[2].split(":", 1)[1].split())
            assert settings["TTAPI_API_KEY"] == "any"
            assert settings["TTAPI_BASE_URL"] == lines[0].split()[-1]
            env = {k: v for k, v in os.environ.items() if not k.endswith(("_KEY", "_URL"))}
            code = (
                "import ttstream\n"
                "with ttstream.Client() as client:\n"
                "    with client.generate('a kite', model='gpt-image-2') as stream:\n"
                "        print([type(event).__name__ for event in stream])\n"
            )
            result = subprocess.run(
                [sys.executable, "-c", code],
                env={**env, **settings},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == "['Completed']"
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


# -- what a new user hit (issue 21) ----------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-image2", "some-future-model", "GPT-IMAGE-2"])
async def test_an_unknown_model_is_refused_as_the_api_refuses_it(
    server: EmulatorServer, model: str
) -> None:
    async with client(server) as http:
        response = await http.post("/images/generations", json={"prompt": "x", "model": model})
    error = assert_error(response, 400, "model")
    assert error["code"] == "invalid_value"
    assert error["message"].startswith(f"Invalid value: {model!r}. Supported values are: ")
    assert "'gpt-image-2'" in error["message"]


async def test_an_unknown_tool_model_is_refused_naming_the_tool(server: EmulatorServer) -> None:
    tool = {"type": "image_generation", "model": "gpt-image2", "size": "64x48"}
    body = {"model": "gpt-5", "input": "a fox", "tools": [tool]}
    async with client(server) as http:
        response = await http.post("/responses", json=body)
    assert assert_error(response, 400, "tools[0].model")["code"] == "invalid_value"


@pytest.mark.parametrize(
    "upload", [b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a" + b"\x01" * 20]
)
async def test_an_unreadable_upload_is_described_without_an_object_repr(
    server: EmulatorServer, upload: bytes
) -> None:
    files = [("image", ("a.png", upload, "image/png"))]
    async with client(server) as http:
        response = await http.post("/images/edits", data={"prompt": "x"}, files=files)
    message = assert_error(response, 400, "image")["message"]
    assert message.startswith("Invalid image file for 'image': could not read the upload")
    assert "BytesIO" not in message
    assert " object at 0x" not in message


@pytest.mark.parametrize("after", ["9" * 5000, "--1", "-2", "1.5", "+1", "", " 1", "1" * 19])
async def test_a_starting_after_that_is_no_sequence_number_is_400(
    server: EmulatorServer, after: str
) -> None:
    tool = {"type": "image_generation", "size": "64x48"}
    body = {"model": "gpt-5", "input": "a fox", "tools": [tool], "background": True}
    async with client(server) as http:
        kept = await http.post("/responses", json=body)
        response = await http.get(
            f"/responses/{kept.json()['id']}", params={"stream": "true", "starting_after": after}
        )
    message = assert_error(response, 400, "starting_after")["message"]
    assert len(message) < 400  # 5,000 digits are not echoed back


async def test_a_starting_after_of_minus_one_or_a_number_streams(server: EmulatorServer) -> None:
    tool = {"type": "image_generation", "size": "64x48"}
    body = {"model": "gpt-5", "input": "a fox", "tools": [tool], "background": True}
    async with client(server) as http:
        kept = await http.post("/responses", json=body)
        url = f"/responses/{kept.json()['id']}"
        every = await http.get(url, params={"stream": "true", "starting_after": "-1"})
        later = await http.get(url, params={"stream": "true", "starting_after": "3"})
    assert (every.status_code, later.status_code) == (200, 200)
    assert b'sequence_number":3,' in every.content
    assert b'sequence_number":3,' not in later.content
    assert b'sequence_number":4,' in later.content


# -- the default fault, and waiting for every stream to close --------------------------


async def test_a_default_fault_applies_to_requests_that_name_none() -> None:
    with EmulatorServer(default_fault="status=503") as faulty:
        async with client(faulty) as http:
            plain = await http.post("/images/generations", json={"prompt": "x", **SMALL})
            named = await http.post(
                "/images/generations",
                json={"prompt": "x", **SMALL},
                headers={"X-Emulator-Fault": "status=418"},
            )
            queried = await http.post(
                "/images/generations?fault=status%3D429", json={"prompt": "x", **SMALL}
            )
            faulty.default_fault = None
            healthy = await http.post("/images/generations", json={"prompt": "x", **SMALL})
    assert [r.status_code for r in (plain, named, queried, healthy)] == [503, 418, 429, 200]
    assert faulty.stream_stats.requests("status=503") == 1


@pytest.mark.parametrize("spec", ["drop-sometimes", "status=700", "key=caf\u00e9", "ids\n"])
def test_a_default_fault_that_cannot_be_read_is_refused_at_once(spec: str) -> None:
    from ttstream.emulator import FaultSpecError

    with pytest.raises(FaultSpecError):
        EmulatorServer(default_fault=spec)
    with EmulatorServer() as running, pytest.raises(FaultSpecError):
        running.default_fault = spec


async def test_wait_closed_returns_once_the_emulator_closed_every_stream(
    server: EmulatorServer,
) -> None:
    body = {"prompt": "x", **SMALL, "stream": True, "partial_images": 2}
    async with client(server) as http:
        for _ in range(5):
            async with http.stream("POST", "/images/generations", json=body) as response:
                async for line in response.aiter_lines():
                    if "image_generation.completed" in line:
                        break  # leaves before the end of the body, as a client does
    await server.wait_closed(timeout=10)
    assert server.stream_stats.open_streams == 0
    assert server.stream_stats.requests_in_flight == 0


async def test_wait_closed_times_out_while_a_stream_stays_open() -> None:
    body = {"prompt": "x", **SMALL, "stream": True, "partial_images": 1}
    with EmulatorServer(default_fault="stall=30") as stalling:
        async with (
            client(stalling) as http,
            http.stream("POST", "/images/generations", json=body) as response,
        ):
            chunks = response.aiter_raw()
            assert b"partial_image" in await chunks.__anext__()  # then the stall: open
            with pytest.raises(TimeoutError, match="1 stream"):
                await stalling.wait_closed(timeout=0.2)
            assert stalling.stream_stats.open_streams == 1
            await chunks.aclose()  # type: ignore[attr-defined]


def test_wait_closed_refuses_a_negative_timeout(server: EmulatorServer) -> None:
    with pytest.raises(ValueError, match="timeout"):
        server.stream_stats.wait_closed(timeout=-1)


@pytest.mark.parametrize("timeout", [None, "5", float("inf"), float("nan")])
def test_wait_closed_refuses_a_timeout_that_is_no_bound(
    server: EmulatorServer, timeout: float
) -> None:
    # None and "5" raised a bare TypeError from a comparison; an infinity was taken (a
    # wait without end while a stream stays open).
    with pytest.raises(ValidationError, match="timeout must be a finite number of seconds >= 0"):
        server.stream_stats.wait_closed(timeout=timeout)


def test_the_package_exports_the_names_tests_need() -> None:
    import ttstream.emulator as emulator

    assert emulator.FAULT_HEADER == "X-Emulator-Fault"
    assert emulator.FAULT_QUERY == "fault"
    assert emulator.FaultSpec.parse("ids;drop-after=2").drop_after == 2
    assert isinstance(EmulatorServer().stream_stats, emulator.StreamStats)
