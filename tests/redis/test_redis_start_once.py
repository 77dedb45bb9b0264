"""ttstream.relay.start_once with a real redis-server, on asyncio and trio: one
generation per job across workers (the emulator's own request counter says how many
started), the claim's renewal, hand-over and expiry, and what a dead worker leaves."""

from __future__ import annotations

import binascii
import concurrent.futures
import gc
import math
import sys
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable

import anyio
import coredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.redis_server import (
    COREDIS_LEAK,
    NAMES,
    Api,
    RedisClusterServers,
    RedisServer,
    api_of,
    client_of,
    cluster_client_of,
)
from tests.support.redis_workers import PREFIX, workers
from tests.support.relay_viewers import Browser, eventually, gated
from ttstream import ValidationError
from ttstream.emulator import EmulatorServer
from ttstream.redis import Terminal, decode_entry
from ttstream.relay import claim_key, start_once
from ttstream.sinks import ClaimLostError, RedisStreamError, RedisStreamSink, pump

pytestmark = pytest.mark.anyio
pytest_plugins = ["tests.support.redis_fixtures"]  # redis_server, redis, key, emulator, ...

Redis = coredis.Redis[bytes]


def generation(api: Api, redis: Redis, key: str) -> Callable[[], Awaitable[object]]:
    return lambda: pump(api.generate(), RedisStreamSink(redis, key))


async def types_of(redis: Redis, key: str) -> list[str]:
    return [e.field_values[b"type"].decode() for e in await redis.xrange(key)]


async def test_two_workers_asking_at_the_same_moment_start_one_generation(
    redis_server: RedisServer, emulator: EmulatorServer, anyio_backend: str, key: str
) -> None:
    job = PREFIX + key
    first = api_of(emulator)
    second = Api(emulator, first.spec)  # the same counter: the emulator counts both
    go = anyio.Event()
    started: list[bool] = []

    async def worker(api: Api, redis: Redis) -> None:
        await go.wait()
        started.append(await start_once(redis, job, generation(api, redis, job)))

    async with (
        client_of(redis_server) as one,
        client_of(redis_server) as two,
        workers(redis_server, anyio_backend, count=1, claims=True) as [(_, http)],
    ):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(worker, first, one)
            tasks.start_soon(worker, second, two)
            go.set()
        watched = await Browser(http, f"/previews/{key}").run()
        again = await start_once(two, job, generation(second, two, job))
        claim = await one.get(claim_key(job))
        claim_ttl = await one.pttl(claim_key(job))
        written = await types_of(one, job)
    await first.aclose()
    await second.aclose()
    assert sorted(started) == [False, True]
    assert again is False  # finished: a retry attaches to the finished stream
    assert first.generations == 1
    assert written == NAMES
    assert watched.names == NAMES
    assert claim is not None
    assert claim.startswith(b"done:")
    assert 3_590_000 < claim_ttl <= 3_600_000


async def test_the_claim_is_renewed_while_the_generation_runs(
    redis: Redis, emulator: EmulatorServer, key: str
) -> None:
    api = api_of(emulator)
    send_permit, permits = anyio.create_memory_object_stream[None](math.inf)
    results: list[bool] = []

    async def run() -> None:
        await pump(gated(api.generate(), permits), RedisStreamSink(redis, key))

    with send_permit, permits:
        async with anyio.create_task_group() as tasks:
            # A claim of 0.5 s, renewed every 0.17 s: a loaded 2-core CI machine may delay a
            # renewal by tens of milliseconds, never by a third of a second.
            tasks.start_soon(lambda: _append(results, start_once(redis, key, run, claim_ttl=0.5)))
            await eventually(lambda: api.generations == 1)
            for _ in range(8):  # 1.6 s: more than three claim_ttl, for other workers
                assert not await start_once(redis, key, run, claim_ttl=0.5)
                await anyio.sleep(0.2)
            for _ in range(4):
                send_permit.send_nowait(None)
    await api.aclose()
    assert results == [True]
    assert api.generations == 1
    assert await types_of(redis, key) == NAMES


async def _append(results: list[bool], started: Awaitable[bool]) -> None:
    results.append(await started)


DOOMED_WORKER = textwrap.dedent(
    """
    import sys, anyio, coredis, httpx2, ttstream
    from ttstream.relay import start_once
    from ttstream.sinks import RedisStreamSink, pump

    socket_path, base_url, spec, key = sys.argv[1:5]

    async def main():
        http = httpx2.AsyncClient(headers={"X-Emulator-Fault": spec})
        client = ttstream.AsyncClient("k", base_url=base_url, http_client=http)
        async with coredis.Redis(unix_socket_path=socket_path) as redis:
            stream = client.generate("a kite", model="gpt-image-2", size="64x48", partial_images=3)
            await start_once(
                redis, key, lambda: pump(stream, RedisStreamSink(redis, key)), claim_ttl=0.5
            )

    anyio.run(main)
    """
)


async def test_a_worker_killed_mid_generation_leaves_no_stream_waiting_for_ever(
    redis: Redis, redis_server: RedisServer, emulator: EmulatorServer, anyio_backend: str, key: str
) -> None:
    job = PREFIX + key
    stalled = f"stall=30;key={uuid.uuid4().hex}"  # one preview, then the worker stalls
    command = [sys.executable, "-c", DOOMED_WORKER, redis_server.unix_socket]
    async with await anyio.open_process([*command, emulator.base_url, stalled, job]) as worker:
        try:
            with anyio.fail_after(10):
                while await redis.xlen(job) < 1:  # noqa: ASYNC110 - another process writes it
                    await anyio.sleep(0.02)
        finally:
            worker.kill()  # SIGKILL: no finally, no terminal entry, no hand-over
            await worker.wait()
    assert await redis.get(claim_key(job)) is not None  # claimed, no longer renewed

    api = api_of(emulator)
    async with workers(redis_server, anyio_backend, count=1, claims=True, block=0.05) as [
        (_, http)
    ]:
        with anyio.fail_after(5):
            orphaned = await Browser(http, f"/previews/{key}").run()
        assert orphaned.names == ["partial_image", "error"]
        assert "stopped before its end" in orphaned.data(1)["message"]
        with anyio.fail_after(5):
            assert await start_once(redis, job, generation(api, redis, job))
        fresh = await Browser(http, f"/previews/{key}").run()
    await api.aclose()
    assert emulator.stream_stats.requests(stalled) == 1
    assert api.generations == 1
    # The orphaned stream was ended and deleted: the new generation has a stream of its own.
    assert await types_of(redis, job) == NAMES
    assert fresh.names == NAMES


async def test_a_start_that_raises_leaves_a_terminal_error_entry(redis: Redis, key: str) -> None:
    async def start() -> None:
        raise ValueError("no budget left for key sk-abcdefghijklmnop")

    with pytest.raises(ValueError, match="no budget"):
        await start_once(redis, key, start)
    [entry] = await redis.xrange(key)
    terminal = decode_entry("1-0", entry.field_values)
    assert terminal == Terminal(
        outcome="error", error="ValueError", message="no budget left for key [REDACTED]"
    )
    claim = await redis.get(claim_key(key))
    assert claim is not None
    assert claim.startswith(b"done:")


async def test_a_lost_claim_cancels_the_generation(
    redis: Redis, emulator: EmulatorServer, key: str
) -> None:
    api = api_of(emulator)
    send_permit, permits = anyio.create_memory_object_stream[None](math.inf)

    async def run() -> None:
        await pump(gated(api.generate(), permits), RedisStreamSink(redis, key))

    async def steal() -> None:
        await eventually(lambda: api.generations == 1)
        await redis.set(claim_key(key), "running:someone-else", px=10_000)

    with send_permit, permits, anyio.fail_after(5):
        send_permit.send_nowait(None)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(steal)
            with pytest.raises(RedisStreamError, match="was lost"):
                await start_once(redis, key, run, claim_ttl=0.15)
    await api.aclose()
    # Fenced: once the claim is someone else's, not one more entry, not even the
    # terminal one (the stream belongs to the thief); the thief keeps its claim.
    assert await types_of(redis, key) in ([], ["partial_image"])
    assert await redis.get(claim_key(key)) == b"running:someone-else"


async def test_a_start_that_is_no_function_is_refused_before_the_claim(
    redis: Redis, key: str
) -> None:
    # A bare TypeError from inside, after the claim was taken: the job was recorded as
    # failed under a claim of its own.
    with pytest.raises(ValidationError, match="start must be a function") as caught:
        await start_once(redis, key, "pump")  # type: ignore[arg-type]
    assert caught.value.param == "start"
    assert await redis.exists([claim_key(key), key]) == 0


async def test_settings_are_checked(redis: Redis) -> None:
    async def start() -> None:
        pass

    for name in ("claim_ttl", "ttl", "command_timeout"):
        with pytest.raises(ValueError, match=name):
            await start_once(redis, "k", start, **{name: 0})  # type: ignore[arg-type]


async def _stream_length(redis: Redis, key: str) -> int:
    return int(await redis.xlen(key))


async def test_a_stalled_worker_whose_claim_was_taken_over_writes_nothing_more(
    redis: Redis, redis_server: RedisServer, emulator: EmulatorServer, anyio_backend: str, key: str
) -> None:
    stalled_api = api_of(emulator)
    send_permit, permits = anyio.create_memory_object_stream[None](math.inf)
    outcome: list[BaseException] = []

    async def stalled() -> None:
        run = lambda: pump(gated(stalled_api.generate(), permits), RedisStreamSink(redis, key))  # noqa: E731
        try:
            await start_once(redis, key, run, claim_ttl=0.3)
        except Exception as exc:
            outcome.append(exc)

    def take_over() -> bool:
        """Another worker, in a thread with its own event loop, while ours is stalled."""
        time.sleep(0.6)  # twice the claim's TTL: the stalled worker's claim expires

        async def worker() -> bool:
            api = api_of(emulator)
            try:
                async with client_of(redis_server) as other:
                    return await start_once(other, key, generation(api, other, key))
            finally:
                await api.aclose()

        return anyio.run(worker, backend=anyio_backend)

    with send_permit, permits, anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(stalled)
            send_permit.send_nowait(None)
            while await _stream_length(redis, key) < 1:  # noqa: ASYNC110 - the worker writes
                await anyio.sleep(0.01)
            # The event loop stalls (a blocking call), longer than the claim's TTL; in
            # the meantime another worker takes the job over and runs it to its end.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                taken = pool.submit(take_over).result()  # blocks this event loop
            for _ in range(3):
                send_permit.send_nowait(None)
    await stalled_api.aclose()
    assert taken is True
    assert len(outcome) == 1
    assert isinstance(outcome[0], ClaimLostError)
    # Only the new owner's generation: the stalled worker's previews, final, end and
    # cleanup never landed in it.
    assert await types_of(redis, key) == NAMES
    claim = await redis.get(claim_key(key))
    assert claim is not None
    assert claim.startswith(b"done:")
    assert not claim.startswith(b"done:failed:")
    assert stalled_api.generations == 1


async def test_a_failed_generation_releases_its_job_for_a_retry_at_once(
    redis: Redis, emulator: EmulatorServer, key: str
) -> None:
    async def failing() -> None:
        raise ValueError("the prompt was refused")

    with pytest.raises(ValueError, match="refused"):
        await start_once(redis, key, failing)
    api = api_of(emulator)
    try:
        retried = await start_once(redis, key, generation(api, redis, key))
    finally:
        await api.aclose()
    assert retried is True
    assert api.generations == 1
    assert await types_of(redis, key) == NAMES  # the failed stream was closed and deleted
    again = await start_once(redis, key, generation(api, redis, key))
    assert again is False  # a success is not repeated


def test_a_key_whose_claim_cannot_share_its_slot_is_refused() -> None:
    for bad in ("a}b", "{}x", "a{b"):
        with pytest.raises(ValueError, match="job_key"):
            claim_key(bad)


@pytest.mark.filterwarnings(COREDIS_LEAK)  # coredis's cluster client, on trio
async def test_fencing_on_a_real_redis_cluster(
    redis_cluster: RedisClusterServers, emulator: EmulatorServer, key: str
) -> None:
    api = api_of(emulator)
    job = f"ttstream:{key}"
    async with cluster_client_of(redis_cluster) as cluster:
        try:
            assert await start_once(cluster, job, generation(api, cluster, job))
            written = [e.field_values[b"type"].decode() for e in await cluster.xrange(job)]
            done = await cluster.get(claim_key(job))

            # A worker whose claim was taken writes nothing into the new owner's stream.
            other = f"ttstream:{key}-lost"
            send_permit, permits = anyio.create_memory_object_stream[None](math.inf)

            async def run() -> None:
                await pump(gated(api.generate(), permits), RedisStreamSink(cluster, other))

            async def steal() -> None:
                while await cluster.xlen(other) < 1:  # noqa: ASYNC110 - the worker writes
                    await anyio.sleep(0.01)
                await cluster.set(claim_key(other), "running:someone-else", px=10_000)
                for _ in range(3):
                    send_permit.send_nowait(None)

            with send_permit, permits, anyio.fail_after(10):
                send_permit.send_nowait(None)
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(steal)
                    with pytest.raises(ClaimLostError):
                        await start_once(cluster, other, run, claim_ttl=5)
            lost = [e.field_values[b"type"].decode() for e in await cluster.xrange(other)]
            slots = {
                name: {await cluster.cluster_keyslot(k) for k in (name, claim_key(name))}
                for name in (job, other, "ttstream:{job-7}", "a{b}c{d}", "x:y")
            }
        finally:
            await api.aclose()
    assert written == NAMES
    assert done is not None
    assert done.startswith(b"done:")
    assert lost == ["partial_image"]
    assert all(len(both) == 1 for both in slots.values())  # stream and claim: one slot
    gc.collect()  # coredis's unclosed streams now, under this test's warning filter


def redis_slot(key: bytes) -> int:
    """A key's hash slot by the Redis Cluster specification ("Hash tags"): CRC16-XMODEM
    (``binascii.crc_hqx`` with 0) of the hash tag if the key has a non-empty one, else of
    the whole key, modulo 16384."""
    opening = key.find(b"{")
    if opening >= 0:
        closing = key.find(b"}", opening + 1)
        if closing > opening + 1:
            key = key[opening + 1 : closing]
    return binascii.crc_hqx(key, 0) % 16384


@given(st.text(min_size=1, max_size=40))
def test_a_claim_key_is_in_its_streams_slot_or_refused(job: str) -> None:
    try:
        claim = claim_key(job)
    except ValueError:
        # Refused only when braces make a shared slot impossible.
        assert "{" in job or "}" in job
        return
    assert redis_slot(claim.encode("utf-8", "surrogatepass")) == redis_slot(
        job.encode("utf-8", "surrogatepass")
    )
