"""Loopback contenders at 1 and 200 concurrent streams (issue 22's benchmark).

``python benchmarks/loopback.py [--rounds N] [--streams 1,200] [--only NAMES] [--json FILE]``

The server (``_sse_server.py``, a bare asyncio server) runs in its own process and
answers every POST at once with 3 previews and a final image, 2 MB each (10.7 MB of
SSE). Each trial is a fresh client process running one contender: one untimed warm-up
stream, then either ``--reps`` streams one after the other (1 stream) or N streams at
once. Rounds alternate the contenders' order (A B C, B C A, ...). Per contender it
prints the median aggregate MB/s (SSE bytes), the median over rounds of its ratio to the
hand-written client's and to the bare socket floor's MB/s in the same round, the median
RSS growth per stream (peak ``VmHWM`` minus the RSS after the warm-up, over the number
of concurrent streams), and p50/p99 of the delay from the server's ``sock_sendall`` of an
event's last byte to the consumer holding the event's decoded image (``CLOCK_MONOTONIC``
in both processes).

The contenders:

- **hand-written aiohttp + split + pybase64**: what a performance-minded user writes:
  an ``aiohttp`` session, ``iter_any()``, events split at the blank line in a
  ``bytearray`` (searching only the new bytes), the ``b64_json`` string sliced out and
  ``pybase64.b64decode(..., validate=True)`` of it; no JSON parsing of the rest;
- the same, **chunks joined per event** (each event's chunks kept in a list and joined
  once at its end), and that client **holding its latest image** until the next one is
  decoded: ttstream's benchmark loop (``async for event in stream``) keeps the previous
  event alive in its loop variable while the next one is read (a preview UI's
  consumer), so the held variant is the same-consumer comparison for RSS; the
  throughput and RSS ratios are printed against both;
- **bare socket read**: the floor: the request written and the response read from a
  socket with ``loop.sock_recv`` (256 KiB), event ends counted; no HTTP parsing, no
  decoding;
- **ttstream**, pybase64 (``speedups``): on aiohttp's transport (``ttstream[aiohttp]``,
  ``ttstream._transport.http_client``), and on the default install's transport (httpx2
  over httpcore2 with 256 KiB reads, ``ttstream._transport.httpcore_transport``: what
  ``http_client`` makes without the aiohttp extra) on asyncio and on trio;
- **httpx-sse + json + base64** over the old httpx 0.x stack (``httpx``/``httpcore``),
  and the same over httpx2/httpcore2 (issue 18: the two stacks on one workload);
- **openai SDK**: ``AsyncOpenAI(http_client=...)``, ``images.generate(stream=True)`` and
  ``base64.b64decode``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _workload import MB, four_events  # noqa: E402

HAND = "hand-written aiohttp + split + pybase64"
FLOOR = "bare socket read (no HTTP, no decode)"
TT_AIOHTTP = "ttstream, aiohttp transport"
TT_HTTPX2 = "ttstream, httpx2 (asyncio)"
TT_TRIO = "ttstream, httpx2 (trio)"
SSE_HTTPX = "httpx-sse + json + base64 (httpx 0.x)"
SSE_HTTPX2 = "httpx-sse + json + base64 (httpx2)"
OPENAI = "openai SDK"
HAND_JOINED = "hand-written aiohttp + split + pybase64, chunks joined per event"
HAND_HELD = "hand-written, joined, the last image held (ttstream's consumer)"
CONTENDERS = [HAND, FLOOR, TT_AIOHTTP, TT_HTTPX2, TT_TRIO, SSE_HTTPX, SSE_HTTPX2, OPENAI]
SHORT = ["hand", "floor", "tt-aiohttp", "tt-httpx2", "tt-trio", "sse-httpx", "sse-httpx2", "openai"]
KEYS = {
    **dict(zip(SHORT, CONTENDERS, strict=True)),
    "hand-joined": HAND_JOINED,
    "hand-held": HAND_HELD,
}
PROMPT = "a lighthouse at dusk"
MODEL = "gpt-image-1"
OnEvent = Callable[[int], None]


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def request_body(tag: str) -> dict[str, Any]:
    return {"prompt": PROMPT, "model": MODEL, "stream": True, "partial_images": 3, "user": tag}


class Hand:
    """aiohttp, the events split by hand, pybase64."""

    def __init__(self, base_url: str, connections: int) -> None:
        import aiohttp
        import pybase64

        self._b64decode = pybase64.b64decode
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections), read_bufsize=256 * 1024
        )
        self.url = f"{base_url}/images/generations"

    async def run(self, tag: str, on_event: OnEvent) -> int:
        decode = self._b64decode
        handled = index = 0
        buffer = bytearray()
        scan = 0
        async with self.session.post(self.url, json=request_body(tag)) as response:
            response.raise_for_status()
            async for chunk in response.content.iter_any():
                buffer += chunk
                while (end := buffer.find(b"\n\n", scan)) >= 0:
                    start = buffer.find(b'"b64_json":"', 0, end) + 12
                    stop = buffer.find(b'"', start, end)
                    with memoryview(buffer) as view:
                        image = decode(view[start:stop], validate=True)
                    handled += len(image)
                    on_event(index)
                    index += 1
                    del buffer[: end + 2]
                    scan = 0
                scan = max(0, len(buffer) - 1)
        return handled

    async def aclose(self) -> None:
        await self.session.close()


class HandJoined(Hand):
    """The same, with each event's chunks kept in a list and joined once at its end
    (no ``bytearray`` grown by an eighth at a time as a 2.7 MB event arrives)."""

    hold = False  # keep the latest image until the next one is decoded (HandHeld)

    async def run(self, tag: str, on_event: OnEvent) -> int:
        decode = self._b64decode
        handled = index = 0
        pieces: list[bytes] = []
        held = b""

        def take(event: bytes) -> None:
            nonlocal handled, index, held
            start = event.find(b'"b64_json":"') + 12
            stop = event.find(b'"', start)
            with memoryview(event) as view:
                image = decode(view[start:stop], validate=True)
            handled += len(image)
            if self.hold:
                held = image
            del image
            on_event(index)
            index += 1

        async with self.session.post(self.url, json=request_body(tag)) as response:
            response.raise_for_status()
            async for chunk in response.content.iter_any():
                at = 0
                if pieces and chunk[:1] == b"\n" and pieces[-1][-1:] == b"\n":
                    take(b"".join(pieces))  # the blank line's LF opens this chunk
                    pieces, at = [], 1
                while (end := chunk.find(b"\n\n", at)) >= 0:
                    pieces.append(chunk[at:end])
                    take(b"".join(pieces))
                    pieces, at = [], end + 2
                if at < len(chunk):
                    pieces.append(chunk[at:] if at else chunk)
        return handled


class HandHeld(HandJoined):
    """The joined client with ttstream's consumer: the latest decoded image is held until
    the next one is decoded (a preview UI showing it), as ttstream's loop variable and
    ``ImageStream.last_partial`` hold the previous event while the next one is read. Only
    that differs from :class:`HandJoined`: the same RSS comparison, same consumer."""

    hold = True


class Floor:
    """The request written, the response read from the socket; nothing parsed."""

    def __init__(self, base_url: str, connections: int) -> None:
        url = urlsplit(base_url)
        self.address = (url.hostname, url.port)
        self.path = f"{url.path}/images/generations"

    async def run(self, tag: str, on_event: OnEvent) -> int:
        loop = asyncio.get_running_loop()
        payload = json.dumps(request_body(tag)).encode()
        with socket.socket() as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, self.address)
            await loop.sock_sendall(
                sock,
                b"POST %s HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (self.path.encode(), len(payload), payload),
            )
            index = received = 0
            tail = b""
            while True:
                data = await loop.sock_recv(sock, 256 * 1024)
                if not data:
                    break
                received += len(data)
                ends = data.count(b"\n\n") + (tail[-1:] == data[:1] == b"\n")
                for _ in range(ends):
                    on_event(index)
                    index += 1
                tail = (tail + data[-5:])[-5:]
                if tail == b"0\r\n\r\n":
                    break
        return index  # events seen: checked against the stream's 4

    async def aclose(self) -> None:
        pass


class TTStream:
    def __init__(self, base_url: str, connections: int, transport: str) -> None:
        import httpx2

        import ttstream
        from ttstream import _transport

        limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
        if transport == "aiohttp":
            http = _transport.http_client(limits=limits, timeout=600)
        else:  # what http_client makes without the aiohttp extra
            http = httpx2.AsyncClient(
                transport=_transport.httpcore_transport(limits=limits), timeout=600
            )
        self.http = http
        self.client = ttstream.AsyncClient("bench-key", base_url=base_url, http_client=http)

    async def run(self, tag: str, on_event: OnEvent) -> int:
        handled = index = 0
        stream = self.client.generate(PROMPT, model=MODEL, partial_images=3, user=tag)
        async with stream:
            async for event in stream:
                handled += len(event.image_bytes)
                on_event(index)
                index += 1
        return handled

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.http.aclose()


class HttpxSSE:
    def __init__(self, base_url: str, connections: int, stack: str) -> None:
        import importlib

        httpx: Any = importlib.import_module(stack)
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.http = httpx.AsyncClient(limits=limits, timeout=600)
        self.url = f"{base_url}/images/generations"

    async def run(self, tag: str, on_event: OnEvent) -> int:
        from httpx_sse import aconnect_sse

        handled = index = 0
        async with aconnect_sse(self.http, "POST", self.url, json=request_body(tag)) as source:
            async for sse in source.aiter_sse():
                handled += len(base64.b64decode(json.loads(sse.data)["b64_json"]))
                on_event(index)
                index += 1
        return handled

    async def aclose(self) -> None:
        await self.http.aclose()


class OpenAISDK:
    def __init__(self, base_url: str, connections: int) -> None:
        from _peers import sdk_httpx
        from openai import AsyncOpenAI

        limits = sdk_httpx.Limits(
            max_connections=connections, max_keepalive_connections=connections
        )
        http = sdk_httpx.AsyncClient(limits=limits, timeout=600)
        self.client = AsyncOpenAI(api_key="bench-key", base_url=base_url, http_client=http)

    async def run(self, tag: str, on_event: OnEvent) -> int:
        handled = index = 0
        stream = await self.client.images.generate(
            prompt=PROMPT, model=MODEL, stream=True, partial_images=3, user=tag
        )
        async with stream:
            async for event in stream:
                handled += len(base64.b64decode(event.b64_json))
                on_event(index)
                index += 1
        return handled

    async def aclose(self) -> None:
        await self.client.close()


def make(name: str, base_url: str, connections: int) -> Any:
    if name == HAND:
        return Hand(base_url, connections)
    if name == HAND_JOINED:
        return HandJoined(base_url, connections)
    if name == HAND_HELD:
        return HandHeld(base_url, connections)
    if name == FLOOR:
        return Floor(base_url, connections)
    if name == TT_AIOHTTP:
        return TTStream(base_url, connections, "aiohttp")
    if name in (TT_HTTPX2, TT_TRIO):
        return TTStream(base_url, connections, "httpcore")
    if name in (SSE_HTTPX, SSE_HTTPX2):
        return HttpxSSE(base_url, connections, "httpx" if name == SSE_HTTPX else "httpx2")
    if name == OPENAI:
        return OpenAISDK(base_url, connections)
    raise ValueError(name)


def rss_now() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def peak_rss() -> int:
    """This process's peak RSS (``VmHWM``). Not ``getrusage``'s ``ru_maxrss``: Linux
    keeps that across ``execve``, so a child starts with its parent's RSS as its peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One trial, in this (fresh) process."""
    import anyio

    streams, reps = spec["streams"], spec["reps"]
    contender = make(spec["name"], spec["base_url"], streams + 8)
    expected = 4 if spec["name"] == FLOOR else spec["expected"]
    receipts: list[tuple[str, int, float]] = []
    errors: list[str] = []

    async def one(tag: str) -> None:
        def on_event(index: int) -> None:
            receipts.append((tag, index, now()))

        try:
            if await contender.run(tag, on_event) != expected:
                errors.append("wrong-result")
        except Exception as exc:
            errors.append(type(exc).__name__)

    await one("warm-up")
    receipts.clear()
    gc.collect()
    rss_before = rss_now()
    start = time.perf_counter()
    if streams == 1:
        for rep in range(reps):
            await one(f"{spec['tag']}-{rep}")
    else:
        async with anyio.create_task_group() as group:
            for number in range(streams):
                group.start_soon(one, f"{spec['tag']}-{number}")
    seconds = time.perf_counter() - start
    peak = peak_rss()
    await contender.aclose()
    return {
        "seconds": seconds,
        "streams_done": streams * (reps if streams == 1 else 1),
        "receipts": receipts,
        "errors": errors,
        "rss_per_stream": (peak - rss_before) / streams,
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"ABORT: {spec['name']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def bench(names: list[str], streams: int, rounds: int, reps: int, image_bytes: int) -> dict:
    from run_all import Server

    stream = four_events(image_bytes)
    server = Server(image_bytes)
    trials: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    try:
        for round_ in range(rounds):
            shift = round_ % len(names)
            for name in [*names[shift:], *names[:shift]]:
                spec = {
                    "name": name,
                    "base_url": server.base_url,
                    "streams": streams,
                    "reps": reps,
                    "tag": f"r{round_}",
                    "expected": stream.image_bytes,
                }
                trial = run_child(spec)
                marks = server.marks()
                trial["delays"] = [
                    when - marks[tag, index]
                    for tag, index, when in trial.pop("receipts")
                    if (tag, index) in marks
                ]
                trial["mb_per_s"] = len(stream.body) * trial["streams_done"] / trial["seconds"] / MB
                trials[name].append(trial)
                print(
                    f"  round {round_} {name}: {trial['mb_per_s']:.0f} MB/s, "
                    f"{trial['rss_per_stream'] / MB:.2f} MB/stream, errors {trial['errors'][:3]}, "
                    f"load {os.getloadavg()[0]:.2f} at {time.strftime('%H:%M:%S', time.gmtime())}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        server.stop()
    summary = {}
    for name, runs in trials.items():
        delays = sorted(d for run in runs for d in run["delays"])
        summary[name] = {
            "mb_per_s": statistics.median(run["mb_per_s"] for run in runs),
            "rounds_mb_per_s": [round(run["mb_per_s"], 1) for run in runs],
            "rss_per_stream_mb": statistics.median(run["rss_per_stream"] for run in runs) / MB,
            "p50_s": quantile(delays, 0.50),
            "p99_s": quantile(delays, 0.99),
            "errors": sum(len(run["errors"]) for run in runs),
        }
        for reference, key in (
            (HAND, "vs_hand"),
            (HAND_JOINED, "vs_hand_joined"),
            (HAND_HELD, "vs_hand_held"),
            (FLOOR, "vs_floor"),
        ):
            if reference in trials:
                summary[name][key] = statistics.median(
                    run["mb_per_s"] / ref["mb_per_s"]
                    for run, ref in zip(runs, trials[reference], strict=True)
                )
        # RSS per stream against the joined hand-written client as it is (it keeps no
        # image) and against the same client holding its latest image (ttstream's consumer)
        for reference, key in ((HAND_JOINED, "rss_vs_joined"), (HAND_HELD, "rss_vs_held")):
            if reference in trials and streams > 1:
                summary[name][key] = statistics.median(
                    run["rss_per_stream"] / ref["rss_per_stream"]
                    for run, ref in zip(runs, trials[reference], strict=True)
                )
    return summary


def table(summary: dict[str, Any], streams: int) -> str:
    rows = [
        f"| {streams} stream{'s' if streams > 1 else ''} | MB/s | {TIMES} hand-written "
        f"| {TIMES} hand-written, joined | {TIMES} hand-written, held | {TIMES} floor "
        f"| RSS per stream (MB) | RSS {TIMES} joined / held "
        f"| p50 / p99 delay, last byte {ARROW} image | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    nan = float("nan")
    for name, s in summary.items():
        unit, scale = ("ms", 1e3) if streams == 1 else ("s", 1)
        rows.append(
            f"| {name} | {s['mb_per_s']:.0f} | {s.get('vs_hand', nan):.2f} "
            f"| {s.get('vs_hand_joined', nan):.2f} | {s.get('vs_hand_held', nan):.2f} "
            f"| {s.get('vs_floor', nan):.2f} | {s['rss_per_stream_mb']:.2f} "
            f"| {s.get('rss_vs_joined', nan):.2f} / {s.get('rss_vs_held', nan):.2f} "
            f"| {s['p50_s'] * scale:.2f} / {s['p99_s'] * scale:.2f} {unit} | {s['errors']} |"
        )
    return "\n".join(rows)


TIMES = "\N{MULTIPLICATION SIGN}"
ARROW = "\N{RIGHTWARDS ARROW}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", default="1,200", help="comma-separated concurrency levels")
    parser.add_argument("--reps", type=int, default=20, help="sequential streams at 1 stream")
    parser.add_argument("--image-bytes", type=int, default=2_000_000)
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(KEYS)} (default: all)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import anyio

        spec = json.loads(args.child)
        backend = "trio" if spec["name"] == TT_TRIO else "asyncio"
        print(json.dumps(anyio.run(child, spec, backend=backend)))
        return
    names = (
        [KEYS[key] for key in args.only.split(",")]
        if args.only
        else [HAND, HAND_JOINED, HAND_HELD, *CONTENDERS[1:]]
    )
    results = {}
    for streams in (int(level) for level in args.streams.split(",")):
        summary = bench(names, streams, args.rounds, args.reps, args.image_bytes)
        print(f"\n{table(summary, streams)}\n", flush=True)
        results[streams] = summary
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
