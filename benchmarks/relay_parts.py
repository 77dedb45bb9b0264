"""SSERelay's own work against the raw forwarder's, in one process without sockets
(issue 22, item 3: where the relay's extra CPU in ``relay_cpu.py`` lies).

``python benchmarks/relay_parts.py [--viewers 100] [--rounds 15] [--image-bytes N]``

``relay_cpu.py`` measures a whole uvicorn server, whose CPU is mostly socket writes and
whose paired ratios spread by ±0.1 from round to round. Here the three servers of
``relay_cpu.py`` (SSERelay; SSERelay with its frames built beforehand; the raw
forwarder of SSERelay's captured messages) serve ``--viewers`` ASGI connections in this
process, and the only work left is theirs: each ``send`` yields to the event loop once,
as a server's does while the viewer's socket is full, and ``receive`` answers
``http.disconnect`` once the response is complete, as uvicorn's does. What is measured
is this process's CPU time (``time.process_time``, the garbage collector off) from the
first item to the last viewer's end; each round runs every kind three times and keeps
the least, the kinds alternating which goes first.

Printed: each kind's median, its median paired ratio to the forwarder, and the extra
per viewer. ``--image-bytes 2000`` leaves frames of a few hundred bytes: what a
viewer's connection costs whatever it is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from relay_cpu import (  # noqa: E402
    KINDS,
    Forwarder,
    capture,
    feed,
    frames_built_beforehand,
    items,
)

SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}


async def viewer(app: Any) -> None:
    """One connection to ``app``, as a server would run it."""
    complete = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # the socket is full: the server waits for it to drain
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            complete.set()

    await app(dict(SCOPE), receive, send)


async def fan_out(kind: str, events: list[Any], start: Any, groups: Any, viewers: int) -> float:
    """CPU seconds to serve ``viewers`` connections every item, by ``kind``."""
    from ttstream.sinks import SSERelay

    undo = frames_built_beforehand(events) if kind == "prebuilt" else None
    app: Any = SSERelay(keepalive=None) if kind != "raw" else Forwarder(start[0], groups[0])
    tasks = [asyncio.create_task(viewer(app)) for _ in range(viewers)]
    await asyncio.sleep(0.01)  # every viewer connected and waiting
    gc.collect()
    gc.disable()
    began = time.process_time()
    try:
        await feed(app, events, groups)
        await asyncio.gather(*tasks)
        return time.process_time() - began
    finally:
        gc.enable()
        if undo is not None:
            undo()


async def run(viewers: int, rounds: int, image_bytes: int) -> None:
    events = items(image_bytes)
    start, groups = await capture(events)
    kinds = list(KINDS)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_ in range(rounds):
        for kind in kinds[round_ % 3 :] + kinds[: round_ % 3]:
            best = min([await fan_out(kind, events, start, groups, viewers) for _ in range(3)])
            times[kind].append(best)
    print(
        f"\n{viewers} viewers, images of {image_bytes:,} bytes, median of {rounds} rounds:\n\n"
        "| Server | CPU (ms) | / forwarder | extra per viewer (µs) |\n|---|---:|---:|---:|"
    )
    for kind in kinds:
        ratio = statistics.median(a / b for a, b in zip(times[kind], times["raw"], strict=True))
        median = statistics.median(times[kind])
        extra = (median - statistics.median(times["raw"])) / viewers
        print(f"| {KINDS[kind]} | {median * 1e3:.2f} | {ratio:.3f} | {extra * 1e6:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--image-bytes", type=int, default=2_000_000)
    args = parser.parse_args()
    asyncio.run(run(args.viewers, args.rounds, args.image_bytes))


if __name__ == "__main__":
    main()
