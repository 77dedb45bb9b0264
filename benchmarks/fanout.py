"""Fan-out through Redis Streams: producers, relay workers and SSE viewers in processes.

    python benchmarks/fanout.py                       # 2 producers, 4 relays, 200 viewers
    python benchmarks/fanout.py --viewers 40 --image-mb 0.5 --events 3

Starts Debian's ``redis-server`` on a free loopback port, ``--relays`` relay processes
(uvicorn serving ``RedisRelay`` at ``/previews/{job}``), ``--viewer-processes`` viewer
processes sharing ``--viewers`` SSE viewers, then ``--producers`` producer processes.
Each producer claims its job with ``ttstream.redis.start_once`` and pumps a generation
of ``--events`` images of ``--image-mb`` MB each (random bytes, so incompressible;
previews and the final image alike), one every ``--pace`` seconds, into a
``RedisStreamSink``. Viewer ``i`` watches job ``i % producers`` through a random relay;
after each event it reconnects, with probability ``--reconnect``, to a random relay with
``Last-Event-ID``, as a browser behind a load balancer does.

Checks: every viewer got every entry of its job's stream once, in order (its ids equal
``XRANGE``'s), ending with the ``end`` event; the script exits with 1 otherwise.

Reports (Markdown): the delay from ``XADD`` to delivery (now, at the viewer, minus the
millisecond time in the entry id Redis made; one clock: same machine), p50/p99 over
live deliveries (on a connection opened before the ``XADD``) and over all (with the
catch-up after reconnections); Redis's memory at the end (``used_memory``, and
``MEMORY USAGE`` of the streams); and the CPU time of each process over the run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the redis-server launcher of the tests (support/)

import anyio  # noqa: E402
import coredis  # noqa: E402
import httpx2  # noqa: E402

from ttstream import Completed, PartialImage  # noqa: E402
from ttstream.redis import RedisRelay, RedisStreamSink, start_once  # noqa: E402
from ttstream.sinks import pump  # noqa: E402
from ttstream.sse import SSEDecoder  # noqa: E402

PREFIX = "fanout:"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The relay process.


def serve_relay(port: int, redis_url: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    class Previews:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await scope["app"].state.relay(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with coredis.Redis.from_url(redis_url) as redis:
            app.state.relay = RedisRelay(redis, prefix=PREFIX, claims=True, wait=60)
            yield

    async def health(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/health", health), Route("/previews/{key}", Previews())],
        lifespan=lifespan,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)


# The producer process.


def delay_until(start_at: float) -> float:
    """Seconds from now to ``start_at`` (Unix time); 0 when it has passed (a producer
    that starts late, on a loaded machine, starts at once)."""
    return max(0.0, start_at - time.time())


async def produce(
    redis_url: str, job: str, events: int, image_bytes: int, pace: float, start_at: float
) -> None:
    picture = os.urandom(image_bytes)
    await anyio.sleep(delay_until(start_at))  # every producer starts at once, warmed up

    async def generation() -> AsyncIterator[Any]:
        for index in range(events):
            b64 = base64.b64encode(index.to_bytes(4, "big") + picture[4:]).decode()
            common = {"b64_json": b64, "operation": "generation", "size": "1024x1024"}
            if index < events - 1:
                yield PartialImage(index=index, **common)
            else:
                yield Completed(**common)
            await anyio.sleep(pace)

    async with coredis.Redis.from_url(redis_url) as redis:
        key = PREFIX + job
        started = await start_once(
            redis, key, lambda: pump(generation(), RedisStreamSink(redis, key, maxlen=100))
        )
        assert started, f"job {job} was already claimed"
    print(json.dumps({"cpu": time.process_time()}))


# The viewer process.


async def view(
    number: int, job: str, relays: list[str], reconnect: float, http: httpx2.AsyncClient
) -> dict[str, Any]:
    rng = random.Random(number)
    ids: list[str] = []
    live: list[float] = []
    caught_up: list[float] = []
    connections = 0
    last_event_id = ""
    while True:
        relay = rng.choice(relays)
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        connections += 1
        opened = time.time()
        finished = left = False
        async with http.stream("GET", f"{relay}/previews/{job}", headers=headers) as response:
            if response.status_code == 204:
                break
            if response.status_code != 200:
                return {"job": job, "ids": ids, "error": f"{relay} answered {response.status_code}"}
            decoder = SSEDecoder()
            async for chunk in response.aiter_raw():
                for event in decoder.feed(chunk):
                    now = time.time()
                    added = int(event.id.partition("-")[0]) / 1000
                    (live if added >= opened else caught_up).append(now - added)
                    ids.append(event.id)
                    last_event_id = event.id
                    if event.event in ("end", "error"):
                        finished = True
                    elif rng.random() < reconnect:
                        left = True
                    if finished or left:
                        break
                if finished or left:
                    break
        if finished:
            break
        if not left:
            return {"job": job, "ids": ids, "error": "a response ended without the end event"}
    return {
        "job": job,
        "ids": ids,
        "live": live,
        "caught_up": caught_up,
        "connections": connections,
    }


async def viewers(first: int, count: int, jobs: list[str], relays: list[str], reconnect: float):
    results: list[dict[str, Any]] = []
    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx2.Timeout(10, read=120)
    async with httpx2.AsyncClient(limits=limits, timeout=timeout) as http:

        async def one(number: int) -> None:
            results.append(await view(number, jobs[number % len(jobs)], relays, reconnect, http))

        async with anyio.create_task_group() as tasks:
            for number in range(first, first + count):
                tasks.start_soon(one, number)
    print(json.dumps({"viewers": results, "cpu": time.process_time()}))


# The conductor.


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(10)


class ProcessFailed(Exception):
    """A producer or viewer process failed: its name, exit code and what it printed."""


def answer_of(name: str, process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """The JSON object a producer or viewer process printed on its last line.

    Raises:
        ProcessFailed: it exited with an error or printed no JSON object (its traceback
            is on stderr, above); the message names the process and its exit code.
    """
    out, _ = process.communicate(timeout=timeout)
    lines = (out or b"").strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    if process.returncode != 0 or not isinstance(answer, dict):
        shown = (out or b"")[-200:].decode(errors="replace")
        raise ProcessFailed(f"{name} failed (exit code {process.returncode}); it printed {shown!r}")
    return answer


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> int:
    from support.redis_server import RedisServer

    me = [sys.executable, __file__]
    jobs = [f"job{n}-{os.getpid()}" for n in range(args.producers)]
    with RedisServer(tcp=True) as server, contextlib.ExitStack() as stack:
        ports = [free_port() for _ in range(args.relays)]
        relays = [subprocess.Popen([*me, "relay", str(p), server.url]) for p in ports]
        stack.callback(stop, relays)
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        deadline = time.monotonic() + 30
        for url in urls:
            while True:
                with contextlib.suppress(httpx2.HTTPError):
                    if httpx2.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"relay {url} did not start")
                time.sleep(0.05)
        started = time.monotonic()
        watched = [*relays, server.process]
        cpu_before = {p.pid: cpu_seconds(p.pid) for p in watched if p is not None}
        share = -(-args.viewers // args.viewer_processes)
        watchers = []
        for first in range(0, args.viewers, share):
            count = min(share, args.viewers - first)
            command = [*me, "viewers", str(first), str(count), ",".join(jobs), ",".join(urls)]
            watchers.append(
                subprocess.Popen([*command, str(args.reconnect)], stdout=subprocess.PIPE)
            )
        image_bytes = int(args.image_mb * 1024 * 1024)
        start_at = time.time() + 3  # the viewers connect first: the relays wait for the streams
        producers = [
            subprocess.Popen(
                [
                    *me,
                    "producer",
                    server.url,
                    job,
                    str(args.events),
                    str(image_bytes),
                    str(args.pace),
                    str(start_at),
                ],
                stdout=subprocess.PIPE,
            )
            for job in jobs
        ]
        results: list[dict[str, Any]] = []
        cpu: dict[str, float] = {}
        for n, watcher in enumerate(watchers, 1):
            answer = answer_of(f"viewer process {n}", watcher, args.timeout)
            results += answer["viewers"]
            cpu[f"viewer process {n}"] = answer["cpu"]
        for n, producer in enumerate(producers, 1):
            cpu[f"producer {n}"] = answer_of(f"producer {n}", producer, args.timeout)["cpu"]
        wall = time.monotonic() - started
        for n, p in enumerate(relays, 1):
            cpu[f"relay {n}"] = cpu_seconds(p.pid) - cpu_before[p.pid]
        assert server.process is not None
        cpu["redis-server"] = cpu_seconds(server.process.pid) - cpu_before[server.process.pid]
        expected, memory = anyio.run(inspect, server.url, jobs)
    return report(args, results, expected, memory, cpu, wall)


async def inspect(redis_url: str, jobs: list[str]) -> tuple[dict[str, list[str]], dict[str, int]]:
    async with coredis.Redis.from_url(redis_url) as redis:
        expected = {
            job: [e.identifier.decode() for e in await redis.xrange(PREFIX + job)] for job in jobs
        }
        info = await redis.info("memory")
        memory = {"used_memory": int(info["used_memory"])}
        for job in jobs:
            memory[job] = int(await redis.memory_usage(PREFIX + job) or 0)
    return expected, memory


def report(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    expected: dict[str, list[str]],
    memory: dict[str, int],
    cpu: dict[str, float],
    wall: float,
) -> int:
    wrong = [r for r in results if r["ids"] != expected[r["job"]] or "error" in r]
    for r in wrong[:5]:
        print(f"a viewer of {r['job']}: {r.get('error') or 'ids differ from XRANGE'}")
    results = [r for r in results if "error" not in r]
    live = [d for r in results for d in r["live"]]
    everything = live + [d for r in results for d in r["caught_up"]]
    connections = sum(r["connections"] for r in results)
    ms = 1000
    print(
        f"\n## Fan-out through Redis Streams ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs)\n"
    )
    print(
        f"{args.producers} producers, {args.relays} relay processes, {len(results)} viewers in "
        f"{args.viewer_processes} processes; {args.events} images of {args.image_mb:g} MB per "
        f"generation, one every {args.pace:g} s; reconnect probability {args.reconnect:g} "
        f"per event ({connections} connections in all); run time {wall:.1f} s.\n"
    )
    print("| check | result |\n| --- | --- |")
    good = args.viewers - len(wrong)
    print(f"| viewers that got every entry once, in order | {good} of {args.viewers} |")
    print(f"| events delivered | {len(everything)} ({len(live)} live) |\n")
    print("| delay XADD -> delivery | p50 | p99 | max |\n| --- | --- | --- | --- |")
    for label, values in (("live", live), ("all (with catch-up)", everything)):
        p50, p99 = percentile(values, 50) * ms, percentile(values, 99) * ms
        worst = max(values, default=float("nan")) * ms
        print(f"| {label} | {p50:.0f} ms | {p99:.0f} ms | {worst:.0f} ms |")
    print("\n| Redis memory at the end | bytes |\n| --- | --- |")
    for name, value in memory.items():
        print(f"| {name} | {value:,} |")
    print("\n| process | CPU time | CPU / run time |\n| --- | --- | --- |")
    for name, seconds in cpu.items():
        print(f"| {name} | {seconds:.1f} s | {seconds / wall:.0%} |")
    return 1 if wrong else 0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "relay":
        serve_relay(int(sys.argv[2]), sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "producer":
        redis_url, job, events, size, pace, start_at = sys.argv[2:8]
        anyio.run(produce, redis_url, job, int(events), int(size), float(pace), float(start_at))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "viewers":
        first, count, jobs, relays, reconnect = sys.argv[2:7]
        anyio.run(
            viewers, int(first), int(count), jobs.split(","), relays.split(","), float(reconnect)
        )
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--relays", type=int, default=4)
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--viewer-processes", type=int, default=4)
    parser.add_argument("--events", type=int, default=4, help="images per generation")
    parser.add_argument("--image-mb", type=float, default=2.0)
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between images")
    parser.add_argument("--reconnect", type=float, default=0.3)
    parser.add_argument("--timeout", type=float, default=300, help="seconds, for the run")
    try:
        code = run(parser.parse_args())
    except ProcessFailed as exc:
        print(f"fanout: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
