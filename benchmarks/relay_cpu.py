"""SSERelay's CPU at N viewers against a raw forwarder of the same bytes (issue 22, item 3).

``python benchmarks/relay_cpu.py [--viewers 100] [--rounds 5] [--json FILE]``

Each trial runs a server process (uvicorn on 127.0.0.1, one worker, asyncio) and one
viewer process holding ``--viewers`` connections (httpx2, each reading its whole body).
Once every viewer is connected, the server is fed the realistic stream (3 previews and a
final image, 2 MB each, decoded on arrival, pybase64) and closed; its CPU time (user +
system, ``getrusage``) from the first item to the last byte of the last viewer is what is
measured. Two servers alternate, a fresh process each trial:

- **SSERelay**: ``relay.send(item)`` per item, then ``relay.aclose()``;
- **raw forwarder**: an ASGI app that sends each viewer the very body messages SSERelay
  sends (captured beforehand, so the frames are already built), one per item as it
  "arrives", waking its viewers the same way: the floor of fanning those bytes out.

Every viewer's body must be byte-identical to every other's and across both servers
(SHA-256 checked); the ratio is the median over rounds of relay CPU / forwarder CPU in
the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _workload import four_events  # noqa: E402

KINDS = {
    "relay": "SSERelay",
    "prebuilt": "SSERelay, frames built beforehand",
    "raw": "raw forwarder",
}
COLUMNS = ("cpu", "user", "system", "faults")


def items(image_bytes: int = 2_000_000) -> list[Any]:
    """The realistic stream's events (3 previews and a final image of ``image_bytes``
    each), decoded on arrival."""
    from ttstream import parse_event
    from ttstream.events import image_decoder

    stream = four_events(image_bytes)
    events = [parse_event(sse) for sse in image_decoder().feed(stream.body)]
    assert all(event is not None for event in events)
    return events


def usage() -> tuple[float, float, int]:
    """User and system CPU seconds and minor page faults of this process so far."""
    now = resource.getrusage(resource.RUSAGE_SELF)
    return now.ru_utime, now.ru_stime, now.ru_minflt


async def capture(events: list[Any]) -> tuple[list[Any], list[list[bytes]]]:
    """SSERelay's response messages to one viewer: the start, then the body messages
    sent after each item (the first group is what a viewer gets on connecting)."""
    import anyio

    from ttstream.sinks import SSERelay

    relay = SSERelay(keepalive=None)
    start: list[Any] = []
    bodies: list[bytes] = []
    done = anyio.Event()

    async def receive() -> dict[str, Any]:
        if not start:
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.append(message)
        else:
            bodies.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    groups: list[list[bytes]] = []
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(relay, scope, receive, send)
        await anyio.sleep(0.05)
        groups.append(bodies[:])
        for event in events:
            seen = len(bodies)
            await relay.send(event)
            await anyio.sleep(0.05)
            groups.append(bodies[seen:])
        seen = len(bodies)
        await relay.aclose()
        await done.wait()
        groups[-1] += bodies[seen:]
    return start, groups


class Forwarder:
    """Sends every viewer the body messages that arrived, waking them on each arrival."""

    def __init__(self, start: dict[str, Any], first: list[bytes]) -> None:
        self.start = start
        self.messages: list[bytes] = list(first)
        self.ended = False
        self.changed = asyncio.Event()
        self.connections = 0

    def push(self, messages: list[bytes], *, end: bool = False) -> None:
        self.messages += messages
        self.ended = end
        self.changed.set()
        self.changed = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(self.start)
        self.connections += 1
        sent = 0
        while True:
            while sent < len(self.messages):
                last = self.ended and sent == len(self.messages) - 1
                body = self.messages[sent]
                await send({"type": "http.response.body", "body": body, "more_body": not last})
                sent += 1
            if self.ended:
                return
            await self.changed.wait()


def frames_built_beforehand(events: list[Any]) -> Callable[[], None]:
    """Builds every item's frame now and makes ``frames.frame_of`` answer them, for the
    relay whose serving alone is measured; returns what undoes it."""
    from ttstream._browser import frames

    original = frames.frame_of
    built = {number: original(number, event) for number, event in enumerate(events, 1)}
    frames.frame_of = lambda number, event: built[number]

    def undo() -> None:
        frames.frame_of = original

    return undo


async def feed(app: Any, events: list[Any], groups: list[list[bytes]]) -> None:
    """The timed work: every item sent to the relay, then its end; or, for the
    forwarder, every group of messages pushed as its item would arrive."""
    if isinstance(app, Forwarder):
        for number, group in enumerate(groups[1:], 1):
            app.push(group, end=number == len(groups) - 1)
            await asyncio.sleep(0)
        return
    for event in events:
        await app.send(event)
        await asyncio.sleep(0)
    await app.aclose()


async def serve(kind: str, viewers: int, port_out: Any) -> None:
    import uvicorn

    from ttstream.sinks import SSERelay

    events = items()
    start, groups = await capture(events)
    if kind in ("relay", "prebuilt"):
        # The relay's process keeps only its own frames, as the forwarder's keeps only the
        # messages it sends: with the captured messages held too, what the server
        # allocated while serving came from new heap (2,400 page faults in the timed
        # window, against the forwarder's 52).
        start, groups = [], []
        gc.collect()
        app: Any = SSERelay(keepalive=None)
        if kind == "prebuilt":
            frames_built_beforehand(events)
    else:
        app = Forwarder(start[0], groups[0])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    print(sock.getsockname()[1], file=port_out, flush=True)
    while app.connections < viewers:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    before = usage()
    started = time.perf_counter()
    await feed(app, events, groups)
    # Until the last viewer's last byte: the viewer process says when (idle meanwhile).
    line = await asyncio.to_thread(sys.stdin.readline)
    after = usage()
    user, system, faults = (end - begin for end, begin in zip(after, before, strict=True))
    result = {
        "cpu": user + system,
        "user": user,
        "system": system,
        "faults": faults,
        "wall": time.perf_counter() - started,
        "viewers": line,
    }
    server.should_exit = True
    await task
    print(json.dumps(result), flush=True)


async def view(port: int, viewers: int) -> list[str]:
    import httpx2

    limits = httpx2.Limits(max_connections=viewers + 8, max_keepalive_connections=0)
    async with httpx2.AsyncClient(limits=limits, timeout=600) as client:

        async def one() -> str:
            digest = hashlib.sha256()
            async with client.stream("GET", f"http://127.0.0.1:{port}/") as response:
                async for chunk in response.aiter_raw():
                    digest.update(chunk)
            return digest.hexdigest()

        return list(await asyncio.gather(*(one() for _ in range(viewers))))


def trial(kind: str, viewers: int) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, f"--viewers={viewers}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdin is not None
    port = int(server.stdout.readline())
    viewer = subprocess.run(
        [sys.executable, __file__, "--view", str(port), f"--viewers={viewers}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if viewer.returncode != 0:
        server.kill()
        sys.exit(f"ABORT: viewers failed:\n{viewer.stderr[-3000:]}")
    server.stdin.write("done\n")
    server.stdin.flush()
    result = json.loads(server.stdout.readline())
    server.wait(30)
    result["digests"] = sorted(set(json.loads(viewer.stdout.splitlines()[-1])))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--view", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.viewers, sys.stdout))
        return
    if args.view:
        print(json.dumps(asyncio.run(view(args.view, args.viewers))))
        return
    kinds = list(KINDS)
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for round_ in range(args.rounds):
        for kind in kinds[round_ % 3 :] + kinds[: round_ % 3]:  # each kind first in turn
            result = trial(kind, args.viewers)
            runs[kind].append(result)
            print(f"  round {round_} {kind}: cpu {result['cpu']:.3f} s", file=sys.stderr)
    digests = {d for kind in runs.values() for run in kind for d in run["digests"]}
    if len(digests) != 1:
        sys.exit(f"ABORT: the viewers' bodies differ ({len(digests)} distinct)")
    summary: dict[str, Any] = {"viewers": args.viewers, "rounds": args.rounds, "identical": True}
    print(
        f"| {args.viewers} viewers, median of {args.rounds} rounds | CPU (s) | user (s) "
        "| system (s) | page faults | / forwarder (median of the paired ratios, and "
        "their range) |\n|---|---:|---:|---:|---:|---|"
    )
    for kind in kinds:
        ratios = sorted(
            run["cpu"] / raw["cpu"] for run, raw in zip(runs[kind], runs["raw"], strict=True)
        )
        median = {key: statistics.median(run[key] for run in runs[kind]) for key in COLUMNS}
        summary[kind] = {**median, "ratio": statistics.median(ratios), "ratios": ratios}
        print(
            f"| {KINDS[kind]} | {median['cpu']:.3f} | {median['user']:.3f} "
            f"| {median['system']:.3f} | {median['faults']:.0f} "
            f"| {statistics.median(ratios):.3f} ({ratios[0]:.3f}-{ratios[-1]:.3f}) |"
        )
    print("bodies: byte-identical across viewers and servers")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
