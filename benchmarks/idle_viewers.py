"""SSERelay under 1,000 viewers that never read and 10 that do: memory and lag.

    python benchmarks/idle_viewers.py                    # 1,000 idle + 10 readers
    python benchmarks/idle_viewers.py --idle 200 --send-timeout 3

A relay process (uvicorn serving one ``SSERelay`` at ``/events``, fed by ``pump`` from
the in-process emulator: ``--previews`` previews and the final image of a 1024x1024 PNG,
one every ``--step`` seconds) is measured from outside. ``--idle`` raw sockets send the
request and never read a byte (their receive buffers set small, as a stalled phone's);
``--readers`` clients read the events. The relay writes each frame in pieces of 64 KiB
with ``send_timeout=--send-timeout``: an idle viewer holds at most one piece, and is
dropped once it has not read for that long.

Prints the relay process's RSS (``VmRSS``) before the viewers connect, with them
connected, after the final image was fed, after the idle ones were dropped, and after
they closed their sockets (the server frees a dropped connection's write buffer then); the
relay's ``connections`` and ``dropped``; and the readers' lag per event (the time from
the relay being fed an event to a reader having all of it; one clock: same machine).
Needs the ``emulator`` extra; about 30 s.
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2

from ttstream.sse import SSEDecoder

HERE = Path(__file__).resolve()


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# The relay process.


def serve(port: int, args: argparse.Namespace) -> None:
    import anyio
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    import ttstream
    from ttstream.emulator import EmulatorServer
    from ttstream.sinks import SSERelay, pump

    raise_fd_limit()
    relay = SSERelay(replay=args.previews + 1, send_timeout=args.send_timeout, keepalive=None)
    fed: dict[str, float] = {}
    emulator = EmulatorServer(step_delay=args.step).__enter__()

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {"connections": relay.connections, "dropped": relay.dropped, "fed": fed}
        )

    async def trim(request: Request) -> Response:
        """Hands freed heap memory back to the OS (glibc), so RSS shows what is held."""
        import ctypes
        import gc

        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return JSONResponse({"trimmed": True})

    async def start(request: Request) -> Response:
        async def run() -> None:
            async with ttstream.AsyncClient("emulator-key", base_url=emulator.base_url) as client:
                stream = client.generate(
                    "a lighthouse",
                    model="gpt-image-2",
                    size="1024x1024",
                    partial_images=args.previews,
                )

                class Timed:
                    async def send(self, item: Any) -> None:
                        await relay.send(item)
                        fed[str(relay.last_id)] = time.time()

                    async def aclose(self) -> None:
                        await relay.aclose()
                        fed[str(relay.last_id)] = time.time()

                await pump(stream, Timed())

        request.app.state.tasks.start_soon(run)
        return JSONResponse({"started": True})

    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        async with anyio.create_task_group() as tasks:
            app.state.tasks = tasks
            yield
            tasks.cancel_scope.cancel()

    app = Starlette(
        routes=[
            Route("/events", relay),
            Route("/stats", stats),
            Route("/start", start, methods=["POST"]),
            Route("/trim", trim, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    # "critical": uvicorn logs "ASGI callable returned without completing response" for
    # every viewer the relay drops, which is what this benchmark does 1,000 times.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="critical", backlog=4096)


# The viewers.


def idle_viewer(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: relay\r\nAccept: text/event-stream\r\n\r\n")
    return sock


def reader(port: int, arrivals: dict[str, list[float]], lock: threading.Lock) -> None:
    decoder = SSEDecoder()
    with (
        httpx2.Client(timeout=120) as http,
        http.stream("GET", f"http://127.0.0.1:{port}/events") as r,
    ):
        for chunk in r.iter_raw():
            for event in decoder.feed(chunk):
                with lock:
                    arrivals.setdefault(event.id, []).append(time.time())
                if event.event in ("end", "error"):
                    return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--previews", type=int, default=3)
    parser.add_argument("--step", type=float, default=1.0, help="seconds between events")
    parser.add_argument("--send-timeout", type=float, default=5.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args)
        return 0
    raise_fd_limit()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(HERE), "--serve", str(port), "--previews", str(args.previews)]
    command += ["--step", str(args.step), "--send-timeout", str(args.send_timeout)]
    relay = subprocess.Popen(command)
    sockets: list[socket.socket] = []
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    http.get("/stats")
                    break
                except httpx2.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            rss = {"before the viewers": rss_mb(relay.pid)}
            for _ in range(args.idle):
                sockets.append(idle_viewer(port))
            arrivals: dict[str, list[float]] = {}
            lock = threading.Lock()
            threads = [
                threading.Thread(target=reader, args=(port, arrivals, lock), daemon=True)
                for _ in range(args.readers)
            ]
            for thread in threads:
                thread.start()
            while http.get("/stats").json()["connections"] < args.idle + args.readers:
                time.sleep(0.1)
            rss[f"{args.idle} idle + {args.readers} readers connected"] = rss_mb(relay.pid)
            http.post("/start")
            for thread in threads:
                thread.join(120)
            stats = http.get("/stats").json()
            rss["after the final image"] = rss_mb(relay.pid)
            time.sleep(args.send_timeout + 2)
            dropped = http.get("/stats").json()
            rss[f"after send_timeout ({args.send_timeout} s)"] = rss_mb(relay.pid)
            for sock in sockets:
                sock.close()
            sockets.clear()
            time.sleep(2)
            rss["after the idle viewers closed their sockets"] = rss_mb(relay.pid)
            http.post("/trim")
            rss["then after gc and malloc_trim (what is held)"] = rss_mb(relay.pid)
    finally:
        for sock in sockets:
            sock.close()
        relay.terminate()
        relay.wait(10)
    print(f"relay RSS (MiB), {args.idle} idle viewers, {args.readers} readers:")
    for moment, value in rss.items():
        print(f"  {moment:<45} {value:8.1f}")
    print(f"connections at the end of the generation: {stats['connections']}")
    print(f"after send_timeout: connections {dropped['connections']}, dropped {dropped['dropped']}")
    print("readers' lag per event (ms from fed to received; median, max over readers):")
    for event_id, fed_at in sorted(dropped["fed"].items(), key=lambda kv: int(kv[0])):
        lags = [1000 * (t - fed_at) for t in arrivals.get(event_id, [])]
        if lags:
            print(
                f"  id {event_id:>2}: {len(lags):2} readers, median {statistics.median(lags):7.1f}"
                f", max {max(lags):7.1f}"
            )
    complete = all(len(arrivals.get(i, [])) == args.readers for i in dropped["fed"])
    print("every reader got every event" if complete else "SOME READER MISSED AN EVENT")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
