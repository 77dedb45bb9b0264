"""RedisStreamSink against a real redis-server, on asyncio and trio: the entries it
writes, its terminal entry, MAXLEN and EXPIRE, and Redis going away under pump."""

from __future__ import annotations

import base64
import contextlib
import gc
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs
import coredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ttstream
from tests.support.redis_server import (
    COREDIS_LEAK,
    MISSING,
    REDIS_SERVER,
    RedisServer,
    api_of,
    client_of,
)
from ttstream import Completed, PartialImage, Reconnecting, StreamItem, ValidationError
from ttstream._browser.frames import frame_of
from ttstream.emulator import EmulatorServer
from ttstream.redis import RedisRelay, Terminal, decode_entry, encode_item
from ttstream.sinks import (
    CallbackSink,
    MalformedEntryError,
    RedisStreamError,
    RedisStreamSink,
    SinkError,
    pump,
)

pytestmark = pytest.mark.anyio
pytest_plugins = ["tests.support.redis_fixtures"]  # redis_server, redis, key, emulator, ...

Redis = coredis.Redis[bytes]
NOTICE = Reconnecting(attempt=1, delay=0.0, last_event_id="", regenerating=True, reason="r")


async def generation(emulator: EmulatorServer, **params: Any) -> list[StreamItem]:
    api = api_of(emulator)
    try:
        async with api.generate(**params) as stream:
            return [item async for item in stream]
    finally:
        await api.aclose()


async def replay(items: list[StreamItem], error: Exception | None = None) -> AsyncIterator[Any]:
    for item in items:
        await anyio.lowlevel.checkpoint()
        yield item
    if error is not None:
        raise error


def text(entry: Any, name: str) -> str:
    value: bytes = entry.field_values[name.encode()]
    return value.decode()


async def test_every_item_becomes_an_entry_with_the_image_as_bytes_then_end(
    redis: Redis, key: str, emulator: EmulatorServer
) -> None:
    items = await generation(emulator)
    sink = RedisStreamSink(redis, key)
    [final] = await pump(replay(items), sink)

    entries = await redis.xrange(key)
    assert [text(e, "type") for e in entries] == [
        "partial_image",
        "partial_image",
        "partial_image",
        "completed",
        "end",
    ]
    assert sink.entries == 5
    assert sink.last_id == entries[-1].identifier.decode()
    for entry, item in zip(entries, items, strict=False):
        assert isinstance(item, PartialImage | Completed)
        assert entry.field_values[b"image"] == item.image_bytes
        assert entry.field_values[b"image"].startswith(b"\x89PNG")
        assert text(entry, "size") == "64x48"
        assert text(entry, "operation") == "generation"
        assert int(text(entry, "created_at")) == item.created_at
        # What a reader rebuilds is the very item that was written.
        assert decode_entry(entry.identifier.decode(), entry.field_values) == item
    assert [text(e, "index") for e in entries[:3]] == ["0", "1", "2"]
    assert b"usage" not in entries[0].field_values
    assert final.usage is not None
    assert json.loads(text(entries[3], "usage"))["total_tokens"] == final.usage.total_tokens
    assert text(entries[4], "images") == "1"
    assert decode_entry("1-0", entries[4].field_values) == Terminal(outcome="end", images=1)


@pytest.mark.parametrize("policy", ["block", "latest"])
async def test_under_pump_with_both_policies_beside_a_slow_sink(
    redis: Redis, key: str, emulator: EmulatorServer, policy: Any
) -> None:
    items = await generation(emulator, n=2)
    seen: list[StreamItem] = []

    async def slow(item: StreamItem) -> None:
        await anyio.sleep(0.01)
        seen.append(item)

    finals = await pump(
        replay(items), RedisStreamSink(redis, key), CallbackSink(slow), policy=policy
    )
    assert len(finals) == 2
    entries = await redis.xrange(key)
    written = [decode_entry(e.identifier.decode(), e.field_values) for e in entries]
    assert written[-1] == Terminal(outcome="end", images=2)
    if policy == "block":
        assert written[:-1] == items
    else:  # in order, maybe without previews that a newer one superseded; every final
        assert written[:-1] == [item for item in items if item in written]
        assert [i for i in written if isinstance(i, Completed)] == finals
    assert [i for i in seen if isinstance(i, Completed)] == finals


async def test_a_failed_stream_ends_with_an_error_entry_shortened_and_without_secrets(
    redis: Redis, key: str, emulator: EmulatorServer
) -> None:
    first = (await generation(emulator))[0]
    secret = "sk-proj-abcdefghijklmnop0123456789"
    error = ttstream.StreamError(f"refused; Authorization: Bearer {secret}; " + "x" * 2000)
    with pytest.raises(ttstream.StreamError):
        await pump(replay([first], error), RedisStreamSink(redis, key))
    entries = await redis.xrange(key)
    assert [text(e, "type") for e in entries] == ["partial_image", "error"]
    assert text(entries[1], "error") == "StreamError"
    message = text(entries[1], "message")
    assert message.startswith("error event: refused; Authorization: Bearer [REDACTED];")
    assert secret not in message
    assert len(message) == 500


async def test_a_sink_error_is_stored_as_the_relays_fixed_sentence_not_its_text(
    redis: Redis, key: str
) -> None:
    # An application that hands pump's SinkError on (``await sink.fail(exc)``): its text
    # names the failed sinks' Redis keys and the paths of their errors. SSERelay and the
    # websocket protocol tell viewers a fixed sentence instead; the Redis path must too.
    broken = RedisStreamSink(redis, "ttstream:private:tenant-42")
    error = SinkError([(broken, OSError("/srv/app/private/disk-full"))])
    sink = RedisStreamSink(redis, key)
    await sink.send(NOTICE)
    await sink.fail(error)
    stored = text((await redis.xrange(key))[-1], "message")
    assert stored == "the server could not deliver this generation"


async def test_a_stream_without_final_image_ends_with_an_error_entry(
    redis: Redis, key: str, emulator: EmulatorServer
) -> None:
    first = (await generation(emulator))[0]
    assert await pump(replay([first]), RedisStreamSink(redis, key)) == []
    [entry] = (await redis.xrange(key))[-1:]
    assert decode_entry("1-0", entry.field_values) == Terminal(
        outcome="error",
        error="TTStreamError",
        message="the generation ended before its final image",
    )


async def test_reconnecting_notices_round_trip_and_an_ended_sink_takes_no_more(
    redis: Redis, key: str
) -> None:
    notice = Reconnecting(
        attempt=2, delay=0.25, last_event_id="7", regenerating=False, reason="reset by peer"
    )
    sink = RedisStreamSink(redis, key)
    await sink.send(notice)
    await sink.fail("gave up")
    await sink.aclose()  # already ended: writes nothing more
    entries = await redis.xrange(key)
    assert len(entries) == 2
    assert decode_entry("1-0", entries[0].field_values) == notice
    assert decode_entry("1-0", entries[1].field_values) == Terminal(
        outcome="error", message="gave up"
    )
    with pytest.raises(RuntimeError, match="terminal entry"):
        await sink.send(notice)
    assert "ended" in repr(sink)


@pytest.mark.parametrize("approximate", [True, False])
async def test_maxlen_bounds_what_redis_keeps(redis: Redis, key: str, approximate: bool) -> None:
    notice = Reconnecting(attempt=1, delay=0.0, last_event_id="", regenerating=True, reason="r")
    sink = RedisStreamSink(redis, key, maxlen=8, approximate=approximate)
    for _ in range(60):
        await sink.send(notice)
    length = await redis.xlen(key)
    if approximate:  # whole nodes of 4 entries (the test server's stream-node-max-entries)
        assert 8 <= length < 8 + 4
    else:
        assert length == 8
    newest = await redis.xrevrange(key, count=1)
    assert newest[0].identifier.decode() == sink.last_id  # trimming drops the oldest


async def test_every_entry_renews_the_expiry_and_the_stream_expires(redis: Redis, key: str) -> None:
    notice = Reconnecting(attempt=1, delay=0.0, last_event_id="", regenerating=True, reason="r")
    long = RedisStreamSink(redis, key, ttl=60)
    await long.send(notice)
    assert 59_000 < await redis.pttl(key) <= 60_000
    short = RedisStreamSink(redis, key, ttl=0.2)
    await short.send(notice)
    assert 0 < await redis.pttl(key) <= 200
    with anyio.fail_after(5):
        while await redis.exists([key]):  # noqa: ASYNC110 - Redis expires it, nothing signals
            await anyio.sleep(0.05)


@pytest.mark.filterwarnings(COREDIS_LEAK)
async def test_redis_going_away_mid_stream_detaches_the_sink_with_a_sink_error(
    own_redis_server: RedisServer, key: str, emulator: EmulatorServer
) -> None:
    items = await generation(emulator)
    seen: list[StreamItem] = []

    async def killing(item: StreamItem) -> None:
        seen.append(item)
        if len(seen) == 1:
            own_redis_server.kill()

    async with client_of(own_redis_server) as client:
        sink = RedisStreamSink(client, key, timeout=2, outage=1)
        with anyio.fail_after(10), pytest.raises(SinkError) as caught:
            await pump(replay(items), CallbackSink(killing), sink)
    # The other sink got every item; the Redis sink was detached and named.
    assert seen == items
    failed = [s for s, _ in caught.value.failures]
    assert failed
    assert all(s is sink for s in failed)
    errors = [e for _, e in caught.value.failures]
    assert all(isinstance(e, RedisStreamError) for e in errors)
    assert "XADD" in str(errors[0])
    assert key in str(errors[0])


async def test_settings_are_checked(redis: Redis) -> None:
    with pytest.raises(ValueError, match="maxlen"):
        RedisStreamSink(redis, "k", maxlen=0)
    with pytest.raises(ValueError, match="ttl"):
        RedisStreamSink(redis, "k", ttl=0)
    with pytest.raises(ValueError, match="timeout"):
        RedisStreamSink(redis, "k", timeout=-1)


async def test_a_client_that_decodes_responses_is_refused(redis_server: RedisServer) -> None:
    async with client_of(redis_server, decode_responses=True) as client:
        with pytest.raises(ValueError, match="decode_responses=False"):
            RedisStreamSink(client, "k")  # type: ignore[arg-type]


@pytest.mark.parametrize("wrong", ["redis://127.0.0.1:6379", None])
def test_what_is_no_redis_client_is_refused_when_the_sink_is_made(wrong: object) -> None:
    # A URL string was taken: pump then ran the whole (billed) generation and raised
    # SinkError naming an AttributeError ('str' object has no attribute 'pipeline').
    with pytest.raises(ValidationError, match="redis must be a coredis client") as caught:
        RedisStreamSink(wrong, "k")  # type: ignore[arg-type]
    assert caught.value.param == "redis"
    with pytest.raises(ValidationError, match="redis must be a coredis client"):
        RedisRelay(wrong)  # type: ignore[arg-type]


def test_a_redis_url_given_as_the_client_is_not_echoed() -> None:
    # The URL's password was in the ValidationError's message and value.
    url = "redis://default:s3cret-passw0rd@cache.example.com:6379/0"
    for make in (lambda: RedisStreamSink(url, "k"), lambda: RedisRelay(url)):  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="redis must be a coredis client") as caught:
            make()
        assert "s3cret" not in str(caught.value)
        assert "s3cret" not in repr(caught.value.value)
        assert "<str of 56 chars, not shown>" in str(caught.value)


def test_the_sink_is_a_sink_and_items_encode_without_redis() -> None:
    notice = Reconnecting(attempt=1, delay=1.5, last_event_id="", regenerating=True, reason="x")
    fields = encode_item(notice)
    assert fields["type"] == "reconnecting"
    assert decode_entry("1-0", {k.encode(): v.encode() for k, v in fields.items()}) == notice  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "'type' is required"),
        ({b"type": b"frobnicate"}, "not a ttstream entry type"),
        ({b"type": b"partial_image", b"operation": b"generation"}, "'index' is required"),
        ({b"type": b"partial_image", b"operation": b"g", b"index": b"x"}, "decimal integer"),
        ({b"type": b"completed", b"operation": b"g", b"usage": b"[1]"}, "JSON object"),
        ({b"type": b"completed", b"operation": b"g", b"usage": b'{"a":1}'}, "Usage's fields"),
        ({b"type": b"reconnecting", b"attempt": b"1", b"delay": b"soon"}, "not a number"),
        ({b"type": b"end", b"images": b"\xff"}, "not UTF-8"),
    ],
)
def test_foreign_entries_are_named_malformed(fields: dict[bytes, bytes], message: str) -> None:
    with pytest.raises(MalformedEntryError, match=message) as caught:
        decode_entry("5-1", fields)
    assert "entry 5-1" in str(caught.value)


@given(
    st.dictionaries(
        st.sampled_from([b"type", b"operation", b"index", b"usage", b"extra", b"image", b"x"]),
        st.one_of(
            st.sampled_from([b"partial_image", b"completed", b"end", b"error", b"reconnecting"]),
            st.binary(max_size=20),
        ),
    )
)
def test_decoding_any_entry_gives_an_item_or_a_malformed_entry_error(
    fields: dict[bytes, bytes],
) -> None:
    with contextlib.suppress(MalformedEntryError):
        decode_entry("1-0", fields)


async def test_every_text_stored_goes_through_the_one_redaction(
    redis: Redis, key: str, emulator: EmulatorServer
) -> None:
    secret = "tt-echoed-key-0123456789abcdef"
    client = ttstream.AsyncClient(secret)  # registers its key for as long as it exists
    first, *_, final = await generation(emulator)
    assert isinstance(final, Completed)
    echoed = {"echo": f"key={secret}", "nested": {"authorization": f"Bearer {secret}"}}
    items: list[StreamItem] = [
        attrs.evolve(first, extra=echoed),
        Reconnecting(
            attempt=1,
            delay=0.5,
            last_event_id=f"evt-{secret}",
            regenerating=False,
            reason=f"peer said: {secret}",
        ),
        attrs.evolve(final, revised_prompt=f"a kite, {secret}", extra=echoed),
    ]
    await pump(replay(items), RedisStreamSink(redis, key))
    entries = await redis.xrange(key)
    stored = b"".join(
        name + value for entry in entries for name, value in entry.field_values.items()
    )
    await client.aclose()
    assert [text(e, "type") for e in entries] == [
        "partial_image",
        "reconnecting",
        "completed",
        "end",
    ]
    assert secret.encode() not in stored
    assert b"[REDACTED]" in stored
    for entry in entries[:3]:  # still entries a reader decodes
        decode_entry(entry.identifier.decode(), entry.field_values)


@pytest.mark.filterwarnings(COREDIS_LEAK)
async def test_a_short_redis_restart_is_ridden_out_and_every_image_reaches_redis(
    key: str, emulator: EmulatorServer
) -> None:
    items = await generation(emulator)
    if REDIS_SERVER is None:
        pytest.skip(MISSING)
    # Redis persists what it took (as a production Redis would), so the entries written
    # before the restart are there after it.
    server = RedisServer(appendonly="yes", appendfsync="always").start()
    restarted = anyio.Event()

    async def restart() -> None:
        server.kill()
        await anyio.sleep(2)  # Redis is away for 2 s
        await anyio.to_thread.run_sync(server.start)
        restarted.set()

    async def slowly(items: list[StreamItem]) -> AsyncIterator[StreamItem]:
        for n, item in enumerate(items):
            if n == 1:
                tasks.start_soon(restart)
            if n:
                await anyio.sleep(0.8)  # the previews keep coming while Redis is away
            yield item

    try:
        async with client_of(server) as client:
            sink = RedisStreamSink(client, key, timeout=1)
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tasks:
                    [final] = await pump(slowly(items), sink)
                    await restarted.wait()
                entries = await client.xrange(key)
    finally:
        server.stop()
        gc.collect()
    assert isinstance(final, Completed)
    assert [text(e, "type") for e in entries] == [
        "partial_image",
        "partial_image",
        "partial_image",
        "completed",
        "end",
    ]
    assert entries[3].field_values[b"image"] == final.image_bytes
    assert sink.entries == 5


@pytest.mark.filterwarnings(COREDIS_LEAK)
async def test_an_outage_longer_than_outage_fails_the_sink_and_says_so(
    own_redis_server: RedisServer, key: str
) -> None:
    server = own_redis_server
    async with client_of(server) as client:
        sink = RedisStreamSink(client, key, timeout=1, outage=0.5)
        await sink.send(NOTICE)
        server.kill()
        await sink.send(NOTICE)  # kept: Redis may come back
        assert "buffered=1" in repr(sink)
        with anyio.fail_after(10), pytest.raises(RedisStreamError, match="entries not written"):
            await sink.aclose()


@pytest.mark.filterwarnings(COREDIS_LEAK)
async def test_a_buffer_over_max_buffer_fails_the_sink(
    own_redis_server: RedisServer, key: str
) -> None:
    server = own_redis_server
    async with client_of(server) as client:
        sink = RedisStreamSink(client, key, timeout=1, max_buffer=150)
        server.kill()
        with anyio.fail_after(10):
            for _ in range(2):
                await sink.send(NOTICE)  # kept: about 65 bytes each
            with pytest.raises(RedisStreamError, match="max_buffer=150"):
                await sink.send(NOTICE)


async def test_a_lone_surrogate_a_server_sent_is_stored_and_relayed_as_sse_relay_sends_it(
    redis: Redis, key: str
) -> None:
    # JSON's "\ud800" decodes to a lone surrogate, which UTF-8 cannot encode: a hostile
    # server puts one in any text field. SSERelay sends it escaped (strict_json); the
    # Redis path must neither fail nor lose the entry.
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    preview = PartialImage(b64_json=png, index=0, operation="generation", quality="hi\ud800")
    notice = Reconnecting(
        attempt=1, delay=0.5, last_event_id="\udfff", regenerating=False, reason="r\ud800"
    )
    sink = RedisStreamSink(redis, key)
    await sink.send(preview)
    await sink.send(notice)
    entries = await redis.xrange(key)
    assert [text(e, "type") for e in entries] == ["partial_image", "reconnecting"]
    for entry, item in zip(entries, [preview, notice], strict=True):
        back = decode_entry(entry.identifier.decode(), entry.field_values)
        assert frame_of("1", back).data == frame_of("1", item).data
