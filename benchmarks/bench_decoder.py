"""Benchmark: ttstream's SSEDecoder against httpx-sse on the same Images API streams.

``python benchmarks/bench_decoder.py [--rounds N] [--quick]``: every peer decodes the same
pre-split chunks in one process, in an order that rotates each round. Peak memory comes from
separate, untimed tracemalloc runs: one keeps every event, one drops each as it arrives."""

from __future__ import annotations

import argparse
import codecs
import collections
import gc
import json
import os
import platform
import random
import resource  # Unix only: counts the page faults of each run
import statistics
import sys
import time
import tracemalloc
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version

import httpx2
from httpx_sse import EventSource, ServerSentEvent
from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder
from httpx_sse._decoders import SSELineDecoder

from ttstream.sse import SSEDecoder

MB, MiB, KiB = 1_000_000, 1024 * 1024, 1024
TIMES = "\N{MULTIPLICATION SIGN}"
Runner = Callable[[list[bytes]], Iterator[ServerSentEvent]]
Signature = list[tuple[str, int]]  # (event type, data length) of each event


def run_ttstream(chunks: list[bytes]) -> Iterator[ServerSentEvent]:
    decoder = SSEDecoder(max_event_bytes=128 * MiB)
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()


def run_event_source(chunks: list[bytes]) -> Iterator[ServerSentEvent]:
    headers = {"content-type": "text/event-stream"}  # what httpx-sse users run
    response = httpx2.Response(200, headers=headers, content=iter(chunks))
    return EventSource(response).iter_sse()


def run_httpx_sse_decoder(chunks: list[bytes]) -> Iterator[ServerSentEvent]:
    """httpx-sse's own decoding, as ``EventSource.iter_sse`` does it, without httpx."""
    text_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    line_decoder, decoder = SSELineDecoder(), HttpxSSEDecoder()

    def lines() -> Iterator[str]:  # httpx_sse._api._iter_sse_lines, on bytes
        for chunk in chunks:
            if text := text_decoder.decode(chunk):
                yield from line_decoder.decode(text)
        if text := text_decoder.decode(b"", final=True):
            yield from line_decoder.decode(text)
        yield from line_decoder.flush()

    for line in lines():
        if (event := decoder.decode(line.rstrip("\n"))) is not None:
            yield event


PEERS: dict[str, Runner] = {
    "ttstream": run_ttstream,
    "httpx-sse (EventSource)": run_event_source,
    "httpx-sse (decoder only)": run_httpx_sse_decoder,
}
BASELINE = "httpx-sse (EventSource)"
# The other fields of an image_generation.partial_image / .completed event.
FIELDS = {"size": "1024x1024", "quality": "high", "output_format": "png", "created_at": 1700000000}


def image_event(rng: random.Random, index: int, raw_size: int, last: bool) -> tuple[bytes, str]:
    """One event of an Images API stream: its wire bytes and its data."""
    kind = "image_generation.completed" if last else "image_generation.partial_image"
    b64 = b64encode(rng.randbytes(raw_size)).decode("ascii")
    data = json.dumps({"type": kind, "b64_json": b64, "partial_image_index": index, **FIELDS})
    return f"event: {kind}\ndata: {data}\n\n".encode(), data


@dataclass
class Workload:
    name: str
    stream: bytes
    largest_event: int  # wire bytes
    expected: Signature
    chunk_size: int
    rounds: int

    def chunks(self) -> list[bytes]:
        n = self.chunk_size
        return [self.stream[i : i + n] for i in range(0, len(self.stream), n)]


def make_workloads(quick: bool, rounds: int) -> list[Workload]:
    rng = random.Random(20240611)
    image_raw, big_raw = (150_000, 3 * MiB) if quick else (2_000_000, 48 * MiB)  # base64: 4/3
    images = [image_event(rng, i, image_raw, last=i == 3) for i in range(4)]
    big = [image_event(rng, 0, big_raw, last=True)]

    def workload(name: str, events: list[tuple[bytes, str]], chunk: int, cap: int) -> Workload:
        stream, largest = b"".join(wire for wire, _ in events), max(len(w) for w, _ in events)
        expected = [(json.loads(data)["type"], len(data)) for _, data in events]
        return Workload(name, stream, largest, expected, chunk, min(rounds, cap))

    big_name = f"1 x {len(big[0][0]) / MiB:.0f} MiB event"
    return [
        workload("4 image events, 64 KiB chunks", images, 64 * KiB, rounds),
        workload("4 image events, 1 KiB chunks", images, KiB, rounds),
        workload(f"{big_name}, 64 KiB chunks", big, 64 * KiB, 5),
        workload(f"{big_name}, 1 KiB chunks", big, KiB, 3),
    ]


def time_once(runner: Runner, chunks: list[bytes]) -> tuple[float, int, Signature]:
    """Seconds and minor page faults of one run (first touches of fresh memory cost ~2 us)."""
    gc.collect()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    # A stream consumer handles each event and lets it go: keep only its signature.
    signature = [(event.event, len(event.data)) for event in runner(chunks)]
    elapsed = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return elapsed, faults, signature


def peak_memory(runner: Runner, chunks: list[bytes], keep: bool) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        events = runner(chunks)
        if keep:
            list(events)  # holds every event until the end
        else:
            collections.deque(events, maxlen=0)  # drops each event as it arrives, as timed
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bench(workload: Workload) -> list[str]:
    chunks, names = workload.chunks(), list(PEERS)
    times: dict[str, list[float]] = {name: [] for name in names}
    faults: dict[str, list[int]] = {name: [] for name in names}
    for round_ in range(workload.rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            elapsed, faulted, got = time_once(PEERS[name], chunks)
            if got != workload.expected:
                sys.exit(f"ABORT: {name} decoded {workload.name!r} wrong: {got}")
            times[name].append(elapsed)
            faults[name].append(faulted)
    median = {name: statistics.median(times[name]) for name in names}
    rows = []
    for name in names:
        kept, streamed = (peak_memory(PEERS[name], chunks, keep) for keep in (True, False))
        rows.append(
            f"| {workload.name} | {name} | {min(times[name]) * 1e3:.1f} "
            f"| {median[name] * 1e3:.1f} | {len(workload.stream) / median[name] / MB:.0f} "
            f"| {median[BASELINE] / median[name]:.2f}{TIMES} "
            f"| {statistics.median(faults[name]):.0f} | {kept / MB:.1f} "
            f"| {streamed / MB:.1f} | {streamed / workload.largest_event:.2f}{TIMES} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed runs per peer (default 7)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    started = time.perf_counter()
    print(f"- Python {sys.version.split()[0]} ({platform.python_implementation()})")
    print(f"- {platform.platform()}, {os.cpu_count()} CPUs")
    print("- " + ", ".join(f"{pkg} {version(pkg)}" for pkg in ("httpx", "httpx-sse", "ttstream")))
    print(f"- rounds: {args.rounds} (at most 5 and 3 for the big event), MB = 10^6 bytes\n")
    print(
        f"| Workload | Peer | Best (ms) | Median (ms) | MB/s | {TIMES} httpx-sse (EventSource) "
        "| Page faults | Peak MB, events kept | Peak MB, streamed | Streamed peak / largest event |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workload in make_workloads(args.quick, args.rounds):
        for row in bench(workload):
            print(row, flush=True)
    print(f"\nTotal run time: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
