"""Benchmarks: ttstream against httpx-sse + json + base64 and the official openai SDK.

``python benchmarks/run_all.py [--quick] [--rounds N] [--only abcefg] [--json FILE]``
prints one markdown table per benchmark and draws the chart of throughput and memory by
event size (``benchmarks/by_event_size.png``; ``--chart PATH`` elsewhere). ttstream runs
in variants: as installed (decoded on arrival, pybase64), with the stdlib's base64
(binascii), in text mode (``decode_images=False`` and binascii: the path before decoding
on arrival), and on loopback with aiohttp's transport (``ttstream[aiohttp]``).

a. in memory, every image decoded: each client over a mock transport that serves the
   same stream in 64 KiB chunks, against the floors (json + base64 of pre-split events,
   and base64 alone);
b. the relay path: the same stream, base64 kept, nothing decoded;
   a and b run twice, each in a child process with glibc's allocator pinned: "fresh
   memory" (every block of 128 KiB or more is new mmap'd memory, paid in page faults)
   and "warm heap" (freed memory is kept for reuse: no page faults);
c. over loopback, from a local server in another process, with no delays; then again
   with 256 KiB httpcore reads (httpcore's read size patched, an experiment);
d. the 200-stream benchmark moved to ``loopback.py`` (issue 22: every contender in a
   process of its own, at 1 and 200 streams, against a hand-written aiohttp client);
e. one stream of a single 1, 4, 16 and 64 MB event, and the realistic stream of 3
   previews + final: throughput, and peak memory traced by tracemalloc in separate,
   untimed runs of ``async for event in stream: n += len(event.image_bytes)``;
f. from the last chunk of a 2.7 MB event to its decoded image in hand;
g. SSERelay's frame for a 2 MB image, against the frame built before (json.dumps of the
   data URL).

Timed runs alternate between the clients (A B C, B C A, ...) in one process on asyncio
(anyio), after one untimed warm-up run each; tables show the best and the median.
"""

from __future__ import annotations

import argparse
import base64
import codecs
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import httpcore2
import httpx2
from _peers import (
    FLOOR_B64,
    FLOOR_JSON,
    HTTPX_SSE,
    OPENAI,
    TT_AIOHTTP,
    TT_STDLIB,
    TT_TODAY,
    TTSTREAM,
    Peer,
    in_memory_peers,
    network_peer,
    sdk_httpcore,
    sdk_httpx,
)
from _workload import MB, Stream, four_events, one_event
from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder
from httpx_sse._decoders import SSELineDecoder

from ttstream import _base64, parse_event
from ttstream._browser.frames import frame_of as relay_frame
from ttstream._browser.items import item_metadata
from ttstream.events import image_decoder
from ttstream.sse import SSEDecoder

HERE = Path(__file__).resolve().parent
TIMES = "\N{MULTIPLICATION SIGN}"
CLIENTS = [TTSTREAM, HTTPX_SSE, OPENAI]
VARIANTS = [TTSTREAM, TT_STDLIB, TT_TODAY]  # in memory: the base64 backend and the mode
IN_MEMORY = [*VARIANTS, HTTPX_SSE, OPENAI]
NETWORK = [TTSTREAM, TT_AIOHTTP, TT_STDLIB, TT_TODAY, HTTPX_SSE, OPENAI]
# glibc's allocator, pinned through its environment variables (read at process start).
REGIMES = {
    "fresh memory": {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)},
    "warm heap": {
        "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
        "MALLOC_TRIM_THRESHOLD_": str(1024**3),
        "MALLOC_TOP_PAD_": str(64 * 1024 * 1024),
    },
}
Results = dict[str, Any]


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    faults: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)


async def check(peer: Peer, decode: bool, expected: int) -> None:
    handled = await peer.run(decode)
    if handled != expected:
        sys.exit(f"ABORT: {peer.name} handled {handled} bytes, expected {expected}")


async def alternate(
    peers: Sequence[Peer], *, decode: bool, rounds: int, expected: int
) -> dict[str, Timing]:
    """Times ``rounds`` runs of each peer, rotating the order every round."""
    for peer in peers:  # warm-up: imports, connection pools, first-use caches
        await check(peer, decode, expected)
    timings = {peer.name: Timing() for peer in peers}
    for round_ in range(rounds):
        shift = round_ % len(peers)
        for peer in [*peers[shift:], *peers[:shift]]:
            gc.collect()
            faults, start = minor_faults(), time.perf_counter()
            handled = await peer.run(decode)
            elapsed = time.perf_counter() - start
            timings[peer.name].faults.append(minor_faults() - faults)
            timings[peer.name].seconds.append(elapsed)
            if handled != expected:
                sys.exit(f"ABORT: {peer.name} handled {handled} bytes, expected {expected}")
    return timings


def paired_ratio(timings: dict[str, Timing], name: str, reference: str) -> float:
    """The median over rounds of ``name``'s time / ``reference``'s time in the same round:
    runs next to each other share the machine's mood, so the ratio is steadier than the
    ratio of the medians."""
    pairs = zip(timings[name].seconds, timings[reference].seconds, strict=True)
    return statistics.median(this / that for this, that in pairs)


def summarize(timings: dict[str, Timing], size: int, floor: str | None = None) -> Results:
    return {
        name: {
            "best_ms": t.best * 1e3,
            "median_ms": t.median * 1e3,
            "mb_per_s": size / t.median / MB,
            "speedup": paired_ratio(timings, HTTPX_SSE, name),
            "vs_sdk": paired_ratio(timings, OPENAI, name),
            "page_faults": statistics.median(t.faults),
            **({} if floor is None else {"vs_floor": paired_ratio(timings, name, floor)}),
        }
        for name, t in timings.items()
    }


def timing_table(summary: Results, floor: str | None = None) -> str:
    head = (
        f"| Client | Best (ms) | Median (ms) | MB/s | {TIMES} faster than httpx-sse "
        f"| {TIMES} faster than the SDK | Page faults |"
    )
    if floor is not None:
        head += f" {TIMES} {floor.removeprefix('floor: ')} |"
    rows = [head, "|---" + "|---:" * (head.count("|") - 2) + "|"]
    for name, s in summary.items():
        row = (
            f"| {name} | {s['best_ms']:.1f} | {s['median_ms']:.1f} | {s['mb_per_s']:.0f} "
            f"| {s['speedup']:.2f} | {s['vs_sdk']:.2f} | {s['page_faults']:.0f} |"
        )
        if floor is not None:
            row += f" {s['vs_floor']:.2f} |"
        rows.append(row)
    return "\n".join(rows)


# a, b: in memory, in a child process per allocator regime ------------------------------


async def child_in_memory(image_bytes: int, rounds: int) -> None:
    """a and b in this process; prints one JSON line."""
    stream = four_events(image_bytes)
    peers = in_memory_peers(stream, [*IN_MEMORY, FLOOR_JSON, FLOOR_B64])
    size = len(stream.body)
    timed = await alternate(peers, decode=True, rounds=rounds, expected=stream.image_bytes)
    decoded = summarize(timed, size, floor=FLOOR_B64)
    b64_chars = sum(len(b64) for b64 in stream.b64s)
    timed = await alternate(peers[:-1], decode=False, rounds=rounds, expected=b64_chars)
    timed["reference: json.loads of pre-split events"] = timed.pop(FLOOR_JSON)
    relay = summarize(timed, size)
    for peer in peers:
        await peer.aclose()
    print(json.dumps({"a": decoded, "b": relay}))


def bench_in_memory(stream: Stream, image_bytes: int, rounds: int, results: Results) -> None:
    by_regime = {}
    for regime, variables in REGIMES.items():
        spec = json.dumps({"image_bytes": image_bytes, "rounds": rounds})
        command = [sys.executable, __file__, "--child-in-memory", spec]
        env = {**os.environ, **variables}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            sys.exit(f"ABORT: the in-memory benchmark failed ({regime}):\n{done.stderr}")
        by_regime[regime] = json.loads(done.stdout.splitlines()[-1])
    settings = {
        regime: " ".join(f"{k}={v}" for k, v in env.items()) for regime, env in REGIMES.items()
    }
    for key, title, floor in (
        ("a", f"a. In memory, every image decoded: {stream.name}, 64 KiB chunks", FLOOR_B64),
        ("b", f"b. Relay path, base64 kept, nothing decoded: {stream.name}", None),
    ):
        results[key] = {}
        for regime, summary in by_regime.items():
            print(f"\n### {title}; {regime} (`{settings[regime]}`)\n")
            print(timing_table(summary[key], floor))
            results[key][regime] = summary[key]


# c, d: loopback -------------------------------------------------------------------------


class Server:
    """benchmarks/_sse_server.py in a child process."""

    def __init__(self, image_bytes: int) -> None:
        command = [sys.executable, str(HERE / "_sse_server.py"), f"--image-bytes={image_bytes}"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            self.process.kill()
            sys.exit(f"ABORT: the benchmark server did not start ({port!r})")
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root}/v1"

    def marks(self) -> dict[tuple[str, int], float]:
        answer = httpx2.get(f"{self.root}/marks", timeout=60).json()
        return {(tag, index): when for tag, index, when in answer}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def set_read_size(size: int) -> None:
    """httpcore reads a socket 64 KiB at a time (a class attribute); anyio then cuts
    each 256 KiB that asyncio received into 64 KiB pieces, by copying."""
    httpcore2.AsyncHTTP11Connection.READ_NUM_BYTES = size
    sdk_httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = size


async def bench_loopback(stream: Stream, server: Server, rounds: int, results: Results) -> None:
    peers = [network_peer(name, server.base_url, connections=4) for name in NETWORK]
    for read_size, title in (
        (64 * 1024, f"c. Over loopback, every image decoded: {stream.name}"),
        (256 * 1024, "c'. The same with 256 KiB httpcore reads (patched: an experiment)"),
    ):
        set_read_size(read_size)
        print(f"\n### {title}\n")
        timed = await alternate(peers, decode=True, rounds=rounds, expected=stream.image_bytes)
        summary = summarize(timed, len(stream.body))
        print(timing_table(summary))
        results["c" if read_size == 64 * 1024 else "c'"] = summary
    set_read_size(64 * 1024)
    for peer in peers:
        await peer.aclose()


# e: by event size -----------------------------------------------------------------------


async def bench_sizes(sizes: list[float], rounds: int, results: Results) -> None:
    print(
        "\n### e. Peak memory by event size, every image decoded: one stream of a single event,"
        " and the realistic loop (3 previews + final, 2 MB images)\n"
    )
    print(
        f"| Event | Client | Median (ms) | MB/s | {TIMES} faster than httpx-sse | Page faults "
        "| Peak MB (tracemalloc) | Peak / event size |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    by_size: Results = {}
    for mb in [*sizes, "4 events"]:
        stream = four_events(2_000_000) if mb == "4 events" else one_event(float(mb))
        peers = in_memory_peers(stream, IN_MEMORY)
        timed = await alternate(
            peers,
            decode=True,
            rounds=max(2, rounds // 3 if mb != "4 events" and float(mb) >= 16 else rounds),
            expected=stream.image_bytes,
        )
        summary = summarize(timed, len(stream.body))
        event = stream.largest_event
        for peer in peers:
            row = summary[peer.name]
            peak = await traced_peak(lambda peer=peer: peer.run(True))
            row.update(peak_mb=peak / MB, peak_ratio=peak / event)
            label = f"{event / MB:.1f} MB {'x 4' if mb == '4 events' else ''}"
            print(
                f"| {label} | {peer.name} | {row['median_ms']:.1f} "
                f"| {row['mb_per_s']:.0f} | {row['speedup']:.2f} | {row['page_faults']:.0f} "
                f"| {peak / MB:.1f} | {peak / event:.2f}{TIMES} |",
                flush=True,
            )
            await peer.aclose()
        by_size["4 events" if mb == "4 events" else f"{event / MB:.0f}"] = summary
    results["e"] = by_size


# f: from the last byte of an event to its decoded image -------------------------------


def last_byte_latency(name: str, chunks: list[bytes]) -> float:
    """Seconds from handing over the last chunk of a stream of one event to holding the
    event's decoded image, for one client variant; the chunks before are fed untimed."""
    gc.collect()
    if name == HTTPX_SSE:
        text_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        lines, decoder = SSELineDecoder(), HttpxSSEDecoder()
        for chunk in chunks[:-1]:
            for line in lines.decode(text_decoder.decode(chunk)):
                decoder.decode(line.rstrip("\n"))
        start = time.perf_counter()
        for line in lines.decode(text_decoder.decode(chunks[-1])):
            if (sse := decoder.decode(line.rstrip("\n"))) is not None:
                image = base64.b64decode(json.loads(sse.data)["b64_json"])
        return time.perf_counter() - start if image else math.nan
    previous = _base64.set_backend("binascii" if name in (TT_STDLIB, TT_TODAY) else "pybase64")
    try:
        tt = SSEDecoder() if name == TT_TODAY else image_decoder()
        for chunk in chunks[:-1]:
            tt.feed(chunk)
        start = time.perf_counter()
        (sse,) = tt.feed(chunks[-1])
        event = parse_event(sse)
        assert event is not None
        image = event.image_bytes
        return time.perf_counter() - start if image else math.nan
    finally:
        _base64.set_backend(previous.name)


def bench_latency(rounds: int, results: Results) -> None:
    stream = one_event(2.7)
    chunks = stream.chunks()
    names = [*VARIANTS, HTTPX_SSE]
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds + 1):  # the first round warms up
        shift = round_ % len(names)
        for name in [*names[shift:], *names[:shift]]:
            seconds = last_byte_latency(name, chunks)
            if round_:
                times[name].append(seconds)
    print(
        f"\n### f. Last byte to decoded image: one {stream.largest_event / MB:.1f} MB event, "
        "64 KiB chunks, in memory\n"
    )
    print("| Client | Median (ms) | Best (ms) |")
    print("|---|---:|---:|")
    summary = {}
    for name, values in times.items():
        summary[name] = {"median_ms": statistics.median(values) * 1e3, "best_ms": min(values) * 1e3}
        print(f"| {name} | {summary[name]['median_ms']:.2f} | {summary[name]['best_ms']:.2f} |")
    results["f"] = summary


# g: SSERelay's frame for one image ------------------------------------------------------


def frame_before(item: Any) -> bytes:
    """The frame as SSERelay built it before: json.dumps of the metadata and a data URL."""
    payload = item_metadata(item)
    payload["image"] = f"data:{payload['media_type']};base64,{item.b64_json}"
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"id: 1\nevent: {payload['type']}\ndata: {body}\n\n".encode()


def bench_relay_frames(rounds: int, results: Results) -> None:
    stream = one_event(2.7)
    raw = stream.body
    events = {}
    for decode_images in (True, False):
        (sse,) = (image_decoder() if decode_images else SSEDecoder()).feed(raw)
        events[decode_images] = parse_event(sse)
    variants: dict[str, Callable[[], bytes]] = {
        "before: json.dumps of the data URL (event kept as text)": lambda: frame_before(
            events[False]
        ),
        "splice, event kept as text": lambda: relay_frame(1, events[False]).data,
        "splice, event decoded on arrival, pybase64": lambda: relay_frame(1, events[True]).data,
        "splice, event decoded on arrival, binascii": lambda: relay_frame(1, events[True]).data,
    }
    expected = frame_before(events[False])
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(rounds + 1):
        for name, build in variants.items():
            previous = _base64.set_backend("binascii" if "binascii" in name else "pybase64")
            try:
                gc.collect()
                start = time.perf_counter()
                frame = build()
                seconds = time.perf_counter() - start
            finally:
                _base64.set_backend(previous.name)
            if frame != expected:
                sys.exit(f"ABORT: {name} built another frame")
            if round_:
                times[name].append(seconds)
    before = times["before: json.dumps of the data URL (event kept as text)"]
    print(f"\n### g. SSERelay's frame for one image: a {stream.largest_event / MB:.1f} MB event\n")
    print(f"| Frame | Median (ms) | {TIMES} cheaper than before |")
    print("|---|---:|---:|")
    summary = {}
    for name, values in times.items():
        ratio = statistics.median(b / v for b, v in zip(before, values, strict=True))
        summary[name] = {"median_ms": statistics.median(values) * 1e3, "vs_before": ratio}
        print(f"| {name} | {summary[name]['median_ms']:.2f} | {ratio:.1f} |")
    results["g"] = summary


async def traced_peak(run: Callable[[], Awaitable[Any]]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        await run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def draw_chart(by_size: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [size for size in by_size if size != "4 events"]
    sizes = [float(size) for size in keys]
    figure, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for name, marker in zip(IN_MEMORY, "osD^v", strict=True):
        rows = [by_size[size][name] for size in keys]
        speed.plot(sizes, [row["mb_per_s"] for row in rows], marker=marker, label=name)
        memory.plot(sizes, [row["peak_ratio"] for row in rows], marker=marker, label=name)
    memory.axhline(1.5, color="grey", linestyle="--", linewidth=1, label=f"target: 1.5{TIMES}")
    for axes in (speed, memory):
        axes.set_xscale("log", base=2)
        axes.set_xticks(sizes, [f"{size:g}" for size in sizes])
        axes.set_xlabel("event size (MB, one completed event, 64 KiB chunks)")
        axes.grid(True, alpha=0.3)
        axes.set_ylim(bottom=0)
    speed.set_ylabel("MB/s, image decoded (higher is better)")
    speed.set_title("Throughput")
    memory.set_ylabel("peak traced memory / event size (lower is better)")
    memory.set_title("Peak memory (tracemalloc)")
    memory.legend()
    figure.savefig(path, dpi=110)
    print(f"\nChart: {path}")


# main -----------------------------------------------------------------------------------


def environment() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo")
    models = [
        line.split(":", 1)[1].strip()
        for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
        if line.startswith("model name")
    ]
    cpu = models[0] if models else platform.processor()
    packages = ["ttstream", "httpx", "httpcore", "httpx-sse", "openai", "anyio"]
    if sdk_httpx.__name__ != "httpx":
        packages.insert(5, sdk_httpx.__name__)
    return [
        f"- {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Python {sys.version.split()[0]} ({platform.python_implementation()}), "
        f"{platform.platform()}, {os.cpu_count()} CPUs ({cpu})",
        "- " + ", ".join(f"{pkg} {version(pkg)}" for pkg in packages),
    ]


async def run(args: argparse.Namespace) -> Results:
    results: Results = {}
    image_bytes = 200_000 if args.quick else 2_000_000
    stream = four_events(image_bytes)
    if "a" in args.only or "b" in args.only:
        bench_in_memory(stream, image_bytes, args.rounds, results)
    if "c" in args.only:
        server = Server(image_bytes)
        try:
            await bench_loopback(stream, server, args.rounds, results)
        finally:
            server.stop()
    if "e" in args.only:
        await bench_sizes([1, 4] if args.quick else [1, 4, 16, 64], args.rounds, results)
    if "f" in args.only:
        bench_latency(args.rounds, results)
    if "g" in args.only:
        bench_relay_frames(args.rounds, results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--rounds", type=int, help="timed runs per client (default 21, quick 3)")
    parser.add_argument("--only", default="abcefg", help="benchmarks to run (default abcefg)")
    parser.add_argument("--chart", type=Path, help="where to draw the chart (needs e)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--child-in-memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_in_memory:
        spec = json.loads(args.child_in_memory)
        anyio.run(child_in_memory, spec["image_bytes"], spec["rounds"], backend="asyncio")
        return
    args.rounds = args.rounds or (3 if args.quick else 21)
    if args.chart is None and not args.quick:
        args.chart = HERE / "by_event_size.png"
    started = time.perf_counter()
    print("\n".join(environment()))
    print(
        f"- {args.rounds} timed rounds per client; MB = 10^6 bytes; ratios (ttstream speed-up "
        f"{TIMES}, {TIMES} floor) are medians of the ratios within each round"
    )
    results = anyio.run(run, args, backend="asyncio")
    if args.chart is not None and "e" in results:
        draw_chart(results["e"], args.chart)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"\nTotal run time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
