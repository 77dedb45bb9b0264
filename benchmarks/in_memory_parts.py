"""Where ttstream's time goes in memory, against the floor (issue 22, item 5: the profile
behind the warm-heap miss of ``in_memory.py``).

``python benchmarks/in_memory_parts.py [--rounds N]``

Runs in a child process with glibc's allocator pinned as ``in_memory.py``'s "warm heap"
(``--fresh``: its "fresh memory"), binascii for every base64 call, on the stream of
``in_memory.py`` (3 previews + final, 2 MB images, 64 KiB chunks). Three tables:

1. **Decoding alone**, the same base64 bytes, rounds alternating: the floor's
   ``base64.b64decode`` per image (of the image's text, already out of its JSON),
   against ``binascii.a2b_base64`` per chunk of the body (as ttstream decodes on
   arrival) keeping nothing, writing into a buffer made the image's size in advance
   (ttstream's way), appending to a growing buffer, or joining the pieces at the end.
2. **The SSE decoder's own work**: ``SSEDecoder`` with the image fast path over the same
   chunks, its base64 calls answered from a recording of the real ones, so that what is
   timed is everything but ``a2b_base64``: Python, the buffer's zeroing and the copies.
3. **The whole stream by layer**: ``ImageStream`` over the mock transport, with a clock
   around each layer's entry points (their own cost, about 1 µs per call, included).
   Then the cost per event of ``parse_event`` and ``fingerprint`` called again on an
   event already in hand (hot caches), against their share in the stream.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import inspect
import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
from _peers import FLOOR_READ, TT_STDLIB, in_memory_peers
from _workload import CHUNK, Stream, four_events
from run_all import REGIMES

import ttstream
from ttstream import _base64
from ttstream._eventsource import EventSource
from ttstream._interpret import ImagesInterpreter
from ttstream._reconnect import Reconnection
from ttstream.events import IMAGE_SIZES, ImageLineHook, parse_event
from ttstream.sse import SSEDecoder, fingerprint

MAX = 64 * 1024 * 1024
TIMES = "\N{MULTIPLICATION SIGN}"


def image_spans(stream: Stream) -> list[tuple[int, int]]:
    """Where each image's base64 lies in the body."""
    spans, at = [], 0
    for b64 in stream.b64s:
        start = stream.body.index(b64[:64].encode(), at)
        spans.append((start, start + len(b64)))
        at = start + len(b64)
    return spans


def per_chunk(stream: Stream, keep: str) -> Callable[[], int]:
    """``a2b_base64`` of each image's base64, cut where the body's chunks cut it (0 to 3
    bytes carried to the next chunk), the output kept as ``keep`` says."""
    chunks, spans = stream.chunks(CHUNK), image_spans(stream)
    a2b = binascii.a2b_base64

    def run() -> int:
        total = 0
        for start, end in spans:
            size = (end - start) // 4 * 3
            out = io.BytesIO(bytes(size)) if keep == "sized" else io.BytesIO()
            pieces: list[bytes] = []
            carry, at = b"", start
            while at < end:
                index, offset = divmod(at, CHUNK)
                stop = min(CHUNK, end - index * CHUNK)
                with memoryview(chunks[index]) as view:
                    data = view[offset:stop]
                    fill = -len(carry) % 4
                    parts = [a2b(carry + bytes(data[:fill]))] if carry else []
                    aligned = fill + (len(data) - fill) // 4 * 4
                    parts.append(a2b(data[fill:aligned]))
                    carry = bytes(data[aligned:])
                    data.release()
                for part in parts:
                    if keep == "nothing":
                        total += len(part)
                    elif keep == "joined":
                        pieces.append(part)
                    else:
                        out.write(part)
                at = index * CHUNK + stop
            if keep == "joined":
                total += len(b"".join(pieces))
            elif keep != "nothing":
                out.truncate(out.tell())
                total += len(out.getvalue())
        return total

    return run


def floor_decode(stream: Stream) -> Callable[[], int]:
    """The floor's decoding: ``base64.b64decode`` of each image's text; answers the
    bytes decoded."""
    return lambda: sum(len(base64.b64decode(b64)) for b64 in stream.b64s)


def alternate(contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds of each contender, rounds rotating the order."""
    names = list(contenders)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds + 1):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            contenders[name]()
            if round_:  # the first round warms up
                seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in seconds.items()}


def decoding_alone(stream: Stream, rounds: int) -> None:
    """Table 1: milliseconds per stream (median of ``rounds``) of each way of decoding
    and keeping the 4 images, its ratio to the floor, and ms over keeping nothing."""
    contenders = {
        "floor: b64decode per image": floor_decode(stream),
        "a2b_base64 per chunk, nothing kept": per_chunk(stream, "nothing"),
        "per chunk, into a buffer sized in advance (ttstream)": per_chunk(stream, "sized"),
        "per chunk, appended to a growing buffer": per_chunk(stream, "appended"),
        "per chunk, pieces joined at the end": per_chunk(stream, "joined"),
    }
    expected = stream.image_bytes
    for name, run in contenders.items():
        if run() != expected:
            sys.exit(f"ABORT: {name} decoded the wrong number of bytes")
    medians = alternate(contenders, rounds)
    floor = medians["floor: b64decode per image"]
    nothing = medians["a2b_base64 per chunk, nothing kept"]
    print("\n1. Decoding alone (4 images, 8 MB decoded):\n")
    print(f"| | ms | {TIMES} the floor | ms over nothing kept |\n|---|---:|---:|---:|")
    for name, seconds in medians.items():
        over = (seconds - nothing) * 1e3
        print(f"| {name} | {seconds * 1e3:.2f} | {seconds / floor:.3f} | {over:+.2f} |")


def decoder_without_base64(stream: Stream, rounds: int) -> None:
    """Table 2: milliseconds per stream (median of ``rounds``) of the SSE decoder with
    the image fast path over the stream's chunks, each base64 call answered from a
    recording of the real ones, in the same order (checked after every round)."""
    chunks = stream.chunks(CHUNK)
    codec = _base64.BINASCII
    tape: list[bytes | Exception] = []
    at = 0

    def record(run: Any) -> bytes:
        try:
            out = binascii.a2b_base64(run)
        except (binascii.Error, ValueError) as exc:
            tape.append(exc)
            raise
        tape.append(out)
        return out

    def replay(run: Any) -> bytes:
        nonlocal at
        out = tape[at]
        at += 1
        if isinstance(out, Exception):
            raise out
        return out

    def decode() -> int:
        nonlocal at
        at = 0
        hook = ImageLineHook(("b64_json",), shape="parts", max_event_bytes=MAX)
        decoder = SSEDecoder(MAX, line_hook=hook)
        return sum(len(decoder.feed(chunk)) for chunk in chunks)

    def replayed() -> int:
        events = decode()
        if at != len(tape):
            sys.exit(f"ABORT: the decoder made {at} base64 calls, the recording {len(tape)}")
        return events

    real = codec._decode
    codec._decode = record  # type: ignore[method-assign]
    try:
        events = decode()
        codec._decode = replay  # type: ignore[method-assign]
        seconds = alternate({"replayed": replayed}, rounds)["replayed"]
    finally:
        codec._decode = real  # type: ignore[method-assign]
    assert events == len(stream.b64s)
    print("\n2. The SSE decoder with the image fast path, base64 calls replayed:\n")
    print(f"{seconds * 1e3:.2f} ms per stream ({len(tape)} base64 calls, {len(chunks)} chunks)")


class Clocks:
    """Seconds spent inside wrapped methods, by name."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.undo: list[tuple[type, str, Any]] = []

    def wrap(self, cls: type, name: str, label: str) -> None:
        original = getattr(cls, name)
        spent = self.spent
        spent[label] = 0.0
        self.undo.append((cls, name, original))
        clock = time.perf_counter
        if inspect.iscoroutinefunction(original):

            async def timed(*args: Any, **kwargs: Any) -> Any:
                start = clock()
                try:
                    return await original(*args, **kwargs)
                finally:
                    spent[label] += clock() - start

        else:

            def timed(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                start = clock()
                try:
                    return original(*args, **kwargs)
                finally:
                    spent[label] += clock() - start

        setattr(cls, name, timed)

    def restore(self) -> None:
        for cls, name, original in reversed(self.undo):
            setattr(cls, name, original)


async def by_layer(stream: Stream, rounds: int) -> None:
    """Table 3: mean milliseconds per stream of the whole ttstream stream and of the
    floor (rounds alternating which goes first), and inside each wrapped layer; then
    microseconds per event of ``parse_event`` and ``fingerprint`` on events in hand."""
    peers = in_memory_peers(stream, [TT_STDLIB, FLOOR_READ])
    tt, floor = peers
    for _ in range(3):
        await tt.run(True)
        await floor.run(True)
    clocks = Clocks()
    clocks.wrap(ttstream.ImageStream, "__aenter__", "ImageStream.__aenter__ (the request)")
    clocks.wrap(ttstream.ImageStream, "__anext__", "ImageStream.__anext__")
    clocks.wrap(ttstream.ImageStream, "aclose", "ImageStream.aclose")
    clocks.wrap(EventSource, "__anext__", "EventSource.__anext__")
    clocks.wrap(EventSource, "_read", "EventSource._read (chunks in, events out)")
    clocks.wrap(SSEDecoder, "feed", "SSEDecoder.feed")
    clocks.wrap(_base64.Codec, "decode_run", "Codec.decode_run (a2b_base64)")
    clocks.wrap(ImagesInterpreter, "handle", "ImagesInterpreter.handle (parse_event)")
    clocks.wrap(Reconnection, "deliver", "Reconnection.deliver (fingerprint)")
    spent = {tt.name: 0.0, floor.name: 0.0}
    try:
        for round_ in range(rounds):
            for peer in (tt, floor) if round_ % 2 else (floor, tt):
                start = time.perf_counter()
                await peer.run(True)
                spent[peer.name] += time.perf_counter() - start
    finally:
        clocks.restore()
        for peer in peers:
            await peer.aclose()
    print("\n3. The whole stream by layer (each layer includes those below it):\n")
    print(
        f"ttstream {spent[tt.name] / rounds * 1e3:.2f} ms per stream, the floor "
        f"{spent[floor.name] / rounds * 1e3:.2f} ms (means); inside ttstream's:\n"
    )
    print("| Layer | ms per stream |\n|---|---:|")
    for label, seconds in clocks.spent.items():
        print(f"| {label} | {seconds / rounds * 1e3:.3f} |")

    decoder = SSEDecoder(MAX, line_hook=ImageLineHook(("b64_json",)))
    events = [event for chunk in stream.chunks(CHUNK) for event in decoder.feed(chunk)]
    hot = {
        "parse_event (in ImagesInterpreter.handle)": lambda: [parse_event(e) for e in events],
        "fingerprint(whole=False) (in Reconnection.deliver)": lambda: [
            fingerprint(e, whole=False) for e in events
        ],
    }
    print("\nThose layers' main call on the events again, in a loop (µs per event):\n")
    for name, run in hot.items():
        seconds = alternate({name: run}, 200)[name]
        print(f"- {name}: {seconds / len(events) * 1e6:.1f}")


async def child(rounds: int) -> None:
    """The three tables, binascii for every base64 call."""
    _base64.set_backend("binascii")
    IMAGE_SIZES.clear()
    stream = four_events(2_000_000)
    decoding_alone(stream, rounds)
    decoder_without_base64(stream, rounds * 4)
    await by_layer(stream, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--fresh", action="store_true", help="fresh memory, not warm heap")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        anyio.run(child, args.rounds)
        return
    regime = "fresh memory" if args.fresh else "warm heap"
    print(f"{regime}: {' '.join(f'{k}={v}' for k, v in REGIMES[regime].items())}")
    command = [sys.executable, __file__, "--child", f"--rounds={args.rounds}"]
    done = subprocess.run(command, env={**os.environ, **REGIMES[regime]}, check=False)
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
