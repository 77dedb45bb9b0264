"""The Sink protocol and its optional capabilities (docs/sinks.md, "Writing a sink"): a
plain object with ``send`` and ``aclose`` is a sink; ``fail`` (FailureAwareSink) and
``relays_base64`` (Base64ForwardingSink) are declared protocols that ``pump`` checks,
and mypy accepts sinks with and without them."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import ROOT
from tests.support.typecheck import mypy_errors
from ttstream import AsyncClient, Completed, IncompleteStreamError, PartialImage, StreamItem
from ttstream.emulator import EmulatorServer
from ttstream.sinks import (
    Base64ForwardingSink,
    FailureAwareSink,
    FileSink,
    RedisStreamSink,
    Sink,
    SSERelay,
    WebSocketSink,
    pump,
)

pytestmark = pytest.mark.anyio

B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
PREVIEW = PartialImage(b64_json=B64, operation="generation", index=0)
FINAL = Completed(b64_json=B64, operation="generation")


class Plain:
    """A user's sink as written before the capabilities were declared: no base class,
    only ``send`` and ``aclose``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def send(self, event: StreamItem) -> None:
        self.calls.append(type(event).__name__)

    async def aclose(self) -> None:
        self.calls.append("aclose")


class Told(Plain):
    """A sink with ``fail``."""

    async def fail(self, error: Exception) -> None:
        self.calls.append(f"fail:{error}")


class Forwarding(Plain):
    """A sink that forwards base64 text."""

    relays_base64 = True


class NotForwarding(Plain):
    """A sink that declares the capability, switched off."""

    relays_base64 = False


async def items(*events: StreamItem, error: Exception | None = None) -> AsyncIterator[StreamItem]:
    for event in events:
        yield event
    if error is not None:
        raise error


def test_each_capability_is_a_protocol_of_its_own() -> None:
    plain, told, forwarding = Plain(), Told(), Forwarding()
    assert all(isinstance(sink, Sink) for sink in (plain, told, forwarding))
    assert not isinstance(plain, FailureAwareSink)
    assert not isinstance(plain, Base64ForwardingSink)
    assert isinstance(told, FailureAwareSink)
    assert not isinstance(told, Base64ForwardingSink)
    assert isinstance(forwarding, Base64ForwardingSink)
    assert not isinstance(forwarding, FailureAwareSink)
    assert not isinstance(object(), Sink)


def test_the_built_in_sinks_declare_what_they_do(tmp_path: Path) -> None:
    relay = SSERelay()
    assert isinstance(relay, FailureAwareSink)
    assert isinstance(relay, Base64ForwardingSink)
    assert relay.relays_base64
    assert issubclass(WebSocketSink, FailureAwareSink)
    assert issubclass(RedisStreamSink, FailureAwareSink)
    file_sink = FileSink(tmp_path)
    assert isinstance(file_sink, Sink)
    assert not isinstance(file_sink, FailureAwareSink)


async def test_a_plain_sink_gets_every_item_then_aclose_and_nothing_else() -> None:
    plain = Plain()
    assert await pump(items(PREVIEW, FINAL), plain) == [FINAL]
    assert plain.calls == ["PartialImage", "Completed", "aclose"]


async def test_a_failed_stream_calls_fail_only_on_the_sinks_that_have_it() -> None:
    plain, told = Plain(), Told()
    with pytest.raises(IncompleteStreamError):
        await pump(items(PREVIEW, error=IncompleteStreamError("cut")), plain, told)
    assert plain.calls == ["PartialImage", "aclose"]
    assert told.calls == ["PartialImage", "fail:cut", "aclose"]


async def test_a_successful_stream_never_calls_fail() -> None:
    told = Told()
    await pump(items(PREVIEW, FINAL), told)
    assert told.calls == ["PartialImage", "Completed", "aclose"]


@pytest.mark.parametrize(
    ("sinks", "chosen"),
    [
        ((Forwarding,), True),
        ((Forwarding, Forwarding), True),
        ((Forwarding, Plain), False),  # one sink wants the bytes
        ((NotForwarding,), False),  # declared, but false
        ((Plain,), False),
    ],
)
async def test_the_stream_keeps_text_only_when_every_sink_forwards_base64(
    sinks: tuple[type[Plain], ...], chosen: bool
) -> None:
    with EmulatorServer() as server:
        async with AsyncClient("k", base_url=server.base_url) as client:
            stream = client.generate("a kite", model="gpt-image-2", size="64x48")
            await pump(stream, *(sink() for sink in sinks))
    # pump chooses (a bool) only for forwarding sinks; otherwise the stream decided alone
    assert (stream.decode_images is not None) is chosen


MYPY_SNIPPET = """
from ttstream import ImageStream, StreamItem
from ttstream.sinks import Base64ForwardingSink, FailureAwareSink, Sink, SSERelay, pump

class Plain:
    async def send(self, event: StreamItem) -> None: ...
    async def aclose(self) -> None: ...

class Told(Plain):
    async def fail(self, error: BaseException | str) -> None: ...

class Forwarding(Plain):
    relays_base64 = True

class NoClose:
    async def send(self, event: StreamItem) -> None: ...

class BadFail(Plain):
    async def fail(self) -> None: ...

async def main(stream: ImageStream) -> None:
    await pump(stream, Plain(), Told(), Forwarding(), SSERelay())
    plain: Sink = Plain()
    told: FailureAwareSink = Told()
    forwarding: Base64ForwardingSink = Forwarding()
    relay: FailureAwareSink = SSERelay()
    base64_relay: Base64ForwardingSink = SSERelay()
    await pump(stream, NoClose())  # error: no aclose
    not_told: FailureAwareSink = Plain()  # error: no fail
    bad: FailureAwareSink = BadFail()  # error: fail takes the error
    not_forwarding: Base64ForwardingSink = Plain()  # error: no relays_base64
"""


def test_mypy_accepts_sinks_with_and_without_the_capabilities(tmp_path: Path) -> None:
    found, expected, output = mypy_errors(MYPY_SNIPPET, tmp_path)
    assert len(expected) == 4
    assert found == expected, output


async def test_the_sink_of_the_docs_works_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    page = (ROOT / "docs" / "sinks.md").read_text()
    [block] = [b for b in re.findall(r"^```python\n(.*?)^```", page, re.S | re.M) if "Sink:" in b]
    namespace: dict[str, Any] = {}
    exec(block, namespace)
    await pump(items(PREVIEW, FINAL, FINAL), namespace["CountingSink"]())
    assert capsys.readouterr().out == "2 final images\n"
