"""Soak: many streams with random faults and random consumer cancellations, checking that
nothing hangs, nothing is left open and every failure is one of ttstream's typed errors.

    python benchmarks/soak.py                     # 1,000 streams, 16 at a time, asyncio
    python benchmarks/soak.py --backend trio --streams 200 --concurrency 32 --seed 7

Runs an in-process ``EmulatorServer(step_delay=0)`` on loopback. Each stream gets a random
fault from the emulator's list (README.md, "Faults"), or none; a random small size
(gpt-image-2, 64x48 or 128x96) and 0-3 previews; and, sometimes, a consumer that cancels
its scope after a short random delay or breaks out after k events. Every stream runs
under ``anyio.fail_after(--hang-after)``. Each ending is classified: completed, a typed
``ttstream.TTStreamError`` (counted by class), cancelled by the consumer, a hang (the
``fail_after`` fired), silent-incomplete (the events ended without a ``Completed``) or
untyped (any other exception; printed).

Prints Markdown tables (the summary, the typed errors, the outcomes per fault) and exits
with 1 when a stream hung, ended untyped or silently incomplete, an error showed the API
key (``echo-headers`` sends it back), or when a stream (on the server) or a connection
(in the httpx pool) is still busy after a short grace period.
"""

from __future__ import annotations

import argparse
import contextvars
import dataclasses
import logging
import math
import random
import resource
import sys
import time
from collections import Counter, defaultdict
from typing import Any

import anyio
import attrs
import httpx2

import ttstream
from ttstream.emulator import EmulatorServer

MODEL = "gpt-image-2"
SIZES = ("64x48", "128x96")
KEY = "soak-key-5e4d3c2b1a"  # echo-headers sends it back: no error may show it
READ_TIMEOUT = 1.0  # seconds: a `stall` longer than this ends in a read timeout
MAX_EVENT_BYTES = 256 * 1024  # an `oversized` event beyond this is EventTooLargeError
GRACE = 3.0  # seconds for the server to notice the last closed connections
FAST_RECONNECT = ttstream.ReconnectPolicy(delay=0.01, max_delay=0.05)

_fault_header: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fault_header", default=None
)


@dataclasses.dataclass(frozen=True)
class Plan:
    """One stream: its fault (``label`` for the report, ``spec`` for the header), its
    request and what the consumer does."""

    label: str
    spec: str | None
    size: str
    partial_images: int
    reconnect: ttstream.ReconnectPolicy | None = None
    cancel_after: float | None = None  # seconds: cancel the consumer's scope
    break_after: int | None = None  # events: leave the loop after this many


def _fault(rng: random.Random) -> tuple[str, str | None, dict[str, Any]]:
    """A random fault: (label, spec without key, overrides of the plan)."""
    status = rng.choice((429, 500, 503))
    choices: list[tuple[str, str | None, dict[str, Any]]] = [
        ("none", None, {}),
        ("none", None, {}),
        ("none", None, {}),
        ("drop-mid-event", "drop-mid-event", {}),
        ("drop-between-events", "drop-between-events", {}),
        (
            "drop-between-events+regenerate",
            "drop-between-events;times=1",
            {"reconnect": attrs.evolve(FAST_RECONNECT, regenerate=1)},
        ),
        ("end-early", "end-early", {}),
        ("error-nested", "error-nested", {}),
        ("error-flat", "error-flat", {}),
        (
            "status (retried)",
            f"status={status};retry-after-ms={rng.randint(1, 20)};times={rng.randint(1, 2)}",
            {},
        ),
        ("status (exhausted)", f"status={status};retry-after-ms=1;times=3", {}),
        ("status=400", "status=400", {}),
        ("retry-after (s)", "status=503;retry-after=0.05;times=1", {}),
        ("wrong-content-type", "wrong-content-type", {}),
        ("stall", f"stall={rng.uniform(0.05, 1.5):.2f}", {}),
        ("drip", "drip", {"size": "64x48", "partial_images": rng.randint(0, 1)}),
        ("malformed-json", "malformed-json", {}),
        ("invalid-base64", "invalid-base64", {}),
        ("oversized", f"oversized={rng.choice((100_000, 400_000))}", {}),
        ("bomb", f"bomb={rng.choice((10**6, 10**8, 10**9))}", {}),
        ("echo-headers", "echo-headers", {}),
        ("echo-headers (retried)", "echo-headers;status=503;retry-after-ms=1;times=1", {}),
        ("heartbeat-data", "heartbeat-data", {}),
        ("pad", f"pad={rng.randint(1_000, 300_000)}", {}),
        ("drop-after (no ids)", f"drop-after={rng.randint(1, 4)}", {}),
        ("ids;drop-mid-event", "ids;drop-mid-event;times=1", {"reconnect": FAST_RECONNECT}),
        (
            "ids;drop-after",
            f"ids;drop-after={rng.randint(1, 3)}",
            {"reconnect": FAST_RECONNECT},
        ),
    ]
    return rng.choice(choices)


def make_plan(rng: random.Random, number: int) -> Plan:
    label, spec, overrides = _fault(rng)
    if spec is not None:
        spec = f"{spec};key=soak-{number}"  # `times` counts per exact spec string
    fields: dict[str, Any] = {
        "label": label,
        "spec": spec,
        "size": rng.choice(SIZES),
        "partial_images": rng.randint(0, 3),
    }
    consumer = rng.random()
    if consumer < 0.15:
        fields["cancel_after"] = rng.uniform(0.0, 0.05)
    elif consumer < 0.30:
        fields["break_after"] = rng.randint(1, 3)
    fields.update(overrides)
    return Plan(**fields)


async def _add_fault_header(request: httpx2.Request) -> None:
    spec = _fault_header.get()
    if spec is not None:
        request.headers["X-Emulator-Fault"] = spec


@dataclasses.dataclass
class Results:
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)
    typed: Counter[str] = dataclasses.field(default_factory=Counter)
    by_fault: defaultdict[str, Counter[str]] = dataclasses.field(
        default_factory=lambda: defaultdict(Counter)
    )
    untyped: list[str] = dataclasses.field(default_factory=list)
    key_shown: int = 0  # errors whose str() or repr() contains the key
    errors_after_completed: list[str] = dataclasses.field(default_factory=list)

    def add(self, plan: Plan, outcome: str, typed: str | None = None) -> None:
        self.outcomes[outcome] += 1
        if typed is not None:
            self.typed[typed] += 1
        self.by_fault[plan.label][typed or outcome] += 1


@dataclasses.dataclass
class Progress:
    """What one consumer has seen so far."""

    completed: bool = False  # a Completed event arrived


async def consume(client: ttstream.AsyncClient, plan: Plan, progress: Progress) -> str:
    """Streams one generation as a consumer would; returns how it ended."""
    stream = client.generate(
        "a soak test",
        model=MODEL,
        size=plan.size,
        partial_images=plan.partial_images,
        reconnect=plan.reconnect,
    )
    seen = 0
    async with stream:
        async for item in stream:
            if isinstance(item, ttstream.PartialImage | ttstream.Completed):
                item.image_bytes  # noqa: B018 - decodes, so invalid base64 raises here
            if isinstance(item, ttstream.Completed):
                progress.completed = True
            seen += 1
            if plan.break_after is not None and seen >= plan.break_after:
                return "cancelled by consumer"
    return "completed" if progress.completed else "silent incomplete"


async def run_one(
    client: ttstream.AsyncClient, plan: Plan, results: Results, hang_after: float
) -> None:
    _fault_header.set(plan.spec)  # each task runs in its own context copy
    started = anyio.current_time()
    progress = Progress()
    try:
        with anyio.fail_after(hang_after):
            cancel_at = math.inf if plan.cancel_after is None else started + plan.cancel_after
            with anyio.move_on_at(cancel_at) as consumer_scope:
                outcome = await consume(client, plan, progress)
            if consumer_scope.cancelled_caught:
                outcome = "cancelled by consumer"
    except ttstream.TTStreamError as exc:
        results.add(plan, "typed error", type(exc).__name__)
        results.key_shown += KEY in str(exc) or KEY in repr(exc)
        if progress.completed:
            results.errors_after_completed.append(f"{plan.label} ({plan.spec}): {exc!r}")
    except TimeoutError as exc:
        if anyio.current_time() - started >= hang_after:
            results.add(plan, "hang")
            print(f"HANG: {plan}", file=sys.stderr)
        else:
            _untyped(results, plan, exc)
    except Exception as exc:
        _untyped(results, plan, exc)
    else:
        results.add(plan, outcome)


def _untyped(results: Results, plan: Plan, exc: BaseException) -> None:
    results.add(plan, "untyped")
    results.untyped.append(f"{plan.label} ({plan.spec}): {exc!r}")
    print(f"UNTYPED: {plan} -> {exc!r}", file=sys.stderr)


def busy_pool_connections(transport: httpx2.AsyncHTTPTransport) -> int | None:
    """Connections of the httpx pool that are neither idle nor closed, or ``None`` when
    the pool cannot be inspected (httpcore's pool is a private attribute of httpx)."""
    pool = getattr(transport, "_pool", None)
    connections = getattr(pool, "connections", None)
    if connections is None:
        return None
    return sum(1 for c in connections if not c.is_idle() and not c.is_closed())


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


async def soak(args: argparse.Namespace) -> tuple[Results, dict[str, str], bool]:
    rng = random.Random(args.seed)
    plans = [make_plan(rng, number) for number in range(args.streams)]
    results = Results()
    with EmulatorServer(step_delay=0.0) as server:
        transport = httpx2.AsyncHTTPTransport()
        async with (
            httpx2.AsyncClient(
                transport=transport, event_hooks={"request": [_add_fault_header]}
            ) as http,
            ttstream.AsyncClient(
                KEY,
                base_url=server.base_url,
                http_client=http,
                timeout=httpx2.Timeout(10.0, read=READ_TIMEOUT),
                max_event_bytes=MAX_EVENT_BYTES,
            ) as client,
        ):
            queue = iter(plans)

            async def worker() -> None:
                for plan in queue:
                    await run_one(client, plan, results, args.hang_after)

            started = time.perf_counter()
            async with anyio.create_task_group() as workers:
                for _ in range(args.concurrency):
                    workers.start_soon(worker)
            wall = time.perf_counter() - started
            stats = server.stream_stats
            for _ in range(int(GRACE / 0.05)):  # the server thread notices closes shortly
                if not stats.open_streams:
                    break
                await anyio.sleep(0.05)
            open_streams = stats.open_streams
            busy = busy_pool_connections(transport)
    typed = ", ".join(f"{name} {count}" for name, count in results.typed.most_common())
    summary = {
        "backend": args.backend,
        "streams (concurrency)": f"{args.streams} ({args.concurrency})",
        "completed": str(results.outcomes["completed"]),
        "typed errors": f"{results.outcomes['typed error']} ({typed or 'none'})",
        "cancelled by consumer": str(results.outcomes["cancelled by consumer"]),
        "hangs": str(results.outcomes["hang"]),
        "untyped endings": str(results.outcomes["untyped"]),
        "silent incomplete": str(results.outcomes["silent incomplete"]),
        "errors showing the key": str(results.key_shown),
        "typed errors after a Completed": str(len(results.errors_after_completed)),
        "streams left open (server, after grace)": str(open_streams),
        "busy httpx pool connections": "n/a" if busy is None else str(busy),
        "peak RSS": f"{peak_rss_mib():.0f} MiB",
        "wall time": f"{wall:.1f} s",
        "streams/s": f"{args.streams / wall:.1f}",
    }
    failed = bool(
        results.outcomes["hang"]
        or results.outcomes["untyped"]
        or results.outcomes["silent incomplete"]
        or results.key_shown
        or open_streams
        or busy
    )
    return results, summary, failed


def markdown(results: Results, summary: dict[str, str]) -> str:
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in summary.items()]
    columns = sorted({outcome for counts in results.by_fault.values() for outcome in counts})
    lines += ["", "| fault | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for label in sorted(results.by_fault):
        counts = results.by_fault[label]
        lines.append(f"| {label} | " + " | ".join(str(counts[c] or "") for c in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="streams in all")
    parser.add_argument("--concurrency", type=int, default=16, help="streams at a time")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random plans")
    parser.add_argument(
        "--hang-after", type=float, default=30.0, metavar="SECONDS", help="a stream's limit"
    )
    parser.add_argument("--verbose", action="store_true", help="show ttstream's warnings")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.concurrency < 1:
        parser.error("--streams and --concurrency must be at least 1")
    if not args.verbose:  # retries and reconnections are expected here by the hundred
        logging.getLogger("ttstream").setLevel(logging.ERROR)
    results, summary, failed = anyio.run(soak, args, backend=args.backend)
    print(markdown(results, summary))
    for line in results.untyped:
        print(f"untyped: {line}")
    for line in results.errors_after_completed[:5]:
        print(f"error after a Completed: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
