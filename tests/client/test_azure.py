"""Azure OpenAI (docs/azure.md): AsyncAzureClient and AzureClient against the emulator's
Azure mode over loopback, on asyncio and trio; what goes on the wire is read from the
HTTP client's own request hook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

import ttstream
from tests.support.raw_server import RawServer, answer, response_head
from tests.support.streams import collect
from ttstream import _secrets
from ttstream.emulator import EmulatorServer

pytestmark = pytest.mark.anyio

KEY = "azure-key-0123456789abcdef"
VERSION = "2025-04-01-preview"
SIZE = "64x48"
TOOL = {"type": "image_generation", "partial_images": 1, "size": "1024x1024"}


@pytest.fixture(scope="module")
def azure() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=0.0, azure=True) as running:
        yield running


class Recorder:
    """The requests an ``httpx2.AsyncClient`` sent (its ``request`` event hook)."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []

    async def __call__(self, request: httpx2.Request) -> None:
        self.requests.append(request)

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(timeout=30, event_hooks={"request": [self]})


def azure_client(
    endpoint: str, http: httpx2.AsyncClient | None = None, **options: object
) -> ttstream.AsyncAzureClient:
    """A client of deployment ``gpt-image-2`` at ``endpoint`` with the test key, unless
    ``options`` say otherwise."""
    settings: dict[str, object] = {
        "api_key": KEY,
        "azure_deployment": "gpt-image-2",
        "api_version": VERSION,
        **options,
    }
    return ttstream.AsyncAzureClient(azure_endpoint=endpoint, http_client=http, **settings)  # type: ignore[arg-type]


async def test_generation_goes_to_the_deployment_url_with_the_api_key(
    azure: EmulatorServer,
) -> None:
    seen = Recorder()
    async with seen.client() as http:
        client = azure_client(azure.endpoint, http)
        async with client:
            events = await collect(client.generate("a kite", size=SIZE, partial_images=2))
            [explicit] = await collect(client.generate("a kite", size=SIZE, model="gpt-image-2"))
    assert [type(e).__name__ for e in events] == ["PartialImage", "PartialImage", "Completed"]
    assert events[-1].image_bytes.startswith(b"\x89PNG")
    assert isinstance(explicit, ttstream.Completed)
    first, second = seen.requests
    assert first.url.path == "/openai/deployments/gpt-image-2/images/generations"
    assert first.url.params["api-version"] == VERSION
    assert first.headers["api-key"] == KEY
    assert "authorization" not in first.headers
    assert "model" not in json.loads(first.content)  # the deployment names it
    assert json.loads(second.content)["model"] == "gpt-image-2"  # unless given


async def test_edits_go_to_the_deployment_url(azure: EmulatorServer) -> None:
    seen = Recorder()
    png = await _one_png(azure)
    async with seen.client() as http:
        client = azure_client(azure.endpoint, http)
        async with client:
            events = await collect(client.edit("add a moon", images=png, size=SIZE))
    assert isinstance(events[-1], ttstream.Completed)
    assert events[-1].operation == "edit"
    assert seen.requests[0].url.path == "/openai/deployments/gpt-image-2/images/edits"
    assert b'name="model"' not in seen.requests[0].content


async def _one_png(azure: EmulatorServer) -> bytes:
    async with ttstream.AsyncAzureClient(
        KEY, azure_endpoint=azure.endpoint, azure_deployment="d", api_version=VERSION
    ) as client:
        [final] = await collect(client.generate("a kite", size=SIZE))
    return final.image_bytes


async def test_the_v1_surface_sends_the_deployment_as_the_model(azure: EmulatorServer) -> None:
    seen = Recorder()
    async with seen.client() as http:
        client = azure_client(azure.endpoint + "/", http, api_version="v1")
        async with client:
            [final] = await collect(client.generate("a kite", size=SIZE))
    assert isinstance(final, ttstream.Completed)
    [request] = seen.requests
    assert request.url.path == "/openai/v1/images/generations"
    assert "api-version" not in request.url.params
    assert json.loads(request.content)["model"] == "gpt-image-2"


async def test_without_a_deployment_the_model_names_it_as_in_openai(
    azure: EmulatorServer,
) -> None:
    # openai's AzureOpenAI(azure_endpoint=..., api_version=...) with
    # images.generate(model="<deployment>") posts to /openai/deployments/<deployment>/...
    seen = Recorder()
    async with seen.client() as http:
        client = azure_client(azure.endpoint, http, azure_deployment=None)
        async with client:
            [final] = await collect(client.generate("a kite", size=SIZE, model="gpt-image-2"))
            png = final.image_bytes
            [edited] = await collect(client.edit("a moon", images=png, model="gpt-image-1.5"))
            with pytest.raises(ttstream.ValidationError) as caught:
                client.generate("a kite", model="../images")
            assert caught.value.param == "model"
            with pytest.raises(ttstream.ValidationError, match="model="):
                await collect(client.generate("a kite"))  # nothing names a deployment
    assert isinstance(edited, ttstream.Completed)
    first, second = seen.requests
    assert first.url.path == "/openai/deployments/gpt-image-2/images/generations"
    assert first.url.params["api-version"] == VERSION
    assert json.loads(first.content)["model"] == "gpt-image-2"  # sent, as openai sends it
    assert second.url.path == "/openai/deployments/gpt-image-1.5/images/edits"


async def test_a_static_azure_ad_token_is_sent_as_a_bearer_token(
    azure: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # openai's AzureOpenAI(azure_ad_token=...), and AZURE_OPENAI_AD_TOKEN, which openai
    # prefers to AZURE_OPENAI_API_KEY when no credential is passed.
    token = "entra-static-token-0123456789"
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    seen = Recorder()
    async with seen.client() as http:
        given = azure_client(azure.endpoint, http, api_key=None, azure_ad_token=token)
        monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", token)
        from_env = azure_client(azure.endpoint, http, api_key=None)
        for client in (given, from_env):
            async with client:
                await collect(client.generate("a kite", size=SIZE))
            assert token not in repr(client)
    assert [r.headers["authorization"] for r in seen.requests] == [f"Bearer {token}"] * 2
    assert all("api-key" not in r.headers for r in seen.requests)
    assert _secrets.redact(f"echo {token}") != f"echo {token}"
    for options in (
        {"api_key": KEY, "azure_ad_token": token},
        {"api_key": None, "azure_ad_token": token, "azure_ad_token_provider": lambda: token},
    ):
        with pytest.raises(ttstream.ValidationError, match="one credential") as caught:
            azure_client(azure.endpoint, **options)
        assert token not in str(caught.value)
        assert KEY not in str(caught.value)
    with pytest.raises(ttstream.ValidationError) as refused:
        azure_client(azure.endpoint, api_key=None, azure_ad_token=token + "\n")
    assert refused.value.param == "azure_ad_token"


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_the_token_provider_is_asked_before_every_request(
    kind: str, azure: EmulatorServer
) -> None:
    calls: list[str] = []

    def token() -> str:
        calls.append("t")
        return f"entra-token-{len(calls):04d}-abcdefghijkl"

    async def async_token() -> str:
        return token()

    seen = Recorder()
    async with seen.client() as http:
        client = azure_client(
            azure.endpoint,
            http,
            api_key=None,
            azure_ad_token_provider=token if kind == "sync" else async_token,
        )
        async with client:
            for _ in range(2):
                await collect(client.generate("a kite", size=SIZE))
            # tokens are secrets: registered with the redaction like keys
            assert _secrets.redact("token entra-token-0001-abcdefghijkl") != (
                "token entra-token-0001-abcdefghijkl"
            )
    assert len(calls) == 2
    auths = [r.headers["authorization"] for r in seen.requests]
    assert auths == ["Bearer entra-token-0001-abcdefghijkl", "Bearer entra-token-0002-abcdefghijkl"]
    assert all("api-key" not in r.headers for r in seen.requests)


async def test_a_token_provider_answering_nothing_usable_is_refused(
    azure: EmulatorServer,
) -> None:
    async with ttstream.AsyncAzureClient(
        azure_endpoint=azure.endpoint,
        azure_deployment="d",
        api_version=VERSION,
        azure_ad_token_provider=lambda: "bad token\n",
    ) as client:
        with pytest.raises(ttstream.ValidationError, match="azure_ad_token_provider") as caught:
            await collect(client.generate("a kite", size=SIZE))
    assert "bad token" not in str(caught.value)


async def test_the_responses_tool_sends_the_deployment_header_and_yields_completed(
    azure: EmulatorServer,
) -> None:
    seen = Recorder()
    async with seen.client() as http:
        client = azure_client(azure.endpoint, http, azure_deployment="gpt-image-1")
        async with client:
            stream = client.responses.stream(model="gpt-4.1", input="a kite", tools=[TOOL])
            events = await collect(stream)
    # Azure's order: no image_generation_call.completed; the image arrives in
    # output_item.done with status "generating", and is the same Completed event.
    assert [type(e).__name__ for e in events] == ["PartialImage", "Completed"]
    final = events[-1]
    assert isinstance(final, ttstream.Completed)
    assert final.extra["status"] == "generating"
    assert final.image_bytes.startswith(b"\x89PNG")
    [request] = seen.requests
    assert request.url.path == "/openai/responses"
    assert request.url.params["api-version"] == VERSION
    assert request.headers["x-ms-oai-image-generation-deployment"] == "gpt-image-1"


async def test_the_emulator_checks_azures_version_key_and_header(azure: EmulatorServer) -> None:
    async with httpx2.AsyncClient(base_url=azure.endpoint, timeout=30) as http:
        url = "/openai/deployments/d/images/generations"
        body = {"prompt": "a kite", "size": SIZE}
        no_version = await http.post(url, json=body, headers={"api-key": KEY})
        assert no_version.status_code == 404
        wrong_header = await http.post(
            url, params={"api-version": VERSION}, json=body, headers={"TT-API-KEY": KEY}
        )
        assert wrong_header.status_code == 401
        ok = await http.post(
            url, params={"api-version": VERSION}, json=body, headers={"api-key": KEY}
        )
        assert ok.status_code == 200
        assert ok.headers["x-ratelimit-remaining-requests"] == "-1"
        assert "retry-after" not in ok.headers
        tool_body = {"model": "gpt-4.1", "input": "a kite", "tools": [TOOL]}
        no_deployment = await http.post(
            "/openai/v1/responses", json=tool_body, headers={"api-key": KEY}
        )
        assert no_deployment.status_code == 400
        assert "x-ms-oai-image-generation-deployment" in no_deployment.text


async def test_a_missing_api_version_is_a_not_found_error(azure: EmulatorServer) -> None:
    # A dated version the emulator does not know is answered like Azure: 404.
    client = ttstream.AsyncAzureClient(
        KEY, azure_endpoint=azure.endpoint, azure_deployment="d", api_version="2025"
    )
    async with client:
        with pytest.raises(ttstream.NotFoundError, match="api-version"):
            await collect(client.generate("a kite", size=SIZE))


async def test_the_api_key_is_not_sent_across_origins_on_a_redirect() -> None:
    with RawServer(answer(200, {"content-type": "application/json"}, b'{"data": []}')) as other:
        location = f"{other.url}/elsewhere"

        async def redirect(_: bytes, __: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(response_head(307, {"location": location, "content-length": "0"}))

        with RawServer(redirect) as first:
            async with httpx2.AsyncClient(follow_redirects=True, timeout=30) as http:
                client = azure_client(first.url, http, azure_deployment="dall-e-3")
                async with client:
                    await collect(client.generate("a kite", model="dall-e-3"))
            assert KEY.encode() in first.heads[0]
    [head] = other.heads
    assert KEY.encode() not in head
    assert b"api-key" not in head.lower()


def test_the_environment_supplies_openais_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_VERSION", VERSION)
    client = ttstream.AsyncAzureClient(azure_deployment="img")
    assert client.endpoint_url("images/generations") == (
        f"https://res.openai.azure.com/openai/deployments/img/images/generations"
        f"?api-version={VERSION}"
    )
    assert client.endpoint_url("responses") == (
        f"https://res.openai.azure.com/openai/responses?api-version={VERSION}"
    )
    assert KEY not in repr(client)
    assert _secrets.redact(f"echo {KEY}") != f"echo {KEY}"


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"api_key": KEY}, "azure_endpoint"),
        ({"azure_endpoint": "https://r.openai.azure.com"}, "api_key"),
        ({"api_key": KEY, "azure_endpoint": "https://r", "azure_deployment": "d"}, "api_version"),
        ({"api_key": KEY + "\n", "azure_endpoint": "https://r"}, "api_key"),
        (
            {
                "api_key": KEY,
                "azure_endpoint": "https://r",
                "azure_ad_token_provider": lambda: "t",
            },
            "api_key",
        ),
    ],
)
def test_what_azure_needs_is_checked_at_construction(
    options: dict[str, object], param: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ttstream.ValidationError) as caught:
        ttstream.AsyncAzureClient(**options)  # type: ignore[arg-type]
    assert caught.value.param == param
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"azure_deployment": ".."}, "azure_deployment"),  # was /openai/images/generations
        ({"azure_deployment": "."}, "azure_deployment"),
        ({"azure_deployment": ""}, "azure_deployment"),  # was /deployments//images
        ({"azure_deployment": "dep\r\nx-evil: 1"}, "azure_deployment"),
        ({"azure_deployment": "dép"}, "azure_deployment"),
        ({"azure_deployment": "a/b"}, "azure_deployment"),
        ({"azure_deployment": "d" * 65}, "azure_deployment"),
        ({"endpoint": "https://r.openai.azure.com/?x=1"}, "azure_endpoint"),
        ({"endpoint": "https://r.openai.azure.com#top"}, "azure_endpoint"),
        ({"endpoint": "ftp://r.openai.azure.com"}, "azure_endpoint"),
        ({"endpoint": "not a url"}, "azure_endpoint"),
        ({"endpoint": "https://"}, "azure_endpoint"),
        ({"endpoint": "https://r.openai.azure.com\r\n"}, "azure_endpoint"),
        ({"endpoint": "http://[::1"}, "azure_endpoint"),
        ({"endpoint": "https://r.openai.azure.com:99999"}, "azure_endpoint"),  # was base_url
        ({"endpoint": "https://r.openai.azure.com:port"}, "azure_endpoint"),
    ],
)
def test_the_endpoint_and_deployment_are_checked_at_construction(
    options: dict[str, object], param: str
) -> None:
    settings = {"endpoint": "https://r.openai.azure.com", "azure_deployment": "d", **options}
    with pytest.raises(ttstream.ValidationError) as caught:
        azure_client(**settings)  # type: ignore[arg-type]
    assert caught.value.param == param


def test_an_endpoint_with_a_password_is_refused_without_showing_it() -> None:
    # it was kept: repr(client) showed the password, and every request raised ValueError
    with pytest.raises(ttstream.ValidationError, match="userinfo hidden") as caught:
        azure_client("https://user:hunter2pass@r.openai.azure.com")
    assert "hunter2pass" not in str(caught.value)
    assert "hunter2pass" not in repr(caught.value.value)


def test_an_endpoint_with_a_query_is_refused_without_showing_it() -> None:
    with pytest.raises(ttstream.ValidationError, match="query or fragment hidden") as caught:
        azure_client("https://r.openai.azure.com/?sig=hunter2token")
    assert "hunter2token" not in str(caught.value)
    assert "hunter2token" not in repr(caught.value.value)


def test_deployment_names_of_azures_characters_are_taken() -> None:
    client = azure_client("https://r.openai.azure.com/", azure_deployment="My_img-2.0")
    assert client.endpoint_url("images/generations") == (
        "https://r.openai.azure.com/openai/deployments/My_img-2.0/images/generations"
        f"?api-version={VERSION}"
    )


def test_the_sync_azure_client_streams(azure: EmulatorServer, anyio_backend: str) -> None:
    with ttstream.AzureClient(
        KEY,
        azure_endpoint=azure.endpoint,
        azure_deployment="gpt-image-2",
        api_version=VERSION,
        backend=anyio_backend,
    ) as client:
        with client.generate("a kite", size=SIZE, partial_images=1) as stream:
            events = list(stream)
        assert "AzureClient" in repr(client)
    assert [type(e).__name__ for e in events] == ["PartialImage", "Completed"]


def test_the_cli_generates_through_azure(
    azure: EmulatorServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ttstream.cli import main

    for name in ("TTAPI_API_KEY", "OPENAI_API_KEY", "OPENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    status = main(
        [
            "generate",
            "a lighthouse",
            "--azure-endpoint",
            azure.endpoint,
            "--azure-deployment",
            "gpt-image-2",
            "--api-version",
            VERSION,
            "--size",
            SIZE,
            "--partial-images",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "built-in emulator" not in captured.out
    names = sorted(path.name for path in tmp_path.iterdir())
    assert sum(name.endswith("-final.png") for name in names) == 1
    assert sum("-partial-" in name for name in names) == 1
    assert KEY not in captured.out + captured.err


def test_the_cli_without_an_azure_key_names_azures_variable(
    azure: EmulatorServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # It said "Generating with ...", then "no API key: set TTAPI_API_KEY (or
    # OPENAI_API_KEY)": the variable the user had set, which Azure does not read.
    from ttstream.cli import main

    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_AD_TOKEN", raising=False)
    monkeypatch.setenv("TTAPI_API_KEY", KEY)
    argv = ["generate", "a kite", "--azure-endpoint", azure.endpoint]
    argv += ["--azure-deployment", "gpt-image-2", "--api-version", VERSION]
    assert main(argv) == 2  # a mistake found before anything starts
    captured = capsys.readouterr()
    assert captured.err == (
        "ttstream: error: no API key for Azure: set AZURE_OPENAI_API_KEY "
        "(or AZURE_OPENAI_AD_TOKEN), or pass --api-key-file FILE (- for stdin)\n"
    )
    assert captured.out == ""


@pytest.mark.parametrize("api_key", [None, "k" * 20])
def test_a_token_provider_that_cannot_be_called_is_refused_first(api_key: str | None) -> None:
    with pytest.raises(ttstream.ValidationError, match="a function or None") as caught:
        ttstream.AsyncAzureClient(
            api_key,
            azure_endpoint="https://r.openai.azure.com",
            azure_ad_token_provider="token",  # type: ignore[arg-type]
        )
    assert caught.value.param == "azure_ad_token_provider"


def test_a_token_provider_client_registers_no_placeholder_secret() -> None:
    client = ttstream.AsyncAzureClient(
        azure_endpoint="https://r.openai.azure.com", azure_ad_token_provider=lambda: "t" * 20
    )
    assert _secrets.redact("entra id token") == "entra id token"
    assert "entra" not in repr(client)
    assert len("entra") < _secrets.MIN_SECRET_CHARS
