"""client.batch() against the emulator: throughput, 429 pauses, overhead per job.

    python benchmarks/batch.py [--jobs 1000] [--concurrency 16] [--backend asyncio]

Runs, each with ``--jobs`` small generations (64x48, no previews) on the emulator with no
delay between events, over loopback:

1. bare: an anyio task group and a semaphore of ``--concurrency``, each job a
   ``client.generate`` read to its end (the loop people write by hand);
2. batch: ``client.batch(concurrency=...)``, the same jobs;
3. batch + journal: the same with ``journal=`` (SQLite in a temporary directory);
4. batch, 429s: 10 % of requests answered ``429`` with ``retry-after-ms: 50``
   (the emulator's ``status`` fault, chosen at random per request);
5. bare, 429s: the bare loop under the same 429s (the client's own retries only).

Prints jobs per second of each, the overhead per job of the batch against the bare loop,
and for the runs with 429s the pauses, seconds paused, and the lowest and final
concurrency (AIMD). Results vary with the machine and its load: compare runs made
together.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx2

import ttstream
from ttstream.client import DEFAULT_TIMEOUT
from ttstream.emulator import EmulatorServer

PARAMS = {"size": "64x48", "model": "gpt-image-2"}
RATE_LIMITED = "status=429;retry-after-ms=50"


def make_client(base_url: str, limited: float, seed: int) -> ttstream.AsyncClient:
    chance = random.Random(seed)

    async def maybe_429(request: httpx2.Request) -> None:
        # A retry sends the same request object again: roll afresh each time.
        if limited and chance.random() < limited:
            request.headers["X-Emulator-Fault"] = RATE_LIMITED
        else:
            request.headers.pop("X-Emulator-Fault", None)

    http = httpx2.AsyncClient(
        timeout=DEFAULT_TIMEOUT,
        limits=httpx2.Limits(max_connections=256, max_keepalive_connections=64),
        event_hooks={"request": [maybe_429]},
    )
    return ttstream.AsyncClient("emulator-key", base_url=base_url, http_client=http)


async def bare(client: ttstream.AsyncClient, jobs: int, concurrency: int) -> dict[str, float]:
    semaphore = anyio.Semaphore(concurrency)
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        async with semaphore:
            try:
                async with client.generate(f"job {i}", **PARAMS) as stream:
                    async for _ in stream:
                        pass
            except ttstream.TTStreamError:
                failed += 1

    async with anyio.create_task_group() as tg:
        for i in range(jobs):
            tg.start_soon(one, i)
    return {"failed": failed}


async def batched(
    client: ttstream.AsyncClient, jobs: int, concurrency: int, journal: Path | None = None
) -> dict[str, float]:
    async with client.batch(concurrency=concurrency, journal=journal) as batch:
        for i in range(jobs):
            batch.add(f"job {i}", **PARAMS)
        async for _ in batch:
            pass
    return {
        "failed": batch.failed,
        "pauses": batch.pauses,
        "paused_s": batch.paused_seconds,
        "rate_limited": batch.rate_limited,
        "lowest": batch.lowest_limit,
        "final": batch.limit,
    }


def timed(
    name: str,
    run: Callable[[ttstream.AsyncClient], Awaitable[dict[str, float]]],
    base_url: str,
    limited: float,
    jobs: int,
    backend: str,
) -> float:
    async def main() -> tuple[float, dict[str, float]]:
        async with make_client(base_url, limited, seed=1) as client:
            start = time.perf_counter()
            info = await run(client)
            return time.perf_counter() - start, info

    seconds, info = anyio.run(main, backend=backend)
    extra = "  ".join(
        f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}"
        for key, value in info.items()
    )
    print(f"{name:<18} {seconds:7.2f} s  {jobs / seconds:8.1f} jobs/s  {extra}", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--repeat", type=int, default=2, help="rounds of the runs without 429s")
    args = parser.parse_args()
    jobs, concurrency, backend = args.jobs, args.concurrency, args.backend
    print(f"{jobs} jobs, concurrency {concurrency}, {backend}, emulator with no step delay")
    with EmulatorServer(step_delay=0.0) as server, tempfile.TemporaryDirectory() as tmp:
        url = server.base_url
        timed("warm-up", lambda c: bare(c, 50, concurrency), url, 0.0, 50, backend)
        t_bare, t_batch, t_journal = math.inf, math.inf, math.inf
        for round in range(args.repeat):  # interleaved; the best of each is compared
            journal = Path(tmp) / f"run-{round}.sqlite"
            t_bare = min(
                t_bare, timed("bare", lambda c: bare(c, jobs, concurrency), url, 0.0, jobs, backend)
            )
            t_batch = min(
                t_batch,
                timed("batch", lambda c: batched(c, jobs, concurrency), url, 0.0, jobs, backend),
            )
            t_journal = min(
                t_journal,
                timed(
                    "batch + journal",
                    lambda c, journal=journal: batched(c, jobs, concurrency, journal),
                    url,
                    0.0,
                    jobs,
                    backend,
                ),
            )
        timed("batch, 10% 429", lambda c: batched(c, jobs, concurrency), url, 0.1, jobs, backend)
        timed("bare, 10% 429", lambda c: bare(c, jobs, concurrency), url, 0.1, jobs, backend)
    print(
        f"best of {args.repeat}: overhead per job against bare: "
        f"batch {(t_batch - t_bare) / jobs * 1e3:+.3f} ms, "
        f"batch + journal {(t_journal - t_bare) / jobs * 1e3:+.3f} ms"
    )


if __name__ == "__main__":
    main()
