"""Only the 200-stream loop of d, for one ttstream variant, in this process: for a
profiler or to measure memory.

``python benchmarks/profile_concurrent.py VARIANT [--streams N] [--image-bytes N]
[--tracemalloc] [--read-bufsize N] [--chunk-size N] [--join]`` starts the loopback
server, runs one untimed stream, then N concurrent streams (200 by default, as in d), and
prints one JSON line: seconds, aggregate MB/s, RSS growth per stream and, with
``--tracemalloc``, the traced peak per stream and the largest snapshot by file. VARIANT is
``ttstream``, ``stdlib``, ``text`` or ``aiohttp`` (the variants of ``_peers.py``). The
experiments, process-wide here and nowhere else: ``--read-bufsize`` sets aiohttp's session
``read_bufsize``, ``--chunk-size`` the pieces aiohttp bodies are handed over in
(``ttstream._transport.READ_SIZE``), ``--join`` keeps a decoded image as pieces joined at
its end instead of one growing ``io.BytesIO``. Profiled as in ``RESULTS.md``::

    py-spy record -r 250 --format raw -o ttstream.txt -- python profile_concurrent.py ttstream
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time
import tracemalloc
from typing import Any

import anyio
from _peers import TT_AIOHTTP, TT_STDLIB, TT_TODAY, TTSTREAM, network_peer
from _workload import MB, four_events
from run_all import Server, check, rss_now

from ttstream import _transport

VARIANTS = {"ttstream": TTSTREAM, "stdlib": TT_STDLIB, "text": TT_TODAY, "aiohttp": TT_AIOHTTP}


async def main(args: argparse.Namespace, server: Server, expected: int) -> dict[str, Any]:
    peer = network_peer(VARIANTS[args.variant], server.base_url, connections=args.streams + 8)
    await check(peer, True, expected)  # warm-up
    errors: list[str] = []

    async def one(number: int) -> None:
        try:
            if await peer.run(True, tag=f"p-{number}") != expected:
                errors.append("wrong-bytes")
        except Exception as exc:
            errors.append(type(exc).__name__)

    gc.collect()
    rss_before = rss_now()
    if args.tracemalloc:
        tracemalloc.start()
    start = time.perf_counter()
    peak_files: list[tuple[str, float]] = []
    async with anyio.create_task_group() as outer:
        if args.tracemalloc:
            outer.start_soon(watch_peak, peak_files)
        async with anyio.create_task_group() as group:
            for number in range(args.streams):
                group.start_soon(one, number)
        outer.cancel_scope.cancel()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else 0
    tracemalloc.stop()
    await peer.aclose()
    size = len(four_events(args.image_bytes).body) * args.streams
    return {
        "variant": args.variant,
        "seconds": round(seconds, 2),
        "mb_per_s": round(size / seconds / MB, 1),
        "rss_per_stream_mb": round(
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before)
            / MB
            / args.streams,
            2,
        ),
        "errors": errors,
        "traced_peak_per_stream_mb": round(peak / MB / args.streams, 2),
        "peak_by_file_mb": peak_files,
    }


async def watch_peak(out: list[tuple[str, float]]) -> None:
    """Snapshots of the traced memory by file, every 0.25 s while streams run; keeps the
    largest."""
    best = 0
    while True:
        await anyio.sleep(0.25)
        current = tracemalloc.get_traced_memory()[0]
        if current > best:
            best = current
            stats = tracemalloc.take_snapshot().statistics("filename")
            out[:] = [(s.traceback[0].filename, round(s.size / MB, 1)) for s in stats[:8]]


def set_read_bufsize(size: int) -> None:
    """aiohttp's ``read_bufsize`` (the StreamReader's low-water mark; high is twice it)
    on the sessions httpx-aiohttp creates in this process: an experiment."""
    from httpx_aiohttp.httpx2 import AiohttpTransport

    made = AiohttpTransport.get_client

    def get_client(self: Any) -> Any:
        session = made(self)
        session._read_bufsize = size
        return session

    AiohttpTransport.get_client = get_client  # type: ignore[method-assign]


class _Pieces:
    """An ``io.BytesIO`` stand-in that keeps the written pieces and joins them once."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    def write(self, piece: bytes) -> None:
        self._pieces.append(piece)

    def getvalue(self) -> bytes:
        return b"".join(self._pieces)


def join_images() -> None:
    """The decoded image kept as pieces and joined at its end instead of grown in one
    ``io.BytesIO`` (which reallocates, copying, every 1/8 of growth): an experiment."""
    import types

    from ttstream import _imageline

    _imageline.io = types.SimpleNamespace(BytesIO=_Pieces)  # type: ignore[attr-defined]


def cli() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--image-bytes", type=int, default=2_000_000)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--read-bufsize", type=int)
    parser.add_argument("--chunk-size", type=int)
    parser.add_argument("--join", action="store_true")
    args = parser.parse_args()
    if args.join:
        join_images()
    if args.chunk_size:
        _transport.READ_SIZE = args.chunk_size
    if args.read_bufsize:
        set_read_bufsize(args.read_bufsize)
    server = Server(args.image_bytes)
    try:
        result = anyio.run(main, args, server, four_events(args.image_bytes).image_bytes)
    finally:
        server.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    cli()
