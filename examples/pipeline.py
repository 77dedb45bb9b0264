"""A batch pipeline: many prompts, a few at a time, every image on disk, a summary.

    python examples/pipeline.py                          # 8 built-in prompts
    python examples/pipeline.py --prompts prompts.txt    # one prompt per line
    python examples/pipeline.py --concurrency 3 --out out/ --size 1024x1024

At most ``--concurrency`` generations run at once (an ``anyio.CapacityLimiter``). Each is
fanned out with ``pump`` to a ``FileSink``, which writes every preview and the final
image to ``--out`` as they arrive, and to a counter of previews; each final image also
gets a thumbnail (Pillow's ``Image.thumbnail``, at most 256x256) next to it. A failed
prompt is reported in the summary without stopping the others.

With ``TTAPI_API_KEY`` or ``OPENAI_API_KEY`` set it uses the real API (and is billed);
otherwise it starts the built-in emulator in-process.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import time
from pathlib import Path

import anyio
import attrs
from PIL import Image

import ttstream
from ttstream.emulator import api_or_emulator
from ttstream.sinks import CallbackSink, FileSink, pump

MODEL = "gpt-image-2"
PROMPTS = [
    "a lighthouse at dusk",
    "a red fox in the snow",
    "a watercolour map of an imaginary island",
    "a bowl of ramen, studio lighting",
    "a paper boat on a rainy street",
    "an owl reading a book by candlelight",
    "a cactus wearing sunglasses",
    "the skyline of a city on Mars",
]
THUMBNAIL = (256, 256)


@attrs.define
class Result:
    """One prompt's outcome, for the summary."""

    prompt: str
    previews: int = 0
    size: str = ""
    tokens: int | None = None
    seconds: float = 0.0
    files: list[Path] = attrs.field(factory=list)
    error: str | None = None


def slug(prompt: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", prompt.lower()))[:40].strip("-") or "image"


def save_thumbnail(image_bytes: bytes, path: Path) -> Path:
    """Writes a copy of the image scaled to fit ``THUMBNAIL``, aspect ratio kept."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        image.thumbnail(THUMBNAIL)
        image.save(path)
    return path


async def run_one(
    client: ttstream.AsyncClient,
    limiter: anyio.CapacityLimiter,
    number: int,
    result: Result,
    args: argparse.Namespace,
) -> None:
    prompt = result.prompt
    stem = f"{number:02d}-{slug(prompt)}"
    files = FileSink(args.out, stem=stem)

    def count(item: ttstream.StreamItem) -> None:
        if isinstance(item, ttstream.PartialImage):
            result.previews += 1

    async with limiter:
        started = time.monotonic()
        try:
            stream = client.generate(
                prompt, model=MODEL, size=args.size, partial_images=args.partial_images
            )
            completed = await pump(stream, files, CallbackSink(count))
            for final in completed:
                thumbnail = files.directory / f"{stem}-thumb.png"
                await anyio.to_thread.run_sync(save_thumbnail, final.image_bytes, thumbnail)
                result.files.append(thumbnail)
                result.size = final.size or ""
                result.tokens = final.usage.total_tokens if final.usage else None
        except ttstream.TTStreamError as exc:
            result.error = str(exc)
        finally:
            result.seconds = time.monotonic() - started
            result.files[:0] = files.written
    status = "failed" if result.error else f"done in {result.seconds:.1f}s"
    print(f"[{number:2d}] {status}: {prompt}", flush=True)


async def run(
    args: argparse.Namespace, prompts: list[str], api_key: str | None, base_url: str | None
) -> int:
    limiter = anyio.CapacityLimiter(args.concurrency)
    results = [Result(prompt) for prompt in prompts]
    started = time.monotonic()
    async with (
        ttstream.AsyncClient(api_key, base_url=base_url) as client,
        anyio.create_task_group() as tasks,
    ):
        for number, result in enumerate(results, start=1):
            tasks.start_soon(run_one, client, limiter, number, result, args)
    print_summary(results, time.monotonic() - started, args.out)
    return 1 if any(result.error for result in results) else 0


def print_summary(results: list[Result], elapsed: float, out: Path) -> None:
    width = max(len("prompt"), *(min(len(r.prompt), 44) for r in results))
    print()
    print(f"{'prompt':<{width}}  previews  final size   tokens  seconds")
    print(f"{'-' * width}  --------  ----------  -------  -------")
    for r in results:
        prompt = r.prompt if len(r.prompt) <= 44 else r.prompt[:43] + "…"
        if r.error:
            print(f"{prompt:<{width}}  error: {r.error}")
            continue
        tokens = "" if r.tokens is None else str(r.tokens)
        print(f"{prompt:<{width}}  {r.previews:>8}  {r.size:>10}  {tokens:>7}  {r.seconds:>7.1f}")
    files = sum(len(r.files) for r in results)
    print(f"\n{len(results)} prompts in {elapsed:.1f}s; {files} files in {out}/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=Path, help="a text file, one prompt per line")
    parser.add_argument("--concurrency", type=int, default=3, help="generations at once")
    parser.add_argument("--out", type=Path, default=Path("out"), help="default out/")
    parser.add_argument(
        "--size", default="1024x1024", choices=("1024x1024", "1536x1024", "1024x1536", "auto")
    )
    parser.add_argument("--partial-images", type=int, default=2, help="previews, 0 to 3")
    args = parser.parse_args()
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    prompts = PROMPTS
    if args.prompts:
        lines = args.prompts.read_text(encoding="utf-8").splitlines()
        prompts = [line.strip() for line in lines if line.strip()]
        if not prompts:
            parser.error(f"{args.prompts} holds no prompt")
    try:
        with api_or_emulator(step_delay=0.5) as (api_key, base_url):
            return anyio.run(run, args, prompts, api_key, base_url)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
