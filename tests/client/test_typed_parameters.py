"""Typed request parameters: every API parameter a keyword of its own, ``Literal`` types for
the closed sets, ``extra_body`` for the rest; a misspelt keyword is a ``TypeError`` at the
call and an error of ``mypy --strict``. The parameter list lives once, in
``ttstream.params`` (``GenerationParameters``, ``EditParameters``, ``ResponsesParameters``).
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import subprocess
import sys
import textwrap
import typing
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import pytest

import ttstream
import ttstream._azure
import ttstream._request
import ttstream.batch
import ttstream.client
from tests.support import streams
from tests.support.streams import collect
from tests.support.typecheck import mypy_errors
from ttstream import AsyncClient, Client, ValidationError, _options, params
from ttstream._responses_client import Responses
from ttstream._signature import forwards_to
from ttstream.emulator import EmulatorServer

pytestmark = pytest.mark.anyio

B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nimage").decode()
COMPLETED = {"type": "image_generation.completed", "b64_json": B64}

# the shared one, on a base URL nobody listens at (the MockTransport answers)
client_for = partial(streams.client_for, base_url="http://127.0.0.1:9")


class Recorder:
    """A MockTransport handler answering one completed event, recording every body."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        content = request.read()
        if request.headers.get("content-type", "").startswith("application/json"):
            self.bodies.append(json.loads(content))
        else:
            self.bodies.append(content)
        body = f"event: {COMPLETED['type']}\ndata: {json.dumps(COMPLETED)}\n\n".encode()
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)


# -- a misspelt keyword --------------------------------------------------------------------

ASYNC_CALLS: list[tuple[str, Callable[[AsyncClient], object]]] = [
    ("generate", lambda c: c.generate("a kite", sise="1024x1024")),  # type: ignore[call-arg]
    ("edit", lambda c: c.edit("hat", images=b"x", sise="1")),  # type: ignore[call-arg]
    ("edit", lambda c: c.edit("hat", images=b"x", partial_image=1)),  # type: ignore[call-arg]
    ("stream", lambda c: c.responses.stream(model="m", input="x", instruction="y")),  # type: ignore[call-arg]
]


@pytest.mark.parametrize(
    ("call", "meant"),
    [
        (lambda c: c.generate("a kite", sise="1024x1024"), "size"),  # type: ignore[call-arg]
        (lambda c: c.edit("hat", image=b"x"), "images"),  # openai's name  # type: ignore[call-arg]
        (lambda c: c.responses.stream(model="m", input="x", instruction="y"), "instructions"),  # type: ignore[call-arg]
    ],
)  # fmt: skip
async def test_a_misspelt_keyword_names_the_closest_one(
    emulator: EmulatorServer, call: Callable[[AsyncClient], object], meant: str
) -> None:
    async with AsyncClient("k", base_url=emulator.base_url) as client:
        with pytest.raises(TypeError, match=rf"argument '\w+' \(did you mean '{meant}'\?\)$"):
            call(client)


@pytest.mark.parametrize(("method", "call"), ASYNC_CALLS)
async def test_an_unknown_keyword_is_a_type_error_before_any_request(
    method: str, call: Callable[[AsyncClient], object]
) -> None:
    recorder = Recorder()
    async with client_for(recorder) as client:
        with pytest.raises(TypeError, match=rf"{method}\(\) got an unexpected keyword argument"):
            call(client)
    assert recorder.bodies == []


def test_an_input_fidelity_on_a_generation_is_a_type_error() -> None:
    client = client_for(Recorder())
    with pytest.raises(TypeError, match="'input_fidelity'"):
        client.generate("a kite", input_fidelity="high")  # type: ignore[call-arg]
    client.edit("hat", images=b"x", model="gpt-image-1.5", input_fidelity="high")


def test_the_sync_client_refuses_an_unknown_keyword(server: EmulatorServer) -> None:
    with Client("k", base_url=server.base_url) as client:
        with pytest.raises(TypeError, match="'sise'"):
            client.generate("a kite", sise="1024x1024")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'sise'"):
            client.edit("hat", images=b"x", sise="1")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'instruction'"):
            client.responses.stream(model="m", input="x", instruction="y")  # type: ignore[call-arg]
        with pytest.raises(ValidationError) as info:  # per-model rules unchanged
            client.generate("a kite", model="dall-e-3", n=2)
        assert info.value.param == "n"


MYPY_SNIPPET = """
import ttstream

async def main(client: ttstream.AsyncClient, sync: ttstream.Client) -> None:
    client.generate("a kite", size="1024x1024", quality="xhigh", n=2, partial_images=3,
                    output_format="webp", output_compression=80, background="opaque",
                    moderation="low", safety_identifier="u-1", complexity="high",
                    extra_body={"quality": "ultra", "new_option": [1, 2]})
    client.edit("hat", images=b"x", input_fidelity="low", mask=None)
    client.responses.stream(model="gpt-5", input="x", instructions="be brief",
                            tools=[{"type": "image_generation", "quality": "high"}])
    sync.generate("a kite", frame_count=4, frame_duration_ms=120, output_format="gif")
    client.generate("a kite", sise="1024x1024")  # error: unknown keyword
    client.generate("a kite", quality="ultra")  # error: not a known quality
    client.generate("a kite", n="2")  # error: a count is an int
    sync.generate("a kite", sise="1024x1024")  # error: the sync client too
    sync.edit("hat", images=b"x", background="none")  # error: not a background
    client.responses.stream(model="m", input="x", instruction="y")  # error: responses too
    sync.responses.stream(model="m", input="x", store="yes")  # error: a bool
    await client.fetch_image(None, deadline=5)  # type: ignore[arg-type]


def wrappers(client: ttstream.AsyncClient, sync: ttstream.Client) -> None:
    azure = ttstream.AzureClient(azure_endpoint="https://r.openai.azure.com", max_retries=1,
                                 azure_ad_token_provider=lambda: "t", backend="trio")
    ttstream.AsyncAzureClient(azure_endpoint="https://r", api_version="v1", deadline=60.0)
    ttstream.Client("k", base_url="http://127.0.0.1:1/v1", auth="bearer", backend="asyncio")
    azure.generate("a kite", quality="high", deadline=30.0)
    sync.responses.resume("resp_1", starting_after=3, deadline=5.0)
    batch = client.batch(concurrency=2, images_per_minute=60.0, journal="run.sqlite")
    batch.add("a kite", key="k", size="1024x1024", deadline=5.0)
    batch.edit("hat", images=b"x", input_fidelity="low")
    batch.respond("x", model="gpt-5", background=True, store=False)
    sync.batch(out="images").add("a kite", n=2)
    ttstream.AzureClient(azure_endpont="https://r")  # error: the sync Azure client's keywords
    ttstream.AzureClient(azure_endpoint="https://r", max_retries="2")  # error: an int
    ttstream.AsyncAzureClient(azure_endpoint="https://r", timout=3)  # error: misspelt
    ttstream.Client("k", auth="basic")  # error: not an auth
    ttstream.Client("k", backend_option={})  # error: misspelt
    azure.edit("hat", images=b"x", quality="ultra")  # error: the Azure wrapper's parameters
    sync.edit("hat", n=1)  # error: images are required
    sync.responses.resume("resp_1", starting_after="3")  # error: an int
    sync.responses.stream(model="m", input="x", background="yes")  # error: a bool
    client.batch(concurency=2)  # error: Client.batch's options
    sync.batch(images_per_minute="60")  # error: a number
    batch.add("a kite", sise="1024x1024")  # error: the batch's jobs too
    batch.respond("x", model="m", store="yes")  # error: a bool
"""


def test_mypy_strict_reports_a_misspelt_or_mistyped_parameter(tmp_path: Path) -> None:
    found, expected, output = mypy_errors(MYPY_SNIPPET, tmp_path)
    assert len(expected) == 20
    assert found == expected, output


# -- extra_body and the wire ---------------------------------------------------------------


async def test_every_parameter_reaches_the_body() -> None:
    recorder = Recorder()
    given: params.GenerationParameters = {
        "n": 1, "size": "1536x1024", "quality": "high", "background": "opaque",
        "output_format": "jpeg", "output_compression": 70, "moderation": "low",
        "partial_images": 0, "user": "u", "safety_identifier": "s", "complexity": "low",
    }  # fmt: skip
    async with client_for(recorder) as client:
        await collect(client.generate("a kite", model="gpt-image-1.5", **given))
    assert recorder.bodies == [
        {"model": "gpt-image-1.5", "prompt": "a kite", **given, "stream": True}
    ]


async def test_extra_body_is_merged_into_the_top_level_unchecked() -> None:
    recorder = Recorder()
    extra = {"quality": "ultra", "new_option": {"a": [1]}, "size": "4096x4096"}
    async with client_for(recorder) as client:
        await collect(client.generate("a kite", size="1024x1024", extra_body=extra))
        responses = client.responses.stream(
            model="gpt-5", input="x", store=False, extra_body={"service_tier": "flex2"}
        )
        with pytest.raises(ttstream.TTStreamError):  # the recorder speaks the Images API
            await collect(responses)
    first, second = recorder.bodies
    assert first == {"model": "gpt-image-2", "prompt": "a kite", "stream": True, **extra}
    assert (second["store"], second["service_tier"], second["stream"]) == (False, "flex2", True)


async def test_extra_body_goes_with_the_form_fields_of_an_edit() -> None:
    recorder = Recorder()
    async with client_for(recorder) as client:
        stream = client.edit("hat", images=b"\x89PNG\r\n\x1a\n", extra_body={"new_option": 3})
        await collect(stream)
    [form] = recorder.bodies
    assert b'name="new_option"\r\n\r\n3\r\n' in form


@pytest.mark.parametrize("extra", [["quality"], {1: "x"}])
def test_extra_body_must_map_names(extra: Any) -> None:
    with pytest.raises(ValidationError) as info:
        client_for(Recorder()).generate("a kite", extra_body=extra)
    assert info.value.param == "extra_body"


@pytest.mark.parametrize(
    "extra",
    [{"tags": {"a", "b"}}, {"seed": b"x"}, {"weight": float("nan")}, {"w": [float("inf")]}],
)
def test_extra_body_must_hold_json_values(extra: Any) -> None:
    # Refused at the call, typed: a set or bytes was a bare TypeError from json.dumps
    # when the stream started, and NaN went out as a token that is not JSON.
    recorder = Recorder()
    with pytest.raises(ValidationError) as info:
        client_for(recorder).generate("a kite", extra_body=extra)
    assert info.value.param == "extra_body"
    assert "finite float" in str(info.value)
    assert recorder.bodies == []


def test_none_leaves_a_parameter_out() -> None:
    stream = client_for(Recorder()).generate("a kite", model="dall-e-3", n=None, quality=None)
    assert isinstance(stream, ttstream.ImageStream)


# -- one list, typed -----------------------------------------------------------------------


def test_the_signatures_list_every_parameter_as_a_keyword() -> None:
    generation = set(params.GenerationParameters.__annotations__)
    edit = set(params.EditParameters.__annotations__)
    responses = set(params.ResponsesParameters.__annotations__)
    methods = {
        AsyncClient.generate: generation,
        Client.generate: generation,
        AsyncClient.edit: edit,
        Client.edit: edit,
        client_for(Recorder()).responses.stream: responses,
    }
    for method, names in methods.items():
        signature = inspect.signature(method)
        keywords = {name for name, p in signature.parameters.items() if p.kind is p.KEYWORD_ONLY}
        assert names <= keywords, method
        assert "extra_body" in keywords
        assert all(p.kind is not p.VAR_KEYWORD for p in signature.parameters.values())
    quality = inspect.signature(AsyncClient.generate).parameters["quality"].annotation
    assert "xhigh" in typing.get_args(typing.get_args(quality)[0])


def test_the_wrappers_take_the_keywords_of_what_they_wrap() -> None:
    """The sync, Azure, batch and Responses wrappers pass ``**options`` through: their
    signatures list the wrapped method's keywords, with its defaults and no ``**``."""
    pairs = [
        (Client.generate, AsyncClient.generate),
        (Client.edit, AsyncClient.edit),
        (Client.batch, ttstream.Batch),
        (AsyncClient.batch, ttstream.Batch),
        (ttstream.SyncResponses.stream, Responses.stream),
        (ttstream.SyncResponses.resume, Responses.resume),
        (ttstream.AzureClient, ttstream.AsyncAzureClient),
        (ttstream.AsyncAzureClient, AsyncClient),
    ]
    for wrapper, wrapped in pairs:
        wrapper_parameters = inspect.signature(wrapper).parameters
        for name, parameter in inspect.signature(wrapped).parameters.items():
            if parameter.kind is parameter.KEYWORD_ONLY and name not in ("base_url", "auth"):
                assert wrapper_parameters[name].default == parameter.default, (wrapper, name)
        assert all(p.kind is not p.VAR_KEYWORD for p in wrapper_parameters.values()), wrapper
    azure = inspect.signature(ttstream.AzureClient).parameters
    assert (azure["backend"].default, azure["api_version"].default) == ("asyncio", None)


@pytest.mark.parametrize(
    ("options", "method", "besides"),
    [
        (_options.GenerateOptions, AsyncClient.generate, ()),
        (_options.EditOptions, AsyncClient.edit, ()),
        (_options.ResponseStreamOptions, Responses.stream, ()),
        (_options.ResumeOptions, Responses.resume, ()),
        (ttstream.client.ClientOptions, AsyncClient.__init__, ()),
        (ttstream.client.ConnectionOptions, AsyncClient.__init__, ("base_url", "auth")),
        (ttstream._azure.AzureOptions, ttstream.AsyncAzureClient.__init__, ()),
        (ttstream.batch.BatchOptions, ttstream.Batch.__init__, ()),
    ],
)
def test_each_typed_dict_is_exactly_the_keywords_of_its_method(
    options: Any, method: Callable[..., object], besides: tuple[str, ...]
) -> None:
    """A keyword added to a method without its ``TypedDict`` (or the other way round)
    would be missing from the wrappers: the lists must not drift apart."""
    parameters = inspect.signature(method).parameters
    keywords = {name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert set(options.__annotations__) == keywords - set(besides)
    request = vars(ttstream._request)  # ImageInput is a string alias, evaluated here
    aliases = {**request, "ImageInput": eval(ttstream._request.ImageInput, request)}
    hints = typing.get_type_hints(options, localns=aliases)
    own = typing.get_type_hints(inspect.unwrap(method), localns=aliases)
    for name in options.__annotations__:
        if name in own:  # the method's own keywords (not a TypedDict of ttstream.params)
            assert hints[name] == own[name], name
        required = name in options.__required_keys__
        assert required == (parameters[name].default is inspect.Parameter.empty), name


def test_a_typed_dict_naming_no_keyword_of_its_target_is_refused() -> None:
    class Misspelt(typing.TypedDict, total=False):
        deadlin: float

    with pytest.raises(TypeError, match="deadlin"):
        forwards_to(AsyncClient.generate, options=Misspelt)


def test_parameters_is_the_keys_of_the_typed_list() -> None:
    assert {"prompt", "mask", *params.EditParameters.__annotations__} == params.PARAMETERS
    assert "input_fidelity" not in params.GenerationParameters.__annotations__


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("qualities", params.Quality),
        ("backgrounds", params.Background),
        ("output_formats", params.OutputFormat),
        ("moderations", params.Moderation),
        ("response_formats", params.ResponseFormat),
        ("styles", params.Style),
        ("complexities", params.Complexity),
        ("input_fidelities", params.InputFidelity),
    ],
)
def test_the_literal_types_hold_every_value_of_the_model_table(field: str, literal: Any) -> None:
    table = {value for spec in params.MODELS.values() for value in getattr(spec, field)}
    assert table == set(typing.get_args(literal))


# -- http_client -------------------------------------------------------------------------


def test_an_old_httpx_client_is_refused_with_what_to_pass() -> None:
    httpx = pytest.importorskip("httpx")
    old = httpx.AsyncClient()
    with pytest.raises(ValidationError, match=r"httpx2\.AsyncClient") as info:
        AsyncClient("k", http_client=old)
    assert info.value.param == "http_client"
    assert "httpx2" in str(info.value)


def test_a_client_of_another_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"httpx2\.AsyncClient"):
        AsyncClient("k", http_client=object())  # type: ignore[arg-type]


def test_httpx_is_recognised_by_the_class_module_without_importing_it() -> None:
    code = textwrap.dedent("""
        import sys
        import ttstream
        Fake = type("AsyncClient", (), {"__module__": "httpx._client"})
        try:
            ttstream.AsyncClient("k", http_client=Fake())
        except ttstream.ValidationError as exc:
            wanted = "must be an httpx2.AsyncClient (ttstream runs on httpx2"
            print(wanted in str(exc), "httpx" in sys.modules)
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env()
    )
    assert done.stdout.split() == ["True", "False"], done.stderr


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}


def test_the_image_tool_options_are_images_api_parameters() -> None:
    options = set(params.ImageGenerationTool.__annotations__)
    not_images_api = {"type", "model", "action", "input_image_mask"}
    assert options - not_images_api <= params.PARAMETERS
    tool: params.ImageGenerationTool = {
        "type": "image_generation", "model": "gpt-image-1.5", "size": "1024x1024",
        "quality": "high", "background": "opaque", "output_format": "webp",
        "output_compression": 50, "moderation": "low", "partial_images": 2,
    }  # fmt: skip
    params.validate_tool(tool)  # every option, as the Images API rules take it
