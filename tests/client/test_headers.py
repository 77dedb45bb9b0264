"""``default_headers`` / ``default_query`` and ``extra_headers`` / ``extra_query`` (openai's
names), over real loopback HTTP: what arrives on every request of a stream (retries,
reconnections, resumes), ``None`` removing a header, keys in them redacted, bad shapes
refused before any request."""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
from typing import Any

import httpx2
import pytest

import ttstream
from tests.support.paths import ROOT
from tests.support.scripted_server import Answer, Request, ScriptedServer
from ttstream import AsyncClient, ReconnectPolicy, ValidationError

pytestmark = pytest.mark.anyio

FAST = ReconnectPolicy(delay=0.01, max_delay=0.05)
B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nimage").decode()
PARTIAL = {"type": "image_generation.partial_image", "b64_json": B64, "partial_image_index": 0}
COMPLETED = {"type": "image_generation.completed", "b64_json": B64, "usage": {"total_tokens": 9}}
DEFAULTS: dict[str, str | None] = {"X-Team": "fox", "X-Gone": "soon", "X-Kept": "client"}
EXTRA: dict[str, str | None] = {"x-gone": None, "X-Kept": "call", "Cache-Control": None}
SECRET = "gateway-secret-5f1e2d3c"  # no key shape: only its registration redacts it


def event(data: dict[str, Any], id: str | None = None) -> bytes:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def query_of(request: Request) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.path).query))


def assert_custom(request: Request) -> None:
    """The client's defaults and the call's extras merged, ``None`` removing."""
    headers = request.headers
    assert headers["x-team"] == "fox"
    assert headers["x-kept"] == "call"  # the call's wins, whatever the case
    assert "x-gone" not in headers
    assert "cache-control" not in headers  # None removes ttstream's own header too
    assert headers["user-agent"].startswith("ttstream")
    assert {"region": "eu", "verbose": "true", "n": "2"}.items() <= query_of(request).items()


def client(server: ScriptedServer, **options: Any) -> AsyncClient:
    options.setdefault("default_headers", DEFAULTS)
    options.setdefault("default_query", {"region": "eu", "n": 1})
    return AsyncClient("k" * 8, base_url=server.url + "/v1", reconnect=FAST, **options)


async def test_generate_sends_them_on_its_request_and_its_reconnection() -> None:
    cut = Answer([event(PARTIAL, id="1")], end="abort")
    with ScriptedServer(cut, Answer([event(COMPLETED, id="2")])) as server:
        async with client(server) as api:
            stream = api.generate(
                "a fox", extra_headers=EXTRA, extra_query={"verbose": True, "n": 2}
            )
            async with stream:
                kinds = [type(item).__name__ async for item in stream]
    assert kinds == ["PartialImage", "Reconnecting", "Completed"]
    first, again = server.requests
    assert again.headers["last-event-id"] == "1"
    for request in (first, again):
        assert_custom(request)
        assert request.path.startswith("/v1/images/generations?")


async def test_a_plain_request_sends_them_on_its_retry() -> None:
    body = json.dumps({"created": 1, "data": [{"b64_json": B64}]}).encode()
    json_answer = (("Content-Type", "application/json"),)
    answers = (
        Answer([b"{}"], status=500, headers=json_answer),
        Answer([body], headers=json_answer),
    )
    with ScriptedServer(*answers) as server:
        async with client(server, max_retries=1) as api:
            stream = api.generate(
                "a fox",
                model="dall-e-3",
                extra_headers={**EXTRA, "Accept": "application/json; q=1"},
                extra_query={"verbose": True, "n": 2},
            )
            async with stream:
                assert [type(item).__name__ async for item in stream] == ["Completed"]
    assert len(server.requests) == 2
    for request in server.requests:
        assert_custom(request)
        assert request.headers["accept"] == "application/json; q=1"


async def test_edit_sends_them() -> None:
    done = {**COMPLETED, "type": "image_edit.completed"}
    with ScriptedServer(Answer([event(done)])) as server:
        async with client(server) as api:
            stream = api.edit(
                "a hat",
                images=b"\x89PNG\r\n\x1a\nimage",
                extra_headers=EXTRA,
                extra_query={"verbose": True, "n": 2},
            )
            async with stream:
                _ = [item async for item in stream]
    (request,) = server.requests
    assert_custom(request)
    assert request.headers["content-type"].startswith("multipart/form-data")


def recording(name: str) -> list[bytes]:
    lines = (ROOT / "tests" / "recordings" / f"{name}.jsonl").read_text().splitlines()
    return [f"event: {json.loads(line)['type']}\ndata: {line}\n\n".encode() for line in lines]


async def test_responses_send_them_on_the_post_its_resume_and_resume() -> None:
    events = recording("openai_normal")
    cut = Answer(events[:3], end="abort")
    with ScriptedServer(cut, Answer(events[3:])) as server:
        async with client(server) as api:
            extras: dict[str, Any] = {
                "extra_headers": {**EXTRA, "content-type": "application/json"},
                "extra_query": {"verbose": True, "n": 2},
            }
            stream = api.responses.stream(model="gpt-5", input="a fox", background=True, **extras)
            async with stream:
                kinds = [type(item).__name__ async for item in stream]
            assert "Reconnecting" in kinds
            assert kinds[-1] == "Completed"
            again = api.responses.resume("resp_1", starting_after=2, **extras)
            async with again:
                _ = [item async for item in again]
    post, resumed, resume = server.requests
    assert (post.method, resumed.method, resume.method) == ("POST", "GET", "GET")
    for request in server.requests:
        assert_custom(request)
    assert query_of(resumed)["starting_after"] == "2"  # its own fields stay its own
    assert "content-type" not in resumed.headers  # a GET has no body, whatever the case
    assert query_of(resume)["stream"] == "true"


async def test_the_sync_client_and_azure_take_them() -> None:
    with ScriptedServer(Answer([event(COMPLETED)])) as server:
        with (
            ttstream.Client(
                "k" * 8, base_url=server.url + "/v1", default_headers={"X-Team": "fox"}
            ) as sync,
            sync.generate("a fox", extra_query={"verbose": True}) as stream,
        ):
            _ = list(stream)
        async with (
            ttstream.AsyncAzureClient(
                "k" * 8,
                azure_endpoint=server.url,
                api_version="v1",
                default_headers={"X-Team": "owl", "api-key": None},
                default_query={"region": "eu"},
            ) as azure,
            azure.generate("a fox", extra_headers={"X-Call": "1"}) as stream,
        ):
            _ = [item async for item in stream]
    first, second = server.requests
    assert first.headers["x-team"] == "fox"
    assert query_of(first) == {"verbose": "true"}
    assert (second.headers["x-team"], second.headers["x-call"]) == ("owl", "1")
    assert "api-key" not in second.headers  # None removes the credential header too
    assert query_of(second) == {"region": "eu"}


async def test_a_query_parameter_given_as_none_is_left_out() -> None:
    """openai's rule, as for a header: ``None`` leaves the parameter out, one the client's
    ``default_query`` sets included."""
    with ScriptedServer(Answer([event(COMPLETED)]), Answer([event(COMPLETED)])) as server:
        async with client(server, default_query={"region": "eu", "n": 1, "gone": None}) as api:
            for extra in (None, {"region": None, "verbose": True}):
                async with api.generate("a fox", extra_query=extra) as stream:
                    _ = [item async for item in stream]
    first, second = server.requests
    assert query_of(first) == {"region": "eu", "n": "1"}
    assert query_of(second) == {"n": "1", "verbose": "true"}


def echo_secret(request: Request) -> Answer:
    """A careless gateway: quotes the raw value of the request's key header."""
    quoted = request.headers.get("x-api-key") or request.headers.get("authorization", "")
    body = json.dumps({"error": {"message": f"upstream refused {quoted.split()[-1]}"}})
    return Answer([body.encode()], status=500, headers=(("Content-Type", "application/json"),))


@pytest.mark.parametrize(
    ("defaults", "extra"),
    [
        ({"X-API-Key": SECRET}, None),
        ({}, {"Authorization": f"Bearer {SECRET}"}),
    ],
    ids=["default_headers", "extra_headers"],
)
async def test_a_key_in_them_is_redacted_from_reprs_logs_and_errors(
    defaults: dict[str, str], extra: dict[str, str] | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with ScriptedServer(echo_secret) as server:
        async with client(server, default_headers=defaults, max_retries=1) as api:
            stream = api.generate("a fox", extra_headers=extra)
            with pytest.raises(ttstream.APIStatusError) as caught:
                async with stream:
                    _ = [item async for item in stream]
            texts = [repr(api), repr(stream), str(caught.value), repr(caught.value.body)]
    assert len(server.requests) == 2
    assert SECRET in server.requests[0].headers.get("x-api-key", "") + server.requests[
        0
    ].headers.get("authorization", "")
    assert "retrying POST" in caplog.text
    assert "upstream refused" in caplog.text
    for text in [*texts, caplog.text]:
        assert SECRET not in text


def echo_request(request: Request) -> Answer:
    """A careless gateway: quotes the request's target and every header value."""
    quoted = " ".join([request.path, *(value for _, value in request.headers.items())])
    body = json.dumps({"error": {"message": f"upstream refused {quoted}"}})
    return Answer([body.encode()], status=500, headers=(("Content-Type", "application/json"),))


@pytest.mark.parametrize(
    "options",
    [
        {"default_headers": {"Ocp-Apim-Subscription-Key": SECRET}},
        {"default_query": {"sig": SECRET}},
        {"extra_query": {"access_token": SECRET}},
    ],
    ids=["a custom key header", "a SAS sig", "an access_token"],
)
async def test_a_secret_by_its_name_is_redacted_from_reprs_logs_and_errors(
    options: dict[str, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    extra = options.get("extra_query")
    defaults = {name: value for name, value in options.items() if name != "extra_query"}
    with ScriptedServer(echo_request) as server:
        async with client(server, max_retries=1, **defaults) as api:
            stream = api.generate("a fox", extra_query=extra)
            with pytest.raises(ttstream.APIStatusError) as caught:
                async with stream:
                    _ = [item async for item in stream]
            texts = [repr(api), repr(stream), str(caught.value), repr(caught.value.body)]
    sent = server.requests[0]
    assert SECRET in sent.path + " ".join(value for _, value in sent.headers.items())
    assert "retrying POST" in caplog.text
    for text in [*texts, caplog.text]:
        assert SECRET not in text


async def test_a_secret_header_by_its_name_never_follows_a_redirect_to_another_origin() -> None:
    """Not only the known key headers: a caller's own secret header (a name
    :func:`ttstream._secrets.names_a_secret` recognises) is dropped too, the others kept."""
    secrets = {"Ocp-Apim-Subscription-Key": SECRET, "X-Access-Token": SECRET}
    with ScriptedServer(Answer([event(COMPLETED)])) as other:
        moved = Answer(status=307, headers=(("Location", other.url + "/v1/moved"),))
        with ScriptedServer(moved) as first:
            async with (
                httpx2.AsyncClient(follow_redirects=True, timeout=30) as http,
                client(
                    first, http_client=http, default_headers={**secrets, "X-Team": "fox"}
                ) as api,
                api.generate("a fox", extra_headers={"X-Gateway-Secret": SECRET}) as stream,
            ):
                _ = [item async for item in stream]
    sent, arrived = first.requests[0].headers, other.requests[0].headers
    assert [sent[name.lower()] for name in [*secrets, "X-Gateway-Secret"]] == [SECRET] * 3
    assert SECRET not in " ".join(arrived.values())
    assert "tt-api-key" not in arrived
    assert "authorization" not in arrived
    assert arrived["x-team"] == "fox"  # not a secret: kept


@pytest.mark.parametrize(
    ("argument", "value", "param"),
    [
        ("headers", ["X-Team"], "headers"),
        ("headers", {"X-Team": 1}, "headers['X-Team']"),
        ("headers", {"X-Team": "a\r\nX-Evil: 1"}, "headers['X-Team']"),
        ("headers", {"X-Team": "a\nb"}, "headers['X-Team']"),
        ("headers", {b"X-Team": "a"}, "headers name"),
        ("headers", {"X Team": "a"}, "headers name"),
        ("headers", {"X-Team": "a", "x-team": None}, "headers name"),
        ("query", "region=eu", "query"),
        ("query", {"region": ["eu"]}, "query['region']"),
        ("query", {1: "eu"}, "query name"),
        ("query", {"n": 10**5000}, "query['n']"),
    ],
)
async def test_bad_shapes_are_refused_before_any_request(
    argument: str, value: Any, param: str
) -> None:
    with ScriptedServer(Answer([event(COMPLETED)])) as server:
        with pytest.raises(ValidationError) as caught:
            AsyncClient("k" * 8, base_url=server.url, **{f"default_{argument}": value})
        assert caught.value.param == f"default_{param}"
        async with AsyncClient("k" * 8, base_url=server.url) as api:
            for call in (
                lambda: api.generate("a fox", **{f"extra_{argument}": value}),
                lambda: api.edit("a hat", images=b"x", **{f"extra_{argument}": value}),
                lambda: api.responses.stream(
                    model="gpt-5", input="a fox", **{f"extra_{argument}": value}
                ),
                lambda: api.responses.resume("resp_1", **{f"extra_{argument}": value}),
            ):
                with pytest.raises(ValidationError) as caught:
                    call()
                assert caught.value.param == f"extra_{param}"
                assert "a\r\nX-Evil" not in str(caught.value)
    assert server.requests == []


@pytest.mark.parametrize("api_version", ["2025-04-01-preview", "preview"])
async def test_azure_refuses_an_api_version_in_them(api_version: str) -> None:
    """The client sets ``api-version`` from ``api_version=``: one given in a query would
    be lost, so it is refused (openai's ``extra_query`` would replace it)."""
    options = {"azure_endpoint": "https://x.openai.azure.com", "api_version": api_version}
    with pytest.raises(ValidationError) as caught:
        ttstream.AsyncAzureClient("k" * 8, default_query={"api-version": "x"}, **options)
    assert caught.value.param == "default_query['api-version']"
    assert "api_version" in str(caught.value)
    async with ttstream.AsyncAzureClient(
        "k" * 8, default_query={"region": "eu"}, **options
    ) as azure:
        for call in (
            lambda: azure.generate("a fox", extra_query={"api-version": "x"}),
            lambda: azure.responses.resume("resp_1", extra_query={"api-version": "x"}),
        ):
            with pytest.raises(ValidationError) as caught:
                call()
            assert caught.value.param == "extra_query['api-version']"


async def test_azure_v1_sends_an_api_version_of_theirs() -> None:
    """On the v1 surface with ``api_version='v1'`` no ``api-version`` is sent: theirs is."""
    with ScriptedServer(Answer([event(COMPLETED)])) as server:
        async with (
            ttstream.AsyncAzureClient(
                "k" * 8, azure_endpoint=server.url, api_version="v1"
            ) as azure,
            azure.generate("a fox", extra_query={"api-version": "preview"}) as stream,
        ):
            _ = [item async for item in stream]
    assert query_of(server.requests[0]) == {"api-version": "preview"}


@pytest.mark.parametrize("tail", ["?region=eu", "?", "#top"])
def test_a_base_url_with_a_query_or_fragment_is_refused(tail: str) -> None:
    """``{base_url}/{path}`` would put the path inside the query (or the fragment, never
    sent): ``default_query`` carries parameters."""
    with pytest.raises(ValidationError) as caught:
        AsyncClient("k" * 8, base_url=f"https://gateway.example/v1{tail}")
    assert caught.value.param == "base_url"
    assert "default_query" in str(caught.value)
    assert "region=eu" not in str(caught.value)  # a query may carry a key


async def test_event_source_takes_a_content_type_for_its_json_in_any_case() -> None:
    """``EventSource(json=...)`` sends ``Content-Type: application/json`` unless its
    ``headers`` name another, in whatever case (one header, not two)."""
    with ScriptedServer(Answer([b"data: x\n\n"])) as server:
        async with httpx2.AsyncClient() as http:
            source = ttstream.EventSource(
                http,
                "POST",
                server.url + "/events",
                headers={"content-type": "application/merge-patch+json"},
                json={"a": 1},
            )
            async with source:
                assert (await anext(source)).data == "x"
    assert server.requests[0].headers["content-type"] == "application/merge-patch+json"
