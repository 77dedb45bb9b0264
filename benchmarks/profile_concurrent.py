"""One contender of ``loopback.py`` at N concurrent streams, in this process: for a
profiler or to measure memory.

``python benchmarks/profile_concurrent.py CONTENDER [--streams N] [--image-bytes N]
[--tracemalloc]`` starts the loopback server (its own process), runs one untimed stream,
then N concurrent streams (200 by default) and prints one JSON line: seconds, aggregate
MB/s, RSS growth per stream and, with ``--tracemalloc``, the traced peak per stream and
the largest snapshot by file. CONTENDER is one of ``loopback.py``'s short names
(``hand``, ``floor``, ``tt-aiohttp``, ``tt-httpx2``, ``tt-trio``, ``sse-httpx``,
``sse-httpx2``, ``openai``). Profiled as in ``RESULTS.md``::

    py-spy record -r 250 --format raw -o tt.txt -- python profile_concurrent.py tt-httpx2
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from typing import Any

import anyio
from _workload import MB, four_events
from loopback import FLOOR, KEYS, TT_TRIO, make, peak_rss, rss_now
from run_all import Server


async def main(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    stream = four_events(args.image_bytes)
    name = KEYS[args.contender]
    expected = 4 if name == FLOOR else stream.image_bytes
    contender = make(name, server.base_url, args.streams + 8)
    errors: list[str] = []

    async def one(number: int) -> None:
        try:
            if await contender.run(f"p-{number}", lambda index: None) != expected:
                errors.append("wrong-result")
        except Exception as exc:
            errors.append(type(exc).__name__)

    await one(-1)  # warm-up
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
    await contender.aclose()
    size = len(stream.body) * args.streams
    return {
        "contender": name,
        "seconds": round(seconds, 2),
        "mb_per_s": round(size / seconds / MB, 1),
        "rss_per_stream_mb": round(
            (peak_rss() - rss_before) / MB / args.streams,
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


def cli() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("contender", choices=KEYS)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--image-bytes", type=int, default=2_000_000)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    server = Server(args.image_bytes)
    backend = "trio" if KEYS[args.contender] == TT_TRIO else "asyncio"
    try:
        result = anyio.run(main, args, server, backend=backend)
    finally:
        server.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    cli()
