"""``with_options(**overrides)`` and its alias ``copy`` (openai-python's): a new client
with the same settings but those given, sharing the original's connection pool, over a
recording loopback server and the emulator."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import httpx2
import pytest

from tests.support.scripted_server import Answer, ScriptedServer
from tests.support.streams import collect
from ttstream import (
    AsyncAzureClient,
    AsyncClient,
    AzureClient,
    Client,
    Completed,
    ReconnectPolicy,
    ValidationError,
)
from ttstream._secrets import redact
from ttstream.emulator import EmulatorServer

pytestmark = pytest.mark.anyio

DONE = {"type": "image_generation.completed", "b64_json": base64.b64encode(b"img").decode()}
ANSWER = Answer([f"event: {DONE['type']}\ndata: {json.dumps(DONE)}\n\n".encode()])


@pytest.fixture(autouse=True)
def _no_keys_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TTAPI_API_KEY", "OPENAI_API_KEY", "TTAPI_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


async def test_a_copy_overrides_what_is_given_and_keeps_the_rest() -> None:
    policy = ReconnectPolicy(max_attempts=1)
    original = AsyncClient("k", max_retries=3, deadline=50.0, reconnect=policy)
    async with original:
        copy = original.with_options(timeout=7, max_retries=0)
        assert (copy.timeout, copy.max_retries) == (httpx2.Timeout(7.0), 0)
        assert (copy.deadline, copy.reconnect, copy.base_url) == (50.0, policy, original.base_url)
        assert (original.timeout.read, original.max_retries) == (300.0, 3)
        assert original.copy(deadline=5.0).deadline == 5.0  # the alias
        assert type(copy.with_options(max_event_bytes=10)) is AsyncClient


async def test_headers_and_query_merge_or_are_replaced_as_in_openai() -> None:
    """``default_headers`` merges over the client's (names without regard to case, a
    ``None`` removes one); ``set_default_headers`` replaces them; the query alike."""
    with ScriptedServer(ANSWER) as server:
        original = AsyncClient(
            "k",
            base_url=server.url + "/v1",
            default_headers={"X-A": "1", "X-B": "2"},
            default_query={"q": "1", "r": "2"},
        )
        async with original:
            merged = original.with_options(
                default_headers={"x-b": "3", "X-A": None}, default_query={"r": "3"}
            )
            replaced = original.with_options(
                set_default_headers={"X-C": "4"}, set_default_query={"s": "5"}
            )
            for client in (merged, replaced, original):
                await collect(client.generate("a cat"))
    sent = [(r.headers, r.path) for r in server.requests]
    assert ("x-a" not in sent[0][0], sent[0][0]["x-b"]) == (True, "3")
    assert sent[0][1].endswith("?q=1&r=3")
    assert (sent[1][0]["x-c"], "x-a" in sent[1][0], sent[1][1].split("?")[1]) == ("4", False, "s=5")
    assert (sent[2][0]["x-a"], sent[2][0]["x-b"], sent[2][1].split("?")[1]) == ("1", "2", "q=1&r=2")


async def test_a_key_given_to_a_copy_is_sent_and_redacted() -> None:
    key = f"sk-copy-{secrets.token_hex(8)}"
    with ScriptedServer(ANSWER) as server:
        async with AsyncClient("k", base_url=server.url + "/v1") as original:
            copy = original.with_options(api_key=key)
            await collect(copy.generate("a cat"))
            assert key not in repr(copy)
            assert key not in redact(f"the key is {key}")
            await collect(original.generate("a cat"))
    assert server.requests[0].headers["authorization"] == f"Bearer {key}"
    assert server.requests[1].headers["authorization"] == "Bearer k"


async def test_the_copy_shares_the_pool_and_closing_it_leaves_the_original_open(
    server: EmulatorServer,
) -> None:
    async with AsyncClient("k", base_url=server.base_url) as original:
        copy = original.with_options(max_retries=0)
        assert copy.http_client is original.http_client
        events = await collect(copy.generate("a kite", size="64x48"))
        await copy.aclose()
        assert not original.http_client.is_closed
        events += await collect(original.generate("a kite", size="64x48"))
    assert [type(e) for e in events] == [Completed, Completed]
    assert original.http_client.is_closed


async def test_auth_auto_is_decided_again_for_another_base_url() -> None:
    ttapi = AsyncClient("k", base_url="https://api.ttapi.io/v1")
    assert ttapi.auth == "tt-api-key"
    assert ttapi.with_options(base_url="https://api.openai.com/v1").auth == "bearer"
    assert ttapi.with_options(max_retries=0).auth == "tt-api-key"
    fixed = AsyncClient("k", base_url="https://api.ttapi.io/v1", auth="bearer")
    assert fixed.with_options(base_url="https://gateway.example/v1").auth == "bearer"
    await ttapi.aclose()
    await fixed.aclose()


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"timeout": None}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"max_connections": 5}, "max_connections"),
        ({"default_headers": {"X": "1"}, "set_default_headers": {"Y": "2"}}, "default_headers"),
        ({"default_query": {"a": "1"}, "set_default_query": {"b": "2"}}, "default_query"),
        ({"default_headers": ["X"]}, "default_headers"),
    ],
)
async def test_bad_values_are_validation_errors(overrides: dict[str, Any], param: str) -> None:
    async with AsyncClient("k") as client:
        with pytest.raises(ValidationError) as info:
            client.with_options(**overrides)
    assert info.value.param == param


async def test_an_unknown_name_names_the_closest_one() -> None:
    async with AsyncClient("k") as client:
        with pytest.raises(TypeError, match="did you mean 'max_retries'"):
            client.with_options(max_retry=1)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="backend"):
            client.copy(backend="trio")  # type: ignore[call-arg]


async def test_an_azure_copy_keeps_its_target_and_replaces_its_credential(
    server: EmulatorServer,
) -> None:
    endpoint = server.base_url.removesuffix("/v1")
    original = AsyncAzureClient(
        azure_ad_token="token-one", azure_endpoint=endpoint, api_version="2025-04-01-preview"
    )
    async with original:
        copy = original.with_options(api_key="key-two", azure_deployment="gpt-image-1")
        assert (copy.azure_endpoint, copy.api_version) == (
            original.azure_endpoint,
            "2025-04-01-preview",
        )
        assert copy.azure_deployment == "gpt-image-1"
        assert copy.http_client is original.http_client
        assert "key-two" not in repr(copy)
        assert (await copy.auth_headers("images/generations")) == {"api-key": "key-two"}
        with pytest.raises(TypeError, match="base_url"):
            original.with_options(base_url="https://x.example")  # type: ignore[call-arg]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_sync_copy_shares_the_loop_and_pool(server: EmulatorServer, backend: str) -> None:
    with Client("k", base_url=server.base_url, backend=backend) as original:
        copy = original.with_options(max_retries=0, timeout=30)
        assert copy._async.http_client is original._async.http_client
        with copy.generate("a kite", size="64x48") as stream:
            assert [type(e) for e in stream] == [Completed]
        copy.close()
        with original.generate("a kite", size="64x48") as stream:
            assert [type(e) for e in stream] == [Completed]
        assert original.copy(deadline=3.0)._async.deadline == 3.0
        with pytest.raises(TypeError, match="did you mean 'deadline'"):
            original.with_options(dedline=3.0)  # type: ignore[call-arg]


def test_a_sync_azure_copy_is_an_azure_client(server: EmulatorServer) -> None:
    endpoint = server.base_url.removesuffix("/v1")
    with AzureClient(api_key="k", azure_endpoint=endpoint) as original:
        copy = original.with_options(api_version="v1", max_retries=0)
        assert isinstance(copy, AzureClient)
        assert copy._async.max_retries == 0
        copy.close()
