"""The ``ttstream`` command: ``generate``, ``edit`` and ``emulator``.

``generate`` and ``edit`` write every preview and the final image into ``--out`` as they
arrive and print each file's path. With no API key (``TTAPI_API_KEY``,
``OPENAI_API_KEY`` or ``--api-key``) and no ``--base-url`` they start the built-in
emulator on a free loopback port and say so. Errors end with one line on stderr and
exit status 1 (2 for a command-line mistake), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import anyio

from ._exceptions import TTStreamError
from ._reconnect import Reconnecting
from .client import DEFAULT_MODEL, AsyncClient
from .events import Completed, PartialImage
from .sinks import FileSink

__all__ = ["main"]

_EMULATOR_STEP_DELAY = 0.6  # seconds between events, so that previews visibly stream in


def _slug(prompt: str) -> str:
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    return "-".join(words)[:48].strip("-") or "image"


def _image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="what to draw")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"default {DEFAULT_MODEL}")
    parser.add_argument("--size", help="auto, 1024x1024, 1536x1024, 1024x1536, ...")
    parser.add_argument("--quality", help="auto, low, medium, high (dall-e-3: standard, hd)")
    parser.add_argument("--background", help="auto, opaque, transparent")
    parser.add_argument("--output-format", help="png, jpeg, webp")
    parser.add_argument("--partial-images", type=int, help="previews to stream, 0 to 3")
    parser.add_argument("--n", type=int, help="number of images, 1 to 10")
    parser.add_argument("--out", default="ttstream-out", help="directory for the files")
    parser.add_argument("--base-url", help="API root, e.g. https://api.openai.com/v1")
    parser.add_argument(
        "--api-key", help="default: TTAPI_API_KEY, else OPENAI_API_KEY, else the emulator"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttstream", description="Stream images from the TTAPI / OpenAI Images API."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="generate an image from a prompt")
    _image_options(generate)
    edit = commands.add_parser("edit", help="edit one or more images with a prompt")
    _image_options(edit)
    edit.add_argument(
        "--image",
        nargs="+",
        required=True,
        metavar="FILE",
        help="input images (put the prompt before --image: this option takes every file after it)",
    )
    edit.add_argument("--mask", metavar="FILE", help="mask image (PNG with alpha)")
    commands.add_parser("emulator", help="run the API emulator", add_help=False)
    return parser


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params = {
        "size": args.size,
        "quality": args.quality,
        "background": args.background,
        "output_format": args.output_format,
        "partial_images": args.partial_images,
        "n": args.n,
    }
    if args.model.startswith("dall-e"):
        params["response_format"] = "b64_json"  # files are written from the inline image
    return {name: value for name, value in params.items() if value is not None}


@contextlib.contextmanager
def _service(args: argparse.Namespace) -> Iterator[tuple[str | None, str | None]]:
    """Yields ``(api_key, base_url)``: the caller's, or an in-process emulator's."""
    api_key = args.api_key or os.environ.get("TTAPI_API_KEY") or os.environ.get("OPENAI_API_KEY")
    if api_key or args.base_url:
        yield args.api_key, args.base_url
        return
    try:
        from .emulator import api_or_emulator
    except ImportError as exc:
        raise TTStreamError(
            "no API key set and the emulator is not installed: "
            "set TTAPI_API_KEY or OPENAI_API_KEY, or pip install 'ttstream[emulator]'"
        ) from exc
    with api_or_emulator(step_delay=_EMULATOR_STEP_DELAY) as service:
        yield service


async def _run(args: argparse.Namespace, api_key: str | None, base_url: str | None) -> None:
    sink = FileSink(args.out, stem=f"{_slug(args.prompt)}-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.monotonic()
    images_done = 0
    async with AsyncClient(api_key, base_url=base_url) as client:
        params = _params(args)
        if args.command == "edit":
            stream = client.edit(
                args.prompt, images=args.image, mask=args.mask, model=args.model, **params
            )
        else:
            stream = client.generate(args.prompt, model=args.model, **params)
        verb = "Editing" if args.command == "edit" else "Generating"
        print(f"{verb} with {args.model}...", flush=True)
        async with stream:
            async for event in stream:
                if isinstance(event, Reconnecting):
                    what = "a new generation" if event.regenerating else "resuming"
                    print(f"connection lost; {what} in {event.delay:.1f}s ({event.reason})")
                    continue
                await sink.send(event)
                path, seconds = sink.written[-1], time.monotonic() - started
                image = f"image {images_done + 1} " if (args.n or 1) > 1 else ""
                if isinstance(event, PartialImage):
                    label = f"{image}preview #{event.index}"
                else:
                    label = f"{image}final image"
                    images_done += 1
                size = f"{len(event.image_bytes) / 1024:,.0f} KiB"
                shape = event.size or args.size or ""
                print(f"[{seconds:5.1f}s] {label:<20} {shape:>9} {size:>10}  -> {path}")
                if isinstance(event, Completed) and event.usage is not None:
                    print(f"         tokens used: {event.usage.total_tokens}")
    await sink.aclose()
    print(f"Done: {len(sink.written)} file(s) in {sink.directory}/")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        from .emulator import main as emulator_main

        return emulator_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        with _service(args) as (api_key, base_url):
            anyio.run(_run, args, api_key, base_url)
    except (TTStreamError, OSError) as exc:
        print(f"ttstream: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ttstream: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
