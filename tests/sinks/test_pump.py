"""pump and the small sinks: fan-out order, isolation, policies, closing exactly once."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import httpx2
import pytest
from PIL import Image

from tests.support.streams import assert_no_stream_open
from ttstream import (
    AsyncClient,
    Completed,
    IncompleteStreamError,
    PartialImage,
    Reconnecting,
    StreamItem,
    ValidationError,
)
from ttstream.emulator import EmulatorServer
from ttstream.sinks import (
    CallbackSink,
    FileSink,
    ObjectStreamSink,
    PillowSink,
    SinkError,
    pump,
    to_pil,
)

pytestmark = pytest.mark.anyio


def png(color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def preview(index: int) -> PartialImage:
    return PartialImage(b64_json=png((index * 60, 0, 0)), operation="generation", index=index)


FINAL = Completed(b64_json=png((0, 200, 0)), operation="generation")
NOTICE = Reconnecting(attempt=1, delay=0.0, last_event_id="2", regenerating=False, reason="x")


class Source:
    """An async iterable of items with a pause before each; records what it yielded and
    whether it was closed."""

    def __init__(self, *items: StreamItem, pause: float = 0.0, error: Exception | None = None):
        self.items, self.pause, self.error = items, pause, error
        self.yielded: list[StreamItem] = []
        self.closed = 0

    async def __aiter__(self) -> AsyncIterator[StreamItem]:
        for item in self.items:
            await anyio.sleep(self.pause)
            self.yielded.append(item)
            yield item
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        self.closed += 1


class Recorder:
    """A sink that records items (after an optional pause each) and its closings."""

    def __init__(self, pause: float = 0.0, fail_on: int | None = None) -> None:
        self.pause, self.fail_on = pause, fail_on
        self.items: list[StreamItem] = []
        self.closed = 0

    def __repr__(self) -> str:
        return f"<Recorder pause={self.pause}>"

    async def send(self, event: StreamItem) -> None:
        if self.fail_on is not None and len(self.items) == self.fail_on:
            raise OSError("disk full")
        await anyio.sleep(self.pause)
        self.items.append(event)

    async def aclose(self) -> None:
        self.closed += 1


ALL = (preview(0), preview(1), NOTICE, preview(2), FINAL)


@pytest.mark.parametrize("policy", ["block", "latest"])
async def test_every_sink_gets_every_item_in_order_when_it_keeps_up(policy: str) -> None:
    source, sinks = Source(*ALL, pause=0.01), [Recorder(), Recorder()]
    assert await pump(source, *sinks, policy=policy) == [FINAL]  # type: ignore[arg-type]
    for sink in sinks:
        assert sink.items == list(ALL)
        assert sink.closed == 1
    assert source.closed == 1


async def test_latest_a_slow_sink_skips_stale_previews_but_gets_the_final_and_notices() -> None:
    source = Source(*ALL, pause=0.02)
    slow, fast = Recorder(pause=0.3), Recorder()
    with anyio.fail_after(5):
        await pump(source, slow, fast, policy="latest")
    assert fast.items == list(ALL)
    # preview 0 went out at once; by the time the slow sink was free again, preview 1
    # was stale and preview 2 had been superseded by the final image.
    assert slow.items == [preview(0), NOTICE, FINAL]


async def test_latest_a_slow_sink_does_not_hold_the_others_back() -> None:
    got_final_at: dict[str, float] = {}
    start = anyio.current_time()

    async def fast(item: StreamItem) -> None:
        if isinstance(item, Completed):
            got_final_at["fast"] = anyio.current_time() - start

    slow = Recorder(pause=0.5)
    await pump(Source(*ALL, pause=0.01), slow, CallbackSink(fast), policy="latest")
    assert got_final_at["fast"] < 0.3  # not after the slow sink's 0.5 s per item


async def test_block_the_slowest_sink_paces_the_stream() -> None:
    items = [preview(i % 3) for i in range(12)] + [FINAL]
    source, slow = Source(*items), Recorder(pause=0.02)
    lead = []

    async def watch(item: StreamItem) -> None:
        lead.append(len(source.yielded) - len(slow.items))

    await pump(source, slow, CallbackSink(watch), policy="block", buffer=2)
    assert slow.items == items
    # The source never ran ahead of the slow sink by more than its buffer allows: the
    # buffer, the item the sink holds, and the one the reader is trying to put.
    assert max(lead) <= 2 + 2


async def test_a_failing_sink_is_detached_and_closed_and_the_others_go_on() -> None:
    failing, healthy = Recorder(fail_on=1), Recorder()
    source = Source(*ALL)
    with pytest.raises(SinkError) as info:
        await pump(source, failing, healthy)
    assert healthy.items == list(ALL)
    assert (failing.items, failing.closed, healthy.closed) == ([preview(0)], 1, 1)
    [(sink, cause)] = info.value.failures
    assert sink is failing
    assert isinstance(cause, OSError)
    assert info.value.__cause__ is cause
    assert "<Recorder pause=0.0> raised OSError('disk full')" in str(info.value)
    assert source.closed == 1


async def test_a_failing_sink_under_block_does_not_stall_the_stream() -> None:
    items = [preview(0)] * 20 + [FINAL]
    healthy = Recorder()
    with anyio.fail_after(5), pytest.raises(SinkError):
        await pump(Source(*items), Recorder(fail_on=0), healthy, buffer=1)
    assert len(healthy.items) == 21


async def test_the_stream_error_wins_after_sinks_got_what_came_before_it() -> None:
    error = IncompleteStreamError("the body ended", last_partial=preview(1))
    source, sink = Source(preview(0), preview(1), error=error), Recorder()
    with pytest.raises(IncompleteStreamError):
        await pump(source, sink, Recorder(fail_on=0))
    assert (sink.items, sink.closed, source.closed) == ([preview(0), preview(1)], 1, 1)


@pytest.mark.parametrize("policy", ["block", "latest"])
async def test_cancellation_closes_every_sink_once_and_the_stream(policy: str) -> None:
    source = Source(*ALL, pause=0.05)
    sinks = [Recorder(pause=10), Recorder()]
    with anyio.move_on_after(0.2):
        await pump(source, *sinks, policy=policy)  # type: ignore[arg-type]
    assert [sink.closed for sink in sinks] == [1, 1]
    assert source.closed == 1


async def test_bad_policy_and_buffer_are_refused() -> None:
    with pytest.raises(ValidationError, match="policy"):
        await pump(Source(), Recorder(), policy="newest")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="buffer"):
        await pump(Source(), Recorder(), buffer=0)
    with pytest.raises(ValidationError, match=r"buffer=True .*an int >= 1 \(items\)"):
        await pump(Source(), Recorder(), buffer=True)  # a bool is no count (require_int)


@pytest.mark.parametrize(
    ("bad", "allowed"),
    [
        (FileSink, r"sinks\[1\]=.*not a class: pass FileSink\(\.\.\.\)"),
        (object(), r"sinks\[1\]=.*async send\(item\) and aclose\(\)"),
    ],
)
async def test_a_bad_sink_is_refused_before_the_generation_starts(
    emulator: EmulatorServer, bad: object, allowed: str
) -> None:
    # a class or an object was found out only after the whole (billed) generation ran
    spec = f"key={uuid.uuid4()}"
    http = httpx2.AsyncClient(headers={"X-Emulator-Fault": spec})
    async with AsyncClient("k", base_url=emulator.base_url, http_client=http) as client:
        with pytest.raises(ValidationError, match=allowed):
            await pump(client.generate("a kite", size="64x48"), Recorder(), bad)  # type: ignore[arg-type]
        assert emulator.stream_stats.requests(spec) == 0
        await pump(client.generate("a kite", size="64x48"), Recorder())
        assert emulator.stream_stats.requests(spec) == 1  # the counter does count


@pytest.mark.parametrize(
    ("make", "param"),
    [
        (lambda: CallbackSink(5), "fn"),  # type: ignore[arg-type]
        (lambda: PillowSink("show"), "fn"),  # type: ignore[arg-type]
        (lambda: PillowSink(print, max_pixels="4096"), "max_pixels"),  # type: ignore[arg-type]
    ],
)
async def test_a_sink_of_a_function_is_checked_when_made(
    emulator: EmulatorServer, make: Callable[[], object], param: str
) -> None:
    # CallbackSink(5) was taken: pump then ran the whole (billed) generation and raised
    # SinkError naming a TypeError.
    spec = f"key={uuid.uuid4()}"
    http = httpx2.AsyncClient(headers={"X-Emulator-Fault": spec})
    async with AsyncClient("k", base_url=emulator.base_url, http_client=http) as client:
        with pytest.raises(ValidationError) as caught:
            await pump(client.generate("a kite", size="64x48"), make())  # type: ignore[arg-type]
    assert caught.value.param == param
    assert emulator.stream_stats.requests(spec) == 0


async def test_a_stream_that_is_no_async_iterable_is_refused_naming_it(
    emulator: EmulatorServer,
) -> None:
    # pump(client, ...) and pump(sync_client.generate(...), ...) raised a bare
    # AttributeError ('... has no attribute __aiter__') from inside pump.
    recorder = Recorder()
    async with AsyncClient("k", base_url=emulator.base_url) as client:
        for wrong in (client, "a kite", [FINAL]):
            with pytest.raises(ValidationError, match="stream must be an ImageStream") as caught:
                await pump(wrong, recorder)  # type: ignore[arg-type]
            assert caught.value.param == "stream"
    assert (recorder.items, recorder.closed) == ([], 0)


async def test_object_stream_sink_feeds_an_anyio_pipeline() -> None:
    send, receive = anyio.create_memory_object_stream[StreamItem](1)
    received: list[StreamItem] = []

    async def consumer() -> None:
        async with receive:
            received.extend([item async for item in receive])

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(consumer)
        await pump(Source(*ALL), ObjectStreamSink(send))
    assert received == list(ALL)


async def test_callback_sink_takes_sync_and_async_functions() -> None:
    seen: list[str] = []

    async def later(item: StreamItem) -> None:
        seen.append("async")

    await pump(Source(FINAL), CallbackSink(lambda item: seen.append("sync")), CallbackSink(later))
    assert sorted(seen) == ["async", "sync"]


async def test_pillow_sink_hands_out_images_and_skips_notices() -> None:
    colors: list[tuple[int, int, int]] = []

    def keep(event: object, image: Image.Image) -> None:
        colors.append(image.convert("RGB").getpixel((0, 0)))  # type: ignore[arg-type]

    await pump(Source(preview(1), NOTICE, FINAL), PillowSink(keep))
    assert colors == [(60, 0, 0), (0, 200, 0)]
    assert to_pil(FINAL).size == (8, 8)


async def test_a_live_preview_to_files_in_a_few_lines(tmp_path: Path) -> None:
    with EmulatorServer() as server:
        async with AsyncClient("k", base_url=server.base_url) as client:
            stream = client.generate("a kite", model="gpt-image-2", size="64x48", partial_images=2)
            [final] = await pump(stream, FileSink(tmp_path, stem="kite"))
    assert isinstance(final, Completed)
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["kite-final.png", "kite-partial-0.png", "kite-partial-1.png"]


class FailAware(Recorder):
    """A sink with the optional ``fail`` hook."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def fail(self, error: Exception) -> None:
        self.calls.append(f"fail:{error}")

    async def aclose(self) -> None:
        self.calls.append("aclose")
        await super().aclose()


async def test_a_failed_stream_is_told_to_sinks_that_listen_before_they_close() -> None:
    error = IncompleteStreamError("the body ended")
    aware, plain = FailAware(), Recorder()
    with pytest.raises(IncompleteStreamError):
        await pump(Source(preview(0), error=error), aware, plain)
    assert aware.items == [preview(0)]
    assert aware.calls == ["fail:the body ended", "aclose"]
    assert plain.closed == 1


async def test_a_successful_stream_does_not_call_fail() -> None:
    aware = FailAware()
    await pump(Source(*ALL), aware)
    assert aware.calls == ["aclose"]


@pytest.mark.parametrize("policy", ["block", "latest"])
async def test_pump_stops_reading_once_every_sink_is_detached(policy: str) -> None:
    source = Source(*([preview(0)] * 50), FINAL, pause=0.01)
    with anyio.fail_after(5), pytest.raises(SinkError):
        await pump(source, Recorder(fail_on=0), Recorder(fail_on=1), policy=policy)  # type: ignore[arg-type]
    assert len(source.yielded) < 10
    assert source.closed == 1


# Every wait bounded: sinks that never return, the deadline, KeyboardInterrupt.


class Stuck:
    """A sink whose ``send`` (or ``aclose``) never returns until cancelled."""

    def __init__(self, *, in_send: bool) -> None:
        self.in_send = in_send
        self.sent = 0

    async def send(self, item: StreamItem) -> None:
        self.sent += 1
        if self.in_send:
            await anyio.sleep_forever()

    async def aclose(self) -> None:
        if not self.in_send:
            await anyio.sleep_forever()


@pytest.fixture
def short_cleanup(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr("ttstream._bounds.CLEANUP_TIMEOUT", 0.2)
    return 0.2


@pytest.mark.parametrize("in_send", [True, False], ids=["send", "aclose"])
async def test_a_stuck_sink_does_not_make_pump_uncancellable(
    in_send: bool, short_cleanup: float
) -> None:
    source = Source(*ALL, pause=0.2)
    started = anyio.current_time()
    with anyio.move_on_after(0.3) as scope:
        await pump(source, Stuck(in_send=in_send), Recorder())
    assert scope.cancelled_caught
    assert anyio.current_time() - started < 0.3 + 3 * short_cleanup + 0.5
    assert source.closed == 1


async def test_a_sink_stuck_in_send_is_detached_at_the_streams_deadline(
    short_cleanup: float,
) -> None:
    with EmulatorServer(step_delay=0.05) as server:
        client = AsyncClient("k", base_url=server.base_url, deadline=1.0)
        stuck, recorder = Stuck(in_send=True), Recorder()
        started = anyio.current_time()
        async with client:
            stream = client.generate("a kite", model="gpt-image-2", partial_images=3, size="64x48")
            with pytest.raises(SinkError) as info:
                await pump(stream, stuck, recorder)
        elapsed = anyio.current_time() - started
        assert elapsed < 1.0 + 3 * short_cleanup + 1
        assert [sink for sink, _ in info.value.failures] == [stuck]
        assert isinstance(info.value.failures[0][1], TimeoutError)
        assert_no_stream_open(server)  # the API connection was released


async def test_a_sink_stuck_in_aclose_is_abandoned_after_the_bound(short_cleanup: float) -> None:
    stuck = Stuck(in_send=False)
    with pytest.raises(SinkError) as info:
        with anyio.fail_after(2):
            await pump(Source(*ALL), stuck, Recorder())
    assert isinstance(info.value.failures[0][1], TimeoutError)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_keyboard_interrupt_in_a_sink_leaves_pump_as_itself(backend: str) -> None:
    async def interrupted(item: StreamItem) -> None:
        raise KeyboardInterrupt

    async def main() -> None:
        await pump(Source(*ALL), CallbackSink(interrupted), Recorder())

    with pytest.raises(KeyboardInterrupt):
        anyio.run(main, backend=backend)


async def test_pump_returns_only_the_images_of_the_last_generation() -> None:
    regenerating = Reconnecting(
        attempt=1, delay=0.0, last_event_id="", regenerating=True, reason="cut"
    )
    second = Completed(b64_json=png((0, 0, 200)), operation="generation")
    source = Source(preview(0), FINAL, regenerating, preview(0), second)
    assert await pump(source, Recorder()) == [second]


async def test_pump_keeps_text_events_when_every_sink_forwards_base64() -> None:
    from ttstream._base64 import decode_on_arrival
    from ttstream.sinks import SSERelay

    with EmulatorServer() as server:
        async with AsyncClient("k", base_url=server.base_url) as client:
            relayed = client.generate("a kite", model="gpt-image-2", size="64x48")
            await pump(relayed, SSERelay())
            assert relayed.decode_images is decode_on_arrival(relays_base64=True)
            decoded = client.generate("a kite", model="gpt-image-2", size="64x48")
            await pump(decoded, SSERelay(), Recorder())  # one sink wants the bytes
            assert decoded.decode_images is None  # decided at the start: decoded


class FailsTwice(Recorder):
    """Fails in ``send`` and again in ``aclose``: two failures of one sink."""

    async def aclose(self) -> None:
        await super().aclose()
        raise OSError("still full")


async def test_sink_error_counts_sinks_not_failures() -> None:
    twice = FailsTwice(fail_on=0)
    with pytest.raises(SinkError) as info:
        await pump(Source(*ALL), twice, Recorder())
    assert len(info.value.failures) == 2
    assert str(info.value).startswith("1 sink failed and was detached: ")
    with pytest.raises(SinkError) as both:
        await pump(Source(*ALL), Recorder(fail_on=0), Recorder(fail_on=1))
    assert str(both.value).startswith("2 sinks failed and were detached: ")
