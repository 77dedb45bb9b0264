"""The hint an event returned as a URL gives (issue 21): right for the sync ``Client``,
which has no ``await``, and for the ``AsyncClient``."""

from __future__ import annotations

import pytest

import ttstream
from ttstream.emulator import EmulatorServer

URL_RESULT = {"model": "dall-e-2", "size": "256x256", "response_format": "url"}


def test_the_sync_clients_hint_has_no_await(server: EmulatorServer) -> None:
    with ttstream.Client("k", base_url=server.base_url) as client:
        with client.generate("a kite", **URL_RESULT) as stream:
            [event] = list(stream)
        assert isinstance(event, ttstream.Completed)
        with pytest.raises(ttstream.TTStreamError) as info:
            _ = event.image_bytes
        message = str(info.value)
        assert "get the bytes with `client.fetch_image(event)`" in message
        assert "await" not in message.split("(awaited on an AsyncClient)")[0]
        assert client.fetch_image(event).startswith(b"\x89PNG")  # what the hint says works


@pytest.mark.anyio
async def test_the_async_clients_hint_says_it_is_awaited(server: EmulatorServer) -> None:
    async with ttstream.AsyncClient("k", base_url=server.base_url) as client:
        async with client.generate("a kite", **URL_RESULT) as stream:
            [event] = [event async for event in stream]
        assert isinstance(event, ttstream.Completed)
        with pytest.raises(ttstream.TTStreamError, match=r"\(awaited on an AsyncClient\)"):
            _ = event.image_bytes
        assert (await client.fetch_image(event)).startswith(b"\x89PNG")
