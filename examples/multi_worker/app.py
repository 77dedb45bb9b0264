"""Live previews across workers: a generation started on one worker, watched from another.

    python examples/multi_worker/app.py            # Redis, two workers, one generation
    python examples/multi_worker/app.py --once     # the same, then stop

One command starts a Redis (Debian's ``redis-server``, on a free loopback port; or
``--redis URL`` for yours, ``--cluster`` for a Redis Cluster), two uvicorn workers on
ports 8001 and 8002 (``--ports`` for others, or more) that share it, and a
generation: it is started on worker 1
(``POST /jobs``) and watched from worker 2 (``GET /previews/<job>``, Server-Sent
Events); halfway through, the watcher drops its connection and resumes on worker 1 with
``Last-Event-ID``, and a second ``POST`` of the same prompt to worker 2 attaches to the
running job instead of starting a second, billed generation. Then the workers keep
serving the preview page at http://127.0.0.1:8001/ and http://127.0.0.1:8002/ until
Ctrl+C.

Each worker: ``POST /jobs`` with ``{"prompt": str}`` starts the job (its key is a hash
of the prompt) with ``ttstream.redis.start_once`` in the background, feeding
``RedisStreamSink``, and answers once the job is claimed (202) or found running
elsewhere (200), or 503 when Redis refused at once; ``GET /previews/{job}`` is a
``RedisRelay`` (with ``claims``, so a job whose worker died ends with an error event),
which also serves the browser module at ``/previews/ttstream.js``; ``DELETE
/previews/{job}`` (the page's cancel button) asks the worker running the job, through
Redis, to stop it; ``GET /`` is the page.

The launcher puts Redis and the workers in one process group and stops it on SIGTERM,
SIGINT (Ctrl+C) and on its own exit.

With ``TTAPI_API_KEY`` or ``OPENAI_API_KEY`` set it uses the real API (billed);
otherwise the built-in emulator. Needs the ``emulator`` and ``redis`` extras.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import coredis
import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

import ttstream
from ttstream.emulator import api_or_emulator
from ttstream.redis import RedisRelay, RedisStreamSink, claim_key, start_once
from ttstream.sinks import pump
from ttstream.sse import SSEDecoder

logger = logging.getLogger("multi_worker")

HERE = Path(__file__).parent
PREFIX = "ttstream:preview:"  # the Redis keys of the jobs' streams (and their claims)
MODEL = "gpt-image-1"
MAX_PROMPT = 32_000  # characters the Images API takes in a prompt
PARTIAL_IMAGES = 3
START_WAIT = 5.0  # seconds POST /jobs waits to learn whether the job was claimed
CANCEL_POLL = 0.1  # seconds between the running worker's looks for a cancel request
CANCEL_TTL = 600  # seconds a cancel request stays in Redis


def cancel_key(job: str) -> str:
    """The Redis key a viewer's cancel sets; the worker running the job watches it."""
    return f"{PREFIX}{job}:cancel"


class JobSink(RedisStreamSink):
    """The job's stream; after a viewer's cancel it ends with the error entry "the
    generation was cancelled" (the pages show it as cancelled)."""

    cancelled = False

    async def aclose(self) -> None:
        if self.cancelled:
            await self.fail("the generation was cancelled")
        await super().aclose()


async def generate_until_cancelled(redis: Any, job: str, stream: ttstream.ImageStream) -> None:
    """``pump`` of the job into its stream, stopped (and its API stream closed) within
    ``CANCEL_POLL`` seconds of a viewer's cancel on any worker."""
    sink = JobSink(redis, PREFIX + job)
    async with anyio.create_task_group() as tasks:

        async def watch() -> None:
            while not await redis.exists([cancel_key(job)]):  # noqa: ASYNC110 - Redis, polled
                await anyio.sleep(CANCEL_POLL)
            sink.cancelled = True
            tasks.cancel_scope.cancel()

        tasks.start_soon(watch)
        await pump(stream, sink)
        tasks.cancel_scope.cancel()


def redis_client(url: str, cluster: bool) -> coredis.Redis[bytes] | coredis.RedisCluster[bytes]:
    """A coredis client of ``url``: a Redis Cluster (any node's URL) with ``cluster``."""
    if cluster:
        return coredis.RedisCluster.from_url(url)
    return coredis.Redis.from_url(url)


def create_app(
    *,
    redis_url: str,
    cluster: bool,
    base_url: str | None,
    name: str,
    ports: list[int] | None = None,
) -> Starlette:
    """One worker: ``GET /``, ``POST /jobs``, ``GET|DELETE /previews/{key}``. The coredis
    client, the ttstream client and the jobs' task group live as long as the app (its
    lifespan). ``ports``: every worker's port, for the page's "watch elsewhere" links."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        api_key = "emulator-key" if base_url else None
        async with (
            redis_client(redis_url, cluster) as redis,
            ttstream.AsyncClient(api_key, base_url=base_url) as client,
            anyio.create_task_group() as tasks,
        ):
            app.state.redis, app.state.client, app.state.tasks = redis, client, tasks
            app.state.relay = RedisRelay(redis, prefix=PREFIX, claims=True)
            yield
            tasks.cancel_scope.cancel()

    async def create_job(request: Request) -> Response:
        try:
            body: Any = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT:
            return JSONResponse({"error": f"prompt: 1 to {MAX_PROMPT} chars"}, status_code=400)
        job = hashlib.sha256(prompt.strip().encode()).hexdigest()[:16]
        state = request.app.state
        stream = state.client.generate(prompt.strip(), model=MODEL, partial_images=PARTIAL_IMAGES)
        outcome: list[str] = []  # "claimed", "attached" or "failed", once known
        known = anyio.Event()
        state.tasks.start_soon(run_job, state.redis, job, stream, outcome, known)
        with anyio.move_on_after(START_WAIT):
            await known.wait()
        if outcome[:1] == ["failed"]:
            # start_once failed at once (Redis down, ...): nothing will be generated.
            message = "this job could not be started: the job store did not answer; try again"
            return JSONResponse({"error": message}, status_code=503)
        answer = {
            "job": job,
            "events": f"/previews/{job}",
            "partial_images": PARTIAL_IMAGES,
            "workers": ports or [],
            "attached": outcome[:1] == ["attached"],
        }
        return JSONResponse(answer, status_code=200 if answer["attached"] else 202)

    async def run_job(
        redis: Any,
        job: str,
        stream: ttstream.ImageStream,
        outcome: list[str],
        known: anyio.Event,
    ) -> None:
        key = PREFIX + job

        async def start() -> None:
            await redis.delete([cancel_key(job)])  # an old cancel of this job is no more
            outcome.append("claimed")
            known.set()  # from here a viewer's cancel counts
            await generate_until_cancelled(redis, job, stream)

        try:
            here = await start_once(redis, key, start)
        except Exception:  # the stream's terminal entry tells the browsers
            if not outcome:
                outcome.append("failed")
                known.set()
                await stream.aclose()
            logger.exception("%s: job %s failed", name, job)
            return
        if here:
            logger.warning("%s: job %s generated here", name, job)
        else:
            outcome.append("attached")
            known.set()
            await stream.aclose()
            logger.warning("%s: job %s already claimed: attached, no new generation", name, job)

    async def index(request: Request) -> Response:
        return FileResponse(HERE / "index.html", headers={"cache-control": "no-cache"})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/jobs", create_job, methods=["POST"]),
            Route("/previews/{key}", Previews()),
        ],
        lifespan=lifespan,
    )


class Previews:
    """``GET /previews/{key}``: the worker's RedisRelay (made in the lifespan, once its
    coredis client is entered); ``DELETE /previews/{key}``: a viewer's cancel, left in
    Redis for the worker running the job (202), or 404 for a job never claimed."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        state = scope["app"].state
        if scope["type"] == "http" and scope["method"] == "DELETE":
            job = scope["path_params"]["key"]
            key = PREFIX + job  # a job exists once claimed, before its first entry
            if not await state.redis.exists([key]) and not await state.redis.exists(
                [claim_key(key)]
            ):
                response: Response = JSONResponse({"error": "no such job"}, status_code=404)
            else:
                await state.redis.set(cancel_key(job), b"1", ex=CANCEL_TTL)
                response = JSONResponse({"cancelling": job}, status_code=202)
            await response(scope, receive, send)
            return
        await state.relay(scope, receive, send)


# The launcher: Redis, the workers and the demonstration.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Children:
    """The launcher's child processes, all in one process group (the first child's),
    stopped together: SIGTERM to the group, then SIGKILL after ``grace`` seconds."""

    def __init__(self, grace: float = 5.0) -> None:
        self.grace = grace
        self.group: int | None = None
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, command: list[str], **options: Any) -> subprocess.Popen[bytes]:
        # process_group=0: a new group led by the first child; the others join it.
        group = 0 if self.group is None else self.group
        process = subprocess.Popen(command, process_group=group, **options)
        if self.group is None:
            self.group = process.pid
        self.processes.append(process)
        return process

    def stop(self) -> None:
        if self.group is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.group, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
        if any(process.poll() is None for process in self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.group, signal.SIGKILL)
            for process in self.processes:
                process.wait()


@contextlib.contextmanager
def redis_server(children: Children) -> Iterator[str]:
    """Debian's redis-server on a free loopback port, saving nothing; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found: apt-get install redis-server, or pass --redis URL")
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", directory]
        children.start(command, stdout=subprocess.DEVNULL)
        try:
            yield f"redis://127.0.0.1:{port}"
        finally:
            children.stop()


@contextlib.contextmanager
def workers(
    children: Children, ports: list[int], args: argparse.Namespace, base_url: str | None
) -> Iterator[None]:
    """The worker processes, each serving :func:`create_app`; stopped on the way out."""
    every = ",".join(map(str, ports))
    for number, port in enumerate(ports, 1):
        command = [sys.executable, __file__, "--serve", str(port), "--name", f"worker {number}"]
        command += ["--redis", args.redis] + (["--cluster"] if args.cluster else [])
        command += ["--base-url", base_url] if base_url else []
        command += ["--ports", every]
        children.start(command)
    try:
        deadline = time.monotonic() + 20
        for port in ports:
            while True:
                with contextlib.suppress(httpx2.HTTPError):
                    if httpx2.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    sys.exit(f"the worker on port {port} did not start within 20 s")
                time.sleep(0.1)
        yield
    finally:
        children.stop()


async def demonstrate(ports: list[int], prompt: str) -> None:
    """Starts a job on worker 1, watches it from worker 2, resumes on worker 1."""
    one, two = (f"http://127.0.0.1:{port}" for port in ports[:2])
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(10, read=60)) as http:
        started = await http.post(f"{one}/jobs", json={"prompt": prompt})
        if started.status_code >= 400:
            raise SystemExit(f"worker 1 could not start the job: {started.json()['error']}")
        job = started.json()
        print(f"started job {job['job']} on worker 1; watching it from worker 2", flush=True)
        last_event_id = await watch(http, f"{two}{job['events']}", "worker 2", "", stop_after=2)
        again = await http.post(f"{two}/jobs", json={"prompt": prompt})
        print(f"the same prompt sent to worker 2: {again.status_code}, job {again.json()['job']}")
        print(f"reconnecting to worker 1 with Last-Event-ID: {last_event_id}")
        await watch(http, f"{one}{job['events']}", "worker 1", last_event_id)


async def watch(
    http: httpx2.AsyncClient, url: str, worker: str, last_event_id: str, stop_after: int = 0
) -> str:
    """Reads the events like a browser's EventSource; returns the last event id."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    decoder, seen = SSEDecoder(), 0
    async with http.stream("GET", url, headers=headers) as response:
        async for chunk in response.aiter_raw():
            for event in decoder.feed(chunk):
                data = json.loads(event.data)
                size = f", {data['bytes']} bytes" if data.get("bytes") else ""
                print(f"  {worker} relayed {event.event} (id {event.id}{size})", flush=True)
                seen += 1
                if seen == stop_after:
                    return decoder.last_event_id
    return decoder.last_event_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", help="a Redis URL (default: start a redis-server)")
    parser.add_argument("--cluster", action="store_true", help="--redis is a cluster node")
    parser.add_argument("--ports", default="8001,8002", help="the workers' ports")
    parser.add_argument("--prompt", default="a lighthouse at dusk, seen from the sea")
    parser.add_argument("--once", action="store_true", help="stop after the demonstration")
    parser.add_argument("--step-delay", type=float, default=0.5, help="the emulator's pace")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # a worker's port
    parser.add_argument("--name", default="worker", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ports = [int(port) for port in args.ports.split(",")]
    if len(ports) < 2:
        parser.error("--ports needs at least two ports, e.g. 8001,8002")
    if args.serve:
        app = create_app(
            redis_url=args.redis,
            cluster=args.cluster,
            base_url=args.base_url,
            name=args.name,
            ports=ports,
        )
        uvicorn.run(app, host="127.0.0.1", port=args.serve, log_level="warning")
        return
    # SIGTERM (kill, systemd, docker stop) unwinds like Ctrl+C: the children are stopped.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    children = Children()
    with contextlib.ExitStack() as stack:
        stack.callback(children.stop)
        if args.redis is None:
            args.redis = stack.enter_context(redis_server(children))
        print(f"Redis: {args.redis}", flush=True)
        _, base_url = stack.enter_context(api_or_emulator(step_delay=args.step_delay))
        stack.enter_context(workers(children, ports, args, base_url))
        anyio.run(demonstrate, ports, args.prompt)
        if args.once:
            return
        print("The preview page: " + " and ".join(f"http://127.0.0.1:{p}/" for p in ports))
        print("Start a job on one, open the link it shows on the other. Ctrl+C stops.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
