"""A call's ``timeout=`` (as openai's ``client.images.generate(..., timeout=...)``): it
bounds every request of its stream (the first, retries, reconnections, resumes) in place
of the client's, over the emulator's ``stall`` fault on loopback, and is checked as the
client's ``timeout=`` is."""

from __future__ import annotations

import io
import math
import secrets
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from PIL import Image

from tests.support.streams import collect
from ttstream import (
    APITimeoutError,
    AsyncAzureClient,
    AsyncClient,
    Client,
    Reconnecting,
    ReconnectPolicy,
    ValidationError,
)
from ttstream.batch import _described
from ttstream.client import DEFAULT_TIMEOUT
from ttstream.emulator import EmulatorServer

pytestmark = pytest.mark.anyio

FAST = ReconnectPolicy(delay=0.01, max_delay=0.05)
TOOLS = [{"type": "image_generation", "partial_images": 1, "size": "64x48"}]
STALL = 5.0  # the emulator's pause after the first event: far above the call's timeout


def fault(spec: str) -> dict[str, str]:
    """Headers asking the emulator for ``spec`` (made unique: ``times`` counts per test)."""
    return {"X-Emulator-Fault": f"{spec};key={secrets.token_hex(4)}"}


def client_of(server: EmulatorServer, **options: Any) -> AsyncClient:
    options.setdefault("reconnect", FAST)
    return AsyncClient("any-key", base_url=server.base_url, **options)


async def test_a_call_timeout_bounds_a_stalled_stream_then_it_resumes(
    server: EmulatorServer,
) -> None:
    """The first request stalls for 5 s after its first event; the call's 0.3 s read
    timeout breaks it and the stream resumes after ``Last-Event-ID``. The client's
    timeout (5 min of silence) is left as it was."""
    async with client_of(server, default_headers=fault(f"ids;stall={STALL};times=1")) as client:
        started = time.monotonic()
        with anyio.fail_after(STALL - 1):
            items = await collect(
                client.generate("a kite", size="64x48", partial_images=2, timeout=0.3)
            )
        assert time.monotonic() - started < STALL - 1
        assert any(isinstance(item, Reconnecting) for item in items)
        assert client.timeout is DEFAULT_TIMEOUT
        items = await collect(client.generate("a kite", size="64x48", partial_images=1))
        assert not any(isinstance(item, Reconnecting) for item in items)


async def test_a_call_timeout_bounds_every_reconnection_too(server: EmulatorServer) -> None:
    """Every request stalls for 5 s after its first event: each of the 3 reconnections
    is broken after the call's timeout too, so the 4 events arrive in about a second."""
    async with client_of(server, default_headers=fault(f"ids;stall={STALL}")) as client:
        with anyio.fail_after(STALL - 1):
            items = await collect(
                client.generate("a kite", size="64x48", partial_images=3, timeout=0.3)
            )
    assert sum(isinstance(item, Reconnecting) for item in items) == 3
    assert len(items) == 4 + 3


async def test_an_httpx2_timeout_is_taken_as_it_is(server: EmulatorServer) -> None:
    """An edit with ``httpx2.Timeout(10, read=0.3)``: its read phase breaks the stall."""
    image = io.BytesIO()
    Image.new("RGB", (8, 8)).save(image, "PNG")
    timeout = httpx2.Timeout(10.0, read=0.3)
    async with client_of(server, default_headers=fault(f"ids;stall={STALL};times=1")) as client:
        stream = client.edit(
            "a hat", images=image.getvalue(), size="64x48", partial_images=1, timeout=timeout
        )
        with anyio.fail_after(STALL - 1):
            items = await collect(stream)
    assert any(isinstance(item, Reconnecting) for item in items)


async def test_a_call_timeout_bounds_a_responses_stream_and_its_resumes(
    server: EmulatorServer,
) -> None:
    """A background response stalls: the call's timeout breaks the ``POST`` and it
    resumes (``GET``); a later ``resume`` that stalls is bounded by its own timeout."""
    async with client_of(server, default_headers=fault(f"stall={STALL};times=1")) as client:
        stream = client.responses.stream(
            model="gpt-5", input="a kite", tools=TOOLS, background=True, timeout=0.3
        )
        with anyio.fail_after(STALL - 1):
            items = await collect(stream)
        assert any(isinstance(item, Reconnecting) for item in items)
        assert stream.response_id is not None
    async with client_of(server, default_headers=fault(f"stall={STALL}")) as client:
        policy = ReconnectPolicy(max_attempts=0)
        resumed = client.responses.resume(stream.response_id, timeout=0.3, reconnect=policy)
        with anyio.fail_after(STALL - 1), pytest.raises(APITimeoutError):
            await collect(resumed)
        assert client.timeout is DEFAULT_TIMEOUT


def test_the_sync_client_passes_a_call_timeout_on(server: EmulatorServer) -> None:
    no_reconnect = ReconnectPolicy(max_attempts=0)
    with (
        Client(
            "any-key", base_url=server.base_url, default_headers=fault(f"stall={STALL}")
        ) as client,
        client.generate(
            "a kite", size="64x48", partial_images=1, timeout=0.3, reconnect=no_reconnect
        ) as stream,
    ):
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            list(stream)
        assert time.monotonic() - started < STALL - 1


BAD = [
    None, 0, -1.0, math.nan, math.inf, True, "5", 1j,
    # httpx's "no timeout" for one phase or all: a wait without a bound
    httpx2.Timeout(None), httpx2.Timeout(5.0, read=None), httpx2.Timeout(5.0, pool=math.inf),
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD, ids=repr)
async def test_a_bad_call_timeout_is_refused_at_once_as_the_clients_is(bad: Any) -> None:
    """The call's ``timeout`` is checked by the client's check: the same error for the
    same value, before any request (the base URL has nothing listening)."""
    with pytest.raises(ValidationError) as made:
        AsyncClient("k", timeout=bad)
    async with AsyncClient("k", base_url="http://127.0.0.1:9") as client:
        calls = [
            lambda: client.generate("a cat", timeout=bad),
            lambda: client.edit("a hat", images=b"\x89PNG\r\n\x1a\n", timeout=bad),
            lambda: client.responses.stream(model="gpt-5", input="x", timeout=bad),
            lambda: client.responses.resume("resp_1", timeout=bad),
        ]
        for call in calls:
            with pytest.raises(ValidationError) as info:
                call()
            assert info.value.param == "timeout"
            assert str(info.value) == str(made.value)


def test_the_sync_client_refuses_a_bad_call_timeout() -> None:
    with Client("k", base_url="http://127.0.0.1:9") as client:
        with pytest.raises(ValidationError, match="timeout"):
            client.generate("a cat", timeout=None)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="timeout"):
            client.responses.resume("resp_1", timeout=0)


def test_a_call_timeout_is_not_part_of_a_batch_jobs_hash() -> None:
    """The journal's parameter hash covers what the job asks for: a new timeout (an
    ``httpx2.Timeout`` is no JSON either) is the same job."""
    assert _described({"size": "64x48", "timeout": httpx2.Timeout(1.0)}) == {"size": "64x48"}


@pytest.fixture(scope="module")
def azure() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=0.0, azure=True) as running:
        yield running


async def test_an_azure_call_timeout_bounds_its_stream(azure: EmulatorServer) -> None:
    """The Azure clients build their streams with AsyncClient's code: the same timeout."""
    endpoint = azure.base_url.removesuffix("/v1")
    headers = fault(f"ids;stall={STALL};times=1")
    async with AsyncAzureClient(
        api_key="k", azure_endpoint=endpoint, default_headers=headers, reconnect=FAST
    ) as client:
        with pytest.raises(ValidationError, match="timeout"):
            client.generate("a kite", timeout=None)  # type: ignore[arg-type]
        with anyio.fail_after(STALL - 1):
            items = await collect(
                client.generate("a kite", size="64x48", partial_images=2, timeout=0.3)
            )
    assert any(isinstance(item, Reconnecting) for item in items)
