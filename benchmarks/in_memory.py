"""In memory, stdlib base64 only (issue 22, item 2): ttstream against httpx-sse + json +
base64 and against the floor, and the realistic loop's peak memory.

``python benchmarks/in_memory.py [--rounds N] [--image-bytes N] [--json FILE]``

The stream of ``run_all.py``'s a (3 previews + final, 2 MB images, 10.7 MB) is served by
a mock transport in 64 KiB chunks; ``--image-bytes 2000`` makes the images that small,
which leaves what each client costs per request and per event rather than per byte (the
peak column then says little: fixed allocations outweigh such events). Contenders,
alternating in one process (A B C D, B C D A, ...), binascii for every one of them:

- ttstream (decoded on arrival, ``ttstream._base64.set_backend("binascii")``);
- httpx-sse + json + base64 (over httpx2's mock transport);
- the floor: the body read through the same mock transport, then one ``b64decode`` per
  image of its pre-split base64 (the work no client of this body can avoid);
- base64 alone (the pre-split base64 decoded, no body read), for reference.

Runs twice, each in a child process with glibc's allocator pinned as in ``run_all.py``
(fresh memory, warm heap). Ratios are medians of the ratios within each round. Peak
memory: ``tracemalloc`` over one whole stream of ``async for event in stream:
n += len(event.image_bytes)``, divided by the largest event's size on the wire.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
from _peers import FLOOR_B64, FLOOR_READ, HTTPX_SSE, TT_STDLIB, in_memory_peers
from _workload import MB, four_events
from run_all import REGIMES, alternate, paired_ratio, traced_peak

NAMES = [TT_STDLIB, HTTPX_SSE, FLOOR_READ, FLOOR_B64]
TIMES = "\N{MULTIPLICATION SIGN}"


async def child(rounds: int, image_bytes: int) -> None:
    stream = four_events(image_bytes)
    peers = in_memory_peers(stream, NAMES)
    timed = await alternate(peers, decode=True, rounds=rounds, expected=stream.image_bytes)
    summary = {
        name: {
            "median_ms": t.median * 1e3,
            "mb_per_s": len(stream.body) / t.median / MB,
            "vs_httpx_sse": paired_ratio(timed, HTTPX_SSE, name),
            "vs_floor": paired_ratio(timed, name, FLOOR_READ),
        }
        for name, t in timed.items()
    }
    for peer in peers[:2]:
        peak = await traced_peak(lambda peer=peer: peer.run(True))
        summary[peer.name]["peak_ratio"] = peak / stream.largest_event
    for peer in peers:
        await peer.aclose()
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--image-bytes", type=int, default=2_000_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        anyio.run(child, args.rounds, args.image_bytes)
        return
    results = {}
    for regime, variables in REGIMES.items():
        command = [
            sys.executable,
            __file__,
            "--child",
            f"--rounds={args.rounds}",
            f"--image-bytes={args.image_bytes}",
        ]
        env = {**os.environ, **variables}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            sys.exit(f"ABORT ({regime}):\n{done.stderr}")
        summary = json.loads(done.stdout.splitlines()[-1])
        results[regime] = summary
        print(f"\n{regime}:\n")
        print(
            f"| Client | Median (ms) | MB/s | {TIMES} httpx-sse | time {TIMES} the floor "
            "| Peak / event |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for name, s in summary.items():
            peak = f"{s['peak_ratio']:.2f}" if "peak_ratio" in s else ""
            print(
                f"| {name} | {s['median_ms']:.3g} | {s['mb_per_s']:.0f} "
                f"| {s['vs_httpx_sse']:.2f} | {s['vs_floor']:.2f} | {peak} |"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
