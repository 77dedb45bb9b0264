"""RedisRelay over real loopback HTTP with a real redis-server, on asyncio and trio.

Two relays stand for two workers: each has its own coredis client and its own Hypercorn
server on its own port, and they share one Redis; the generation is written by a
RedisStreamSink fed from the emulator. Browsers are httpx clients decoding with
SSEDecoder (``test_relay.Browser``).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import coredis
import httpx2
import pytest
from redis_server import COREDIS_LEAK, NAMES, RedisServer, api_of, client_of
from starlette.applications import Starlette
from starlette.routing import Route
from test_relay import Browser, eventually, gated, image_of, serving

import ttstream
from ttstream import StreamItem
from ttstream.emulator import EmulatorServer
from ttstream.sinks import CallbackSink, RedisRelay, RedisStreamSink, SinkError, SSERelay, pump

pytestmark = pytest.mark.anyio

NOTICE = ttstream.Reconnecting(
    attempt=1, delay=0.0, last_event_id="", regenerating=True, reason="r"
)
pytest_plugins = ["redis_fixtures"]  # its fixtures: redis_server, redis, key, emulator, ...

Redis = coredis.Redis[bytes]
PREFIX = "previews:"


def app_of(relay: RedisRelay) -> Starlette:
    return Starlette(routes=[Route("/previews/{key}", relay)])


@contextlib.asynccontextmanager
async def workers(
    server: RedisServer, backend: str, count: int = 2, **settings: Any
) -> AsyncIterator[list[tuple[RedisRelay, httpx2.AsyncClient]]]:
    """``count`` relays, each with its own coredis client, served on their own ports;
    yields ``(relay, http client of its server)`` each."""
    async with contextlib.AsyncExitStack() as stack:
        result = []
        for _ in range(count):
            client = await stack.enter_async_context(client_of(server))
            relay = RedisRelay(client, prefix=PREFIX, **settings)
            url = await stack.enter_async_context(serving(app_of(relay), backend))
            http = await stack.enter_async_context(httpx2.AsyncClient(base_url=url))
            result.append((relay, http))
        yield result


def without_ids(raw: bytes) -> bytes:
    return re.sub(rb"^id: .*\n", b"", bytes(raw), flags=re.MULTILINE)


async def test_a_browser_resumes_on_another_worker_after_exactly_its_last_event(
    redis: Redis,
    redis_server: RedisServer,
    emulator: EmulatorServer,
    anyio_backend: str,
    key: str,
) -> None:
    job = key
    api = api_of(emulator)
    items: list[StreamItem] = []
    send_permit, permits = anyio.create_memory_object_stream[None](math.inf)
    async with (
        workers(redis_server, anyio_backend) as [(first, http1), (second, http2)],
        anyio.create_task_group() as tasks,
    ):
        with send_permit, permits:
            sink = RedisStreamSink(redis, PREFIX + job)
            tasks.start_soon(pump, gated(api.generate(), permits), sink, CallbackSink(items.append))
            send_permit.send_nowait(None)
            await eventually(lambda: sink.entries == 1)
            leaving = Browser(http1, f"/previews/{job}")
            watching = anyio.CancelScope()
            tasks.start_soon(_run_in, watching, leaving)
            send_permit.send_nowait(None)
            await eventually(lambda: len(leaving.events) == 2)
            watching.cancel()  # the browser's connection drops
            await eventually(lambda: first.connections == 0)

            back = Browser(http2, f"/previews/{job}", last_event_id=leaving.decoder.last_event_id)
            tasks.start_soon(back.run)
            await eventually(lambda: second.connections == 1)
            for _ in range(2):
                send_permit.send_nowait(None)
            await eventually(lambda: back.done)
    await api.aclose()

    entries = await redis.xrange(PREFIX + job)
    ids = [e.identifier.decode() for e in entries]
    assert leaving.ids == ids[:2]
    assert back.ids == ids[2:]  # every event once, in order, across the two workers
    assert [*leaving.names, *back.names] == NAMES
    assert api.generations == 1
    # The frames are SSERelay's, byte for byte, but for the ids.
    reference = SSERelay()
    for item in items:
        await reference.send(item)
    await reference.aclose()
    frames = [frame.data for frame in reference._frames] + [reference._end.data]  # type: ignore[union-attr]
    assert without_ids(leaving.raw) == b"retry: 3000\n\n" + without_ids(b"".join(frames[:2]))
    assert without_ids(back.raw) == b"retry: 3000\n\n" + without_ids(b"".join(frames[2:]))
    assert image_of(back.data(1)["image"]).size == (64, 48)


async def _run_in(scope: anyio.CancelScope, browser: Browser) -> None:
    with scope:
        await browser.run()


async def test_a_late_browser_gets_the_replay_and_a_finished_one_gets_204(
    redis: Redis,
    redis_server: RedisServer,
    emulator: EmulatorServer,
    anyio_backend: str,
    key: str,
) -> None:
    api = api_of(emulator)
    await pump(api.generate(), RedisStreamSink(redis, PREFIX + key + "late"))
    await api.aclose()
    ids = [e.identifier.decode() for e in await redis.xrange(PREFIX + key + "late")]
    async with workers(redis_server, anyio_backend) as [(relay, http), (_, other)]:
        late = await Browser(http, f"/previews/{key}late").run()
        resumed = await Browser(other, f"/previews/{key}late", last_event_id=ids[2]).run()
        finished = await Browser(other, f"/previews/{key}late", last_event_id=ids[4]).run()
        bogus = await Browser(other, f"/previews/{key}late", last_event_id="not-an-id").run()
    assert late.ids == ids
    assert late.names == NAMES
    assert late.data(4) == {"type": "end", "images": 1}
    assert resumed.ids == ids[3:]
    assert finished.response is not None
    assert finished.response.status_code == 204
    assert bogus.ids == ids  # not one of ours: the replay from the start
    assert relay.connections == 0


async def test_many_browsers_on_one_worker_share_its_reads(
    redis: Redis,
    redis_server: RedisServer,
    emulator: EmulatorServer,
    anyio_backend: str,
    key: str,
) -> None:
    api = api_of(emulator)
    send_permit, permits = anyio.create_memory_object_stream[None](math.inf)
    async with (
        workers(redis_server, anyio_backend, count=1) as [(relay, http)],
        anyio.create_task_group() as tasks,
    ):
        with send_permit, permits:
            sink = RedisStreamSink(redis, PREFIX + key + "shared")
            tasks.start_soon(pump, gated(api.generate(), permits), sink)
            send_permit.send_nowait(None)
            await eventually(lambda: sink.entries == 1)
            browsers = [Browser(http, f"/previews/{key}shared") for _ in range(12)]
            for browser in browsers:
                tasks.start_soon(browser.run)
            await eventually(lambda: relay.connections == 12)
            for _ in range(3):
                send_permit.send_nowait(None)
            await eventually(lambda: all(b.done for b in browsers))
    await api.aclose()
    assert all(b.names == NAMES for b in browsers)
    assert len({bytes(b.raw) for b in browsers}) == 1
    # Reads are shared: far fewer than one per browser and entry (12 * 5).
    assert relay.reads <= 12


async def test_an_error_entry_ends_the_browsers_stream_with_its_message(
    redis: Redis,
    redis_server: RedisServer,
    emulator: EmulatorServer,
    anyio_backend: str,
    key: str,
) -> None:
    api = api_of(emulator)
    async with api.generate() as stream:
        first = await anext(stream)
    await api.aclose()

    async def failing() -> AsyncIterator[StreamItem]:
        yield first
        raise ttstream.StreamError("the model refused the prompt", code="moderation_blocked")

    with pytest.raises(ttstream.StreamError):
        await pump(failing(), RedisStreamSink(redis, PREFIX + key + "refused"))
    async with workers(redis_server, anyio_backend, count=1) as [(_, http)]:
        browser = await Browser(http, f"/previews/{key}refused").run()
    assert browser.names == ["partial_image", "error"]
    assert browser.data(1)["type"] == "error"
    assert "the model refused the prompt" in browser.data(1)["message"]


async def test_a_missing_key_waits_a_bounded_time_then_404(
    redis: Redis, redis_server: RedisServer, anyio_backend: str, key: str
) -> None:
    async with workers(redis_server, anyio_backend, count=1, wait=0.3) as [(_, http)]:
        with anyio.fail_after(5):
            started = anyio.current_time()
            missing = await http.get("/previews/nothing-here")
            waited = anyio.current_time() - started
        assert missing.status_code == 404
        assert waited >= 0.25
        assert (await http.get("/previews/bad%20key")).status_code == 404
        assert (await http.post("/previews/x")).status_code == 405

        # A key written while the browser waits is served.
        browser = Browser(http, f"/previews/{key}soon")
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(browser.run)
            await anyio.sleep(0.05)
            sink = RedisStreamSink(redis, PREFIX + key + "soon")
            await sink.send(NOTICE)
            await sink.aclose()
    assert browser.names == ["reconnecting", "error"]


async def test_silence_is_broken_by_keepalive_comments(
    redis: Redis, redis_server: RedisServer, anyio_backend: str, key: str
) -> None:
    sink = RedisStreamSink(redis, PREFIX + key + "quiet")
    await sink.send(NOTICE)
    async with (
        workers(redis_server, anyio_backend, count=1, keepalive=0.05, block=0.02) as [(_, http)],
        anyio.create_task_group() as tasks,
    ):
        browser = Browser(http, f"/previews/{key}quiet")
        tasks.start_soon(browser.run)
        await eventually(lambda: browser.raw.count(b":\n\n") >= 2)
        await sink.aclose()
    assert browser.names == ["reconnecting", "error"]


async def test_a_stream_without_new_entries_is_given_up_after_idle_timeout(
    redis: Redis, redis_server: RedisServer, anyio_backend: str, key: str
) -> None:
    await RedisStreamSink(redis, PREFIX + key + "stuck").send(NOTICE)
    settings = {"idle_timeout": 0.2, "block": 0.05}
    async with workers(redis_server, anyio_backend, count=1, **settings) as [(_, http)]:
        with anyio.fail_after(5):
            browser = await Browser(http, f"/previews/{key}stuck").run()
    assert browser.names == ["reconnecting", "error"]
    assert "no new entry for 0.2 s" in browser.data(1)["message"]
    assert browser.events[1].id == browser.events[0].id  # the last id sent, again


@pytest.mark.filterwarnings(COREDIS_LEAK)
async def test_redis_going_away_ends_the_browser_cleanly_and_fails_the_sink(
    own_redis_server: RedisServer, emulator: EmulatorServer, anyio_backend: str, key: str
) -> None:
    api = api_of(emulator)
    send_permit, permits = anyio.create_memory_object_stream[None](math.inf)
    failures: list[BaseException] = []

    async def feed(sink: RedisStreamSink) -> None:
        try:
            await pump(gated(api.generate(), permits), sink)
        except SinkError as exc:
            failures.append(exc)

    async with (
        client_of(own_redis_server) as writer,
        workers(own_redis_server, anyio_backend, count=1, block=0.1) as [(relay, http)],
        anyio.create_task_group() as tasks,
    ):
        with send_permit, permits:
            sink = RedisStreamSink(writer, PREFIX + key + "gone", timeout=2)
            tasks.start_soon(feed, sink)
            send_permit.send_nowait(None)
            await eventually(lambda: sink.entries == 1)
            browser = Browser(http, f"/previews/{key}gone")
            tasks.start_soon(browser.run)
            await eventually(lambda: len(browser.events) == 1)
            own_redis_server.kill()
            for _ in range(3):
                send_permit.send_nowait(None)
            with anyio.fail_after(10):
                await eventually(lambda: browser.done and bool(failures))
            again = await http.get(f"/previews/{key}gone")
    await api.aclose()
    assert browser.names == ["partial_image", "error"]
    assert "failed" in browser.data(1)["message"]
    assert browser.response is not None
    assert browser.response.status_code == 200
    assert again.status_code == 503
    assert relay.connections == 0
    assert isinstance(failures[0], SinkError)


def test_settings_are_checked() -> None:
    for name, value in [
        ("window", 0),
        ("retry", -1),
        ("keepalive", 0),
        ("wait", -1),
        ("block", 0),
        ("idle_timeout", 0),
        ("timeout", 0),
    ]:
        with pytest.raises(ValueError, match=name):
            RedisRelay(object(), **{name: value})  # type: ignore[arg-type]
