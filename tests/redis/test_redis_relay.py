"""RedisRelay over real loopback HTTP with a real redis-server, on asyncio and trio.

Two relays stand for two workers: each has its own coredis client and its own Hypercorn
server on its own port, and they share one Redis; the generation is written by a
RedisStreamSink fed from the emulator. Browsers are httpx clients decoding with
SSEDecoder (``tests.support.relay_viewers.Browser``).
"""

from __future__ import annotations

import base64
import gc
import json
import math
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
import attrs
import coredis
import httpx2
import pytest

import ttstream
from tests.support.redis_server import (
    COREDIS_LEAK,
    MISSING,
    NAMES,
    REDIS_SERVER,
    RedisServer,
    api_of,
    client_of,
)
from tests.support.redis_workers import PREFIX, app_of, workers
from tests.support.relay_viewers import Browser, eventually, gated, image_of, serving
from ttstream import StreamItem
from ttstream._browser.viewers import FORBIDDEN
from ttstream.emulator import EmulatorServer
from ttstream.redis import parse_id
from ttstream.sinks import (
    CallbackSink,
    RedisRelay,
    RedisStreamSink,
    SinkError,
    SSERelay,
    pump,
    sign_viewer_token,
)
from ttstream.sse import SSEDecoder

pytestmark = pytest.mark.anyio

NOTICE = ttstream.Reconnecting(
    attempt=1, delay=0.0, last_event_id="", regenerating=True, reason="r"
)
pytest_plugins = ["tests.support.redis_fixtures"]  # redis_server, redis, key, emulator, ...

Redis = coredis.Redis[bytes]


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


class ReadOnly:
    """What a caller may hand a relay that must never write: a coredis client's reading
    commands only (no ``xadd``, ``eval`` or ``pipeline``)."""

    def __init__(self, client: Redis) -> None:
        self.xrange, self.xread, self.xrevrange = client.xrange, client.xread, client.xrevrange
        self.type, self.exists = client.type, client.exists


async def test_a_relay_takes_a_client_that_only_reads_and_a_sink_does_not(
    redis: Redis, emulator: EmulatorServer, anyio_backend: str, key: str
) -> None:
    # check_client asked every client for xadd, which the relay never calls.
    reader = ReadOnly(redis)
    api = api_of(emulator)
    await pump(api.generate(), RedisStreamSink(redis, PREFIX + key))
    await api.aclose()
    relay = RedisRelay(reader, prefix=PREFIX, claims=True)  # type: ignore[arg-type]
    async with (
        serving(app_of(relay), anyio_backend) as url,
        httpx2.AsyncClient(base_url=url) as http,
    ):
        browser = await Browser(http, f"/previews/{key}").run()
    assert browser.names == NAMES
    with pytest.raises(ttstream.ValidationError, match=r"this has no eval, pipeline\)"):
        RedisStreamSink(reader, PREFIX + key)  # type: ignore[arg-type]


@pytest.mark.parametrize("sent", ["99999999999999999999-0", "1-18446744073709551616"])
async def test_a_last_event_id_past_64_bits_gets_the_replay_not_a_redis_failure(
    redis: Redis,
    redis_server: RedisServer,
    emulator: EmulatorServer,
    anyio_backend: str,
    key: str,
    sent: str,
) -> None:
    # Redis refuses such an id (XRANGE: "Invalid stream ID"): the relay took it for
    # Redis failing and answered "come back", forever, to a header the browser resends
    api = api_of(emulator)
    await pump(api.generate(), RedisStreamSink(redis, PREFIX + key + "big"))
    await api.aclose()
    ids = [e.identifier.decode() for e in await redis.xrange(PREFIX + key + "big")]
    async with workers(redis_server, anyio_backend) as [(relay, http), _]:
        bogus = await Browser(http, f"/previews/{key}big", last_event_id=sent).run()
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


async def test_late_browsers_share_the_reads_after_a_resuming_one_opened_the_stream(
    redis: Redis,
    redis_server: RedisServer,
    emulator: EmulatorServer,
    anyio_backend: str,
    key: str,
) -> None:
    # The first browser of a worker resumes after the newest entry (it reconnected from
    # another worker). The browsers that come next, from the start, must share the
    # worker's window as any others: not each read the stream on its own, holding a page
    # of frames encoded for it alone (with hundreds that never read, hundreds of pages).
    items = await emulator_items(emulator)
    sink = RedisStreamSink(redis, PREFIX + key)
    for item in items[:3]:
        await sink.send(item)
    async with (
        workers(redis_server, anyio_backend, count=1) as [(relay, http)],
        anyio.create_task_group() as tasks,
    ):
        resuming = Browser(http, f"/previews/{key}", last_event_id=sink.last_id)
        tasks.start_soon(resuming.run)
        await eventually(lambda: relay.connections == 1)
        browsers = [Browser(http, f"/previews/{key}") for _ in range(12)]
        for browser in browsers:
            tasks.start_soon(browser.run)
        await eventually(lambda: relay.connections == 13)
        for item in items[3:]:
            await sink.send(item)
        await sink.aclose()
        await eventually(lambda: all(b.done for b in [resuming, *browsers]))
    assert resuming.names == NAMES[3:]
    assert all(b.names == NAMES for b in browsers)
    assert relay.reads <= 12  # shared: not one or more per browser


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
        workers(own_redis_server, anyio_backend, count=1, block=0.1, outage=0.3) as [(relay, http)],
        anyio.create_task_group() as tasks,
    ):
        with send_permit, permits:
            sink = RedisStreamSink(writer, PREFIX + key + "gone", timeout=2, outage=0.3)
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
    # Never 503 (it ends an EventSource for good): 200, retry:, an immediate end.
    assert again.status_code == 200
    assert again.content == b"retry: 3000\n\n"
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


async def emulator_items(emulator: EmulatorServer) -> list[StreamItem]:
    api = api_of(emulator)
    try:
        async with api.generate() as stream:
            return [item async for item in stream]
    finally:
        await api.aclose()


async def test_a_last_event_id_of_another_generation_restarts_the_viewer_at_the_new_start(
    redis: Redis, redis_server: RedisServer, emulator: EmulatorServer, anyio_backend: str, key: str
) -> None:
    items = await emulator_items(emulator)
    job = PREFIX + key
    # The generation that replaces the first under the same key got ids around the old
    # ones (another Redis's clock after a failover, a clock stepped back): its preview 0
    # comes before an id the first generation gave a viewer, the rest after it.
    second = RedisStreamSink(redis, job + ":next")
    await second.send(items[0])
    await anyio.sleep(0.01)  # ids are milliseconds: let the clock move
    first = RedisStreamSink(redis, job)
    await first.send(items[0])
    old_id = first.last_id
    await anyio.sleep(0.01)
    for item in items[1:]:
        await second.send(item)
    await second.aclose()
    await redis.delete([job])  # the first generation failed; its stream was deleted
    await redis.rename(job + ":next", job)
    ids = [e.identifier.decode() for e in await redis.xrange(job)]
    assert parse_id(ids[0]) < parse_id(old_id) < parse_id(ids[1])  # type: ignore[operator]
    async with workers(redis_server, anyio_backend, count=1) as [(_, http)]:
        with anyio.fail_after(10):
            back = await Browser(http, f"/previews/{key}", last_event_id=old_id).run()
            resumed = await Browser(http, f"/previews/{key}", last_event_id=ids[1]).run()
    assert back.names == NAMES  # the new generation from its start: no splice
    assert back.ids == ids
    assert resumed.ids == ids[2:]  # an id of this generation still resumes after it


async def test_only_streams_ttstream_wrote_are_served_and_errors_quote_nothing_stored(
    redis: Redis, redis_server: RedisServer, anyio_backend: str, key: str
) -> None:
    foreign = {"type": "partial_image", "operation": "generation", "index": "0"}
    await redis.xadd(PREFIX + key + "foreign", foreign)
    sink = RedisStreamSink(redis, PREFIX + key + "mixed")
    await sink.send(NOTICE)
    secret_text = "private-field-value-0123456789"
    await redis.xadd(PREFIX + key + "mixed", {"type": "error", "message": secret_text})
    await sink.aclose()
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    nested = RedisStreamSink(redis, PREFIX + key + "deep")
    await nested.send(NOTICE)
    marker = (await redis.xrange(PREFIX + key + "deep"))[0].field_values[b"ttstream"]
    await redis.xadd(
        PREFIX + key + "deep",
        {"ttstream": marker, **foreign, "extra": deep},
    )
    async with workers(redis_server, anyio_backend, count=1, wait=0.1) as [(_, http)]:
        with anyio.fail_after(10):
            refused = await http.get(f"/previews/{key}foreign")
            mixed = await Browser(http, f"/previews/{key}mixed").run()
            nested_browser = await Browser(http, f"/previews/{key}deep").run()
    assert refused.status_code == 404
    assert mixed.names == ["reconnecting", "error"]
    assert mixed.data(1)["message"] == "this preview stream holds an entry ttstream did not write"
    assert secret_text.encode() not in mixed.raw
    # Deeply nested JSON: an error event, not an exception out of the application.
    assert nested_browser.response is not None
    assert nested_browser.response.status_code == 200
    assert nested_browser.names == ["reconnecting", "error"]
    assert nested_browser.data(1)["message"] == "an entry of this preview stream could not be read"


async def test_viewers_present_a_token_and_pass_authorize_or_get_a_bare_403(
    redis: Redis, redis_server: RedisServer, anyio_backend: str, key: str
) -> None:
    secret = b"s" * 32
    for job in (key, key + "blocked"):
        sink = RedisStreamSink(redis, PREFIX + job)
        await sink.send(NOTICE)
        await sink.aclose()
    asked: list[str] = []

    async def authorize(scope: Any, job: str) -> bool:
        asked.append(job)
        return not job.endswith("blocked")

    settings = {"token_secret": secret, "authorize": authorize}
    good = sign_viewer_token(key, secret=secret)
    async with workers(redis_server, anyio_backend, count=1, **settings) as [(relay, http)]:
        with anyio.fail_after(10):
            missing = await http.get(f"/previews/{key}")
            forged_token = good[:-1] + ("1" if good.endswith("0") else "0")
            forged = await http.get(f"/previews/{key}", params={"token": forged_token})
            other = await http.get(
                f"/previews/{key}", params={"token": sign_viewer_token("x", secret=secret)}
            )
            blocked_token = sign_viewer_token(key + "blocked", secret=secret)
            blocked = await http.get(f"/previews/{key}blocked", params={"token": blocked_token})
            by_query = await http.get(f"/previews/{key}", params={"token": good})
            by_header = await http.get(
                f"/previews/{key}", headers={"Authorization": f"Bearer {good}"}
            )
    for refused in (missing, forged, other, blocked):
        assert refused.status_code == 403
        assert refused.content == FORBIDDEN
    for allowed in (by_query, by_header):
        assert allowed.status_code == 200
        assert b"event: reconnecting" in allowed.content
    assert asked == [key + "blocked", key, key]  # only viewers with a valid token are asked
    assert relay.connections == 0


async def test_the_default_prefix_is_ttstream_and_an_empty_one_is_refused(redis: Redis) -> None:
    assert RedisRelay(redis).prefix == "ttstream:"
    with pytest.raises(ValueError, match="prefix"):
        RedisRelay(redis, prefix="")


async def test_a_viewer_that_does_not_read_is_dropped_after_send_timeout(
    redis: Redis, redis_server: RedisServer, emulator: EmulatorServer, anyio_backend: str, key: str
) -> None:
    if anyio_backend == "trio":
        # Hypercorn's trio server shields its socket writes from cancellation: there an
        # application cannot end a send (docs/redis.md, "Slow viewers").
        pytest.skip("Hypercorn on trio shields socket writes; no ASGI app can time them out")
    first = (await emulator_items(emulator))[0]
    assert isinstance(first, ttstream.PartialImage)
    sink = RedisStreamSink(redis, PREFIX + key + "big")
    for index in range(24):  # 24 frames of 1.3 MB: far more than the sockets buffer
        picture = base64.b64encode(os.urandom(1 << 20)).decode()
        await sink.send(attrs.evolve(first, index=index, b64_json=picture))
    async with workers(redis_server, anyio_backend, count=1, send_timeout=0.5) as [(relay, http)]:
        port = httpx2.URL(str(http.base_url)).port
        assert port is not None
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            request = f"GET /previews/{key}big HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            await stream.send(request)  # and never reads the answer
            with anyio.fail_after(20):
                await eventually(lambda: relay.connections == 1)
                while relay.dropped == 0:  # noqa: ASYNC110 - the relay's own counter
                    await anyio.sleep(0.05)
            await eventually(lambda: relay.connections == 0)
            assert not relay._tails  # what it held for that viewer is released
    await sink.aclose()


@pytest.mark.filterwarnings(COREDIS_LEAK)
async def test_a_browser_watching_through_a_short_redis_restart_gets_every_event(
    emulator: EmulatorServer, anyio_backend: str, key: str
) -> None:
    if REDIS_SERVER is None:
        pytest.skip(MISSING)
    items = await emulator_items(emulator)
    server = RedisServer(appendonly="yes", appendfsync="always").start()
    try:
        async with (
            client_of(server) as writer,
            workers(server, anyio_backend, count=1, block=0.1, keepalive=0.2) as [(relay, http)],
            anyio.create_task_group() as tasks,
        ):
            sink = RedisStreamSink(writer, PREFIX + key, timeout=1)
            await sink.send(items[0])
            browser = Browser(http, f"/previews/{key}")
            tasks.start_soon(browser.run)
            await eventually(lambda: len(browser.events) == 1)
            server.kill()
            await sink.send(items[1])  # kept by the sink while Redis is away
            await anyio.sleep(2)  # Redis is away for 2 s; the browser gets keepalives
            await anyio.to_thread.run_sync(server.start)
            for item in items[2:]:
                await sink.send(item)
            await sink.aclose()
            with anyio.fail_after(10):
                await eventually(lambda: browser.done)
    finally:
        server.stop()
        gc.collect()
    assert browser.names == NAMES
    assert browser.raw.count(b":\n\n") >= 1  # held by keepalive comments meanwhile
    assert relay.connections == 0


async def asgi_bodies(relay: RedisRelay, path: str) -> list[bytes]:
    """The body parts one viewer of ``path`` receives from ``relay``, in order, each as
    the relay handed it to the server."""
    bodies: list[bytes] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    scope = {"type": "http", "method": "GET", "path": path, "headers": []}
    with anyio.fail_after(10):
        await relay(scope, receive, send)
    return bodies


async def test_large_frames_reach_each_viewer_in_pieces_of_64_kib_as_from_sse_relay(
    redis: Redis, emulator: EmulatorServer, anyio_backend: str, key: str
) -> None:
    # A viewer that stops reading holds what was handed to the server for it: a whole
    # frame (a copy joined for that viewer, megabytes) instead of one 64 KiB piece.
    api = api_of(emulator)
    async with api.generate(size="1024x1024") as stream:
        items = [item async for item in stream]
    await api.aclose()
    sink = RedisStreamSink(redis, PREFIX + key)
    for item in items:
        await sink.send(item)
    await sink.aclose()
    pieces = await asgi_bodies(RedisRelay(redis, prefix=PREFIX), f"/previews/{key}")
    assert max(map(len, pieces)) == 64 * 1024
    assert sum(map(len, pieces)) > 1024 * 1024  # the final image came, whole, in pieces


async def test_a_hostile_terminal_entry_reaches_viewers_redacted_and_shortened(
    redis: Redis, anyio_backend: str, key: str
) -> None:
    # An entry ttstream's sink did not write (another service, an older version, a
    # hostile writer) carries the generation's marker and an error message of its own.
    secret = "hostile-entry-key-0123456789"
    client = ttstream.AsyncClient(secret, base_url="http://127.0.0.1:9")  # registers it
    sink = RedisStreamSink(redis, PREFIX + key)
    await sink.send(NOTICE)
    marker = (await redis.xrange(PREFIX + key))[0].field_values[b"ttstream"]
    message = f"failed with {secret} " + "x" * 100_000
    await redis.xadd(PREFIX + key, {"ttstream": marker, "type": "error", "message": message})
    body = b"".join(await asgi_bodies(RedisRelay(redis, prefix=PREFIX), f"/previews/{key}"))
    await client.aclose()
    events = SSEDecoder().feed(body)
    assert [event.event for event in events] == ["reconnecting", "error"]
    told = json.loads(events[1].data)["message"]
    assert secret.encode() not in body
    assert told.startswith("failed with [REDACTED] x")
    assert len(told) == 500  # public_message's bound, as the sink stores them


async def test_a_key_a_server_echoed_into_an_image_reaches_no_redis_viewer(
    redis: Redis, anyio_backend: str, key: str
) -> None:
    secret = "0123456789abcdef0123456789abcdef"  # an Azure key's shape: valid base64
    client = ttstream.AsyncClient(secret, base_url="http://127.0.0.1:9")  # registers it
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(49)).decode()
    sink = RedisStreamSink(redis, PREFIX + key)
    await sink.send(ttstream.PartialImage(b64_json=png + secret, index=0, operation="edit"))
    await sink.send(ttstream.Completed(b64_json=png, operation="edit"))
    await sink.aclose()
    body = b"".join(await asgi_bodies(RedisRelay(redis, prefix=PREFIX), f"/previews/{key}"))
    await client.aclose()
    assert secret.encode() not in body
    events = SSEDecoder().feed(body)
    assert [e.event for e in events] == ["partial_image", "completed", "end"]
    assert json.loads(events[0].data)["image"] is None
