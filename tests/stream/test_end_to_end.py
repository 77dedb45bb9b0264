"""ttstream against the emulator over real loopback HTTP, on asyncio and trio."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from PIL import Image

import ttstream
from tests.support.streams import collect
from ttstream import (
    APIStatusError,
    AsyncClient,
    Completed,
    PartialImage,
    ValidationError,
)
from ttstream.emulator import EmulatorServer, api_or_emulator

pytestmark = pytest.mark.anyio

SIZE = "64x48"  # gpt-image-2 takes any WxH of multiples of 16: small keeps tests fast


@pytest.fixture(scope="module")
def azure_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=0.0, azure=True) as running:
        yield running


@pytest.fixture(params=["openai", "azure"])
def client(request: pytest.FixtureRequest, server: EmulatorServer) -> AsyncClient:
    """The same streaming checks through OpenAI's URLs and through Azure's (docs/azure.md):
    deployment URLs with ``api-version``, the ``api-key`` header, no ``model`` sent."""
    if request.param == "openai":
        return AsyncClient("emulator-key", base_url=server.base_url)
    azure: EmulatorServer = request.getfixturevalue("azure_server")
    return ttstream.AsyncAzureClient(
        "emulator-key",
        azure_endpoint=azure.endpoint,
        azure_deployment="gpt-image-2",
        api_version="2025-04-01-preview",
    )


def opened(event: ttstream.Event) -> Image.Image:
    image = Image.open(io.BytesIO(event.image_bytes))
    image.load()
    return image


async def test_generation_streams_previews_then_the_final_image(client: AsyncClient) -> None:
    async with client:
        events = await collect(
            client.generate(
                "a lighthouse at dusk", model="gpt-image-2", size=SIZE, partial_images=2
            )
        )
    assert [type(e) for e in events] == [PartialImage, PartialImage, Completed]
    assert [e.index for e in events if isinstance(e, PartialImage)] == [0, 1]
    final = events[-1]
    assert isinstance(final, Completed)
    assert (final.operation, final.size, final.output_format) == ("generation", SIZE, "png")
    assert final.usage is not None
    assert final.usage.total_tokens
    for event in events:
        image = opened(event)
        assert (image.format, image.size) == ("PNG", (64, 48))


async def test_transparent_webp_has_alpha(client: AsyncClient) -> None:
    async with client:
        [final] = await collect(
            client.generate(
                "a kite",
                model="gpt-image-2",
                size=SIZE,
                background="transparent",
                output_format="webp",
            )
        )
    image = opened(final)
    assert image.format == "WEBP"
    assert image.mode == "RGBA"


async def test_edit_with_files_streams_edit_events(client: AsyncClient, tmp_path: Path) -> None:
    source = tmp_path / "source.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(source)
    async with client:
        events = await collect(
            client.edit(
                "add a hat",
                images=[source, source.read_bytes()],
                model="gpt-image-1",
                partial_images=1,
                input_fidelity="high",
            )
        )
    assert [type(e) for e in events] == [PartialImage, Completed]
    assert {e.operation for e in events} == {"edit"}
    assert opened(events[-1]).size == (1024, 1024)


async def test_edit_with_references_is_accepted(client: AsyncClient) -> None:
    async with client:
        [final] = await collect(
            client.edit(
                "add a hat",
                images={"image_url": "https://example.test/cat.png"},
                model="gpt-image-2",
                size=SIZE,
            )
        )
    assert isinstance(final, Completed)
    assert opened(final).size == (64, 48)


@pytest.mark.parametrize(
    ("model", "params", "size"),
    [
        ("dall-e-2", {"size": "256x256"}, (256, 256)),
        ("dall-e-2", {"size": "256x256", "response_format": "b64_json", "n": 2}, (256, 256)),
        ("dall-e-3", {"size": "1024x1024", "response_format": "b64_json"}, (1024, 1024)),
        ("gpt-image-2", {"size": SIZE, "stream": False}, (64, 48)),
    ],
)
async def test_every_non_streaming_path_yields_completed_events(
    client: AsyncClient, model: str, params: dict[str, Any], size: tuple[int, int]
) -> None:
    async with client:
        events = await collect(client.generate("a red fox", model=model, **params))
        assert len(events) == params.get("n", 1)
        for event in events:
            assert isinstance(event, Completed)
            image = Image.open(io.BytesIO(await client.fetch_image(event)))
            assert image.size == size
    if model == "dall-e-3":
        assert isinstance(events[0], Completed)
        assert events[0].revised_prompt


async def test_url_results_are_fetched_from_the_emulator(client: AsyncClient) -> None:
    async with client:
        [event] = await collect(client.generate("a red fox", model="dall-e-2", size="256x256"))
        assert isinstance(event, Completed)
        assert event.url is not None
        assert event.b64_json is None
        assert (await client.fetch_image(event)).startswith(b"\x89PNG")


async def test_fetch_image_of_no_event_names_the_argument(server: EmulatorServer) -> None:
    # None (a loop that kept no Completed) and the URL string itself raised a bare
    # AttributeError from inside the library.
    async with AsyncClient("emulator-key", base_url=server.base_url) as client:
        [event] = await collect(client.generate("a red fox", model="dall-e-2", size="256x256"))
        assert isinstance(event, Completed)
        for wrong in (None, event.url):
            with pytest.raises(ValidationError, match="event must be a Completed event"):
                await client.fetch_image(wrong)  # type: ignore[arg-type]


async def test_ttapi_legacy_dall_e_3_envelope(server: EmulatorServer) -> None:
    base_url = server.base_url.removesuffix("/v1") + "/openai/v1"
    async with AsyncClient("emulator-key", base_url=base_url) as client:
        [event] = await collect(client.generate("a cat", model="dall-e-3", size="1024x1024"))
    assert isinstance(event, Completed)
    assert event.url is not None


async def test_a_wrong_key_is_an_api_status_error_without_the_key() -> None:
    with EmulatorServer(api_key="the-right-key") as server:
        async with AsyncClient("sk-wrong-canary-91", base_url=server.base_url) as client:
            with pytest.raises(APIStatusError) as info:
                await collect(client.generate("a cat", model="gpt-image-2", size=SIZE))
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert info.value.request_id
    assert "sk-wrong-canary-91" not in str(info.value) + repr(info.value.body)


async def test_the_emulator_refuses_what_the_client_would_refuse(server: EmulatorServer) -> None:
    import httpx2

    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{server.base_url}/images/generations",
            headers={"Authorization": "Bearer k"},
            json={"model": "dall-e-3", "prompt": "a cat", "n": 3},
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "n"
    with pytest.raises(ValidationError):  # and the client refuses it before connecting
        AsyncClient("k", base_url=server.base_url).generate("a cat", model="dall-e-3", n=3)


async def test_the_official_openai_sdk_sees_the_same_events(server: EmulatorServer) -> None:
    import openai

    params: dict[str, Any] = {"model": "gpt-image-2", "size": SIZE, "partial_images": 2}
    sdk = openai.AsyncOpenAI(api_key="emulator-key", base_url=server.base_url)
    theirs = []
    async with sdk:
        stream = await sdk.images.generate(prompt="a heron", stream=True, **params)
        async for event in stream:
            theirs.append((event.type, event.b64_json))
    async with AsyncClient("emulator-key", base_url=server.base_url) as client:
        ours = await collect(client.generate("a heron", **params))
    kinds = {PartialImage: "partial_image", Completed: "completed"}
    assert [(f"image_{e.operation}.{kinds[type(e)]}", e.b64_json) for e in ours] == theirs


# -- the command line ----------------------------------------------------------------------


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTAPI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr("ttstream.cli._EMULATOR_STEP_DELAY", 0.0)


@pytest.mark.usefixtures("no_keys")
def test_cli_generate_without_key_uses_the_emulator_and_writes_every_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ttstream.cli import main

    status = main(
        [
            "generate",
            "a lighthouse",
            "--model",
            "gpt-image-2",
            "--size",
            SIZE,
            "--partial-images",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "built-in emulator" in out
    names = sorted(path.name for path in tmp_path.iterdir())
    assert len(names) == 3
    assert sum(name.endswith("-final.png") for name in names) == 1
    assert sum("-partial-" in name for name in names) == 2
    for name in names:
        assert name in out
        with Image.open(tmp_path / name) as image:
            assert image.size == (64, 48)


@pytest.mark.usefixtures("no_keys")
def test_cli_edit_writes_the_edited_image(tmp_path: Path) -> None:
    from ttstream.cli import main

    source = tmp_path / "in.png"
    Image.new("RGB", (16, 16), "blue").save(source)
    status = main(
        [
            "edit",
            "make it red",
            "--image",
            str(source),
            "--model",
            "gpt-image-2",
            "--size",
            SIZE,
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert status == 0
    [final] = (tmp_path / "out").iterdir()
    assert final.name.endswith("-final.png")


@pytest.mark.usefixtures("no_keys")
def test_cli_errors_are_one_line_and_a_non_zero_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ttstream.cli import main

    status = main(
        ["generate", "a cat", "--model", "dall-e-3", "--size", "64x64", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert status == 2  # a usage error, found before anything starts
    assert err.count("\n") == 1
    assert err.startswith("ttstream: error: --size 64x64 is not allowed for dall-e-3: ")
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from ttstream.cli import main

    with pytest.raises(SystemExit) as info:
        main(["generate"])
    assert info.value.code == 2
    assert "prompt" in capsys.readouterr().err


def test_python_dash_m_ttstream_emulator_help() -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "ttstream.emulator", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "--step-delay" in result.stdout


# -- cancellation over a real connection: the pool's view --------------------------------


def busy_connections(http: httpx2.AsyncClient) -> list[object]:
    """Connections of httpx's pool that are neither idle nor closed (httpcore's public
    connection API; httpx keeps its pool on a private attribute)."""
    pool = http._transport._pool  # type: ignore[attr-defined]
    return [c for c in pool.connections if not (c.is_idle() or c.is_closed())]


async def leave_early(stream: ttstream.ImageStream, http: httpx2.AsyncClient, exit_by: str) -> None:
    with anyio.move_on_after(0.3 if exit_by == "cancel" else 10):
        async with stream:
            async for _ in stream:
                assert busy_connections(http) != []  # mid-stream: one is in use
                if exit_by == "break":
                    break
                if exit_by == "exception":
                    raise KeyError("consumer bug")


@pytest.mark.parametrize("exit_by", ["break", "cancel", "exception"])
async def test_leaving_a_stream_early_frees_its_connection(exit_by: str) -> None:
    with EmulatorServer(step_delay=0.2) as slow:
        http = httpx2.AsyncClient()
        async with AsyncClient("k", base_url=slow.base_url, http_client=http) as client:
            stream = client.generate("a kite", model="gpt-image-2", size=SIZE, partial_images=3)
            expected = (
                pytest.raises(KeyError) if exit_by == "exception" else contextlib.nullcontext()
            )
            with expected:
                await leave_early(stream, http, exit_by)
            assert busy_connections(http) == []
            # The client stays usable.
            events = await collect(client.generate("a kite", model="gpt-image-2", size=SIZE))
            assert isinstance(events[-1], Completed)
        await http.aclose()


async def test_a_misspelt_parameter_is_refused_by_the_server_like_the_api(
    client: AsyncClient,
) -> None:
    async with client:
        with pytest.raises(APIStatusError) as info:
            await collect(
                client.generate(
                    "a kite", model="gpt-image-2", size=SIZE, extra_body={"partial_image": 2}
                )
            )
    assert (info.value.status_code, info.value.param) == (400, "partial_image")
    assert info.value.code == "unknown_parameter"


def test_api_or_emulator_leaves_a_set_key_to_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTAPI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    with api_or_emulator() as (api_key, base_url):
        assert (api_key, base_url) == (None, None)  # AsyncClient resolves URL and auth
    assert AsyncClient(api_key, base_url=base_url).base_url == "https://api.openai.com/v1"


@pytest.mark.usefixtures("no_keys")
async def test_api_or_emulator_runs_the_emulator_without_a_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with api_or_emulator(step_delay=0) as (api_key, base_url):
        assert "built-in emulator" in capsys.readouterr().out
        async with AsyncClient(api_key, base_url=base_url) as client:
            events = await collect(client.generate("a kite", model="gpt-image-2", size=SIZE))
    assert isinstance(events[-1], Completed)
