"""The ``ttstream`` command: ``generate``, ``edit`` and ``emulator``.

``generate`` and ``edit`` write every preview and the final image into ``--out`` as they
arrive. On a terminal a live display (``rich``, the ``cli`` extra) shows a spinner with
the elapsed time and the bytes received, one status line per preview and a summary;
elsewhere each file's path is printed on a line of its own. No file is ever overwritten
(:class:`ttstream.sinks.FileSink`).

The key comes from ``TTAPI_API_KEY`` or ``OPENAI_API_KEY``, or from ``--api-key-file``
(``-`` reads standard input); ``--api-key`` works but shows the key to every local user
in the process list, so it warns. With no key and no ``--base-url`` the built-in
emulator runs on a free loopback port, and a line says so.

Errors end with one line on stderr, exit status 1 (2 for a command-line mistake, 130
after Ctrl-C, finished files kept), never a traceback. Text from the server is printed
through :func:`ttstream._cli_output.clean`: no terminal escapes reach the terminal.
Retry log lines go to stderr only with ``-v``.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
import attrs
import httpx2

from . import __version__
from ._azure import AZURE_KEY_VARIABLE as AZURE_KEY
from ._azure import AsyncAzureClient
from ._cli_batch import add_parser as add_batch_parser
from ._cli_batch import run as run_batch
from ._cli_output import Output, Progress, clean, make_output
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    TTStreamError,
    ValidationError,
)
from ._reconnect import Reconnecting
from .client import DEFAULT_MODEL, AsyncClient, http_url
from .events import Completed, _Image, image_of
from .sinks import FileSink

__all__ = ["main"]

_EMULATOR_STEP_DELAY = 0.6  # seconds between events, so that previews visibly stream in
_KEY_VARIABLES = ("TTAPI_API_KEY", "OPENAI_API_KEY")
_KEY_HELP = "set TTAPI_API_KEY (or OPENAI_API_KEY), or pass --api-key-file FILE (- for stdin)"
# Options passed through as the API parameter of the same name (dashes to underscores):
# name -> (metavar, help). The model's table checks the values before any request.
_TEXT_PARAMS = {
    "size": ("WxH", "auto, 1024x1024, 1536x1024, 1024x1536, ... (gpt-image-2: any WxH)"),
    "quality": ("Q", "auto, low, medium, high (newer models: xhigh, max; dall-e-3: standard, hd)"),
    "background": ("B", "auto, opaque, transparent"),
    "output_format": ("FMT", "png, jpeg, webp (newer models: gif, svg)"),
    "moderation": ("M", "auto, low"),
    "response_format": ("FMT", "b64_json, url (dall-e only; url results are downloaded)"),
    "style": ("S", "vivid, natural (dall-e-3)"),
    "complexity": ("C", "low, medium, high"),
    "safety_identifier": ("ID", "a stable id for your end user (replaces --user)"),
    "user": ("ID", "an id for your end user (deprecated alias of --safety-identifier)"),
}
_INT_PARAMS = {
    "partial_images": ("N", "previews to stream, 0 to 3"),
    "n": ("N", "number of images, 1 to 10"),
    "output_compression": ("PCT", "0 to 100 (jpeg, webp)"),
    "frame_count": ("N", "frames of a gif, 2 to 16"),
    "frame_duration_ms": ("MS", "milliseconds per gif frame"),
}
_EDIT_PARAMS = {
    "input_fidelity": ("F", "high, low: how closely the edit keeps the input's details")
}


class _UsageError(Exception):
    """A command-line mistake found after parsing: exit status 2."""


class _Failed(Exception):
    """The run failed; the message is the line for the user: exit status 1."""


def _slug(prompt: str) -> str:
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    return "-".join(words)[:48].strip("-") or "image"


def _timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _image_options(parser: argparse.ArgumentParser, extra: dict[str, tuple[str, str]]) -> None:
    parser.add_argument("prompt", help="what to draw")
    api = parser.add_argument_group("image parameters (the API's own, checked per model)")
    api.add_argument("--model", default=DEFAULT_MODEL, help=f"default {DEFAULT_MODEL}")
    for name, (metavar, text) in {**_TEXT_PARAMS, **extra}.items():
        api.add_argument(_option(name), dest=name, metavar=metavar, help=text)
    for name, (metavar, text) in _INT_PARAMS.items():
        api.add_argument(_option(name), dest=name, metavar=metavar, type=int, help=text)
    api.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        help="stream previews (default: yes for gpt-image models, no for dall-e)",
    )
    parser.add_argument(
        "--out", metavar="DIR", default="ttstream-out", help="directory for the files"
    )
    _connection_options(parser)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    """``--base-url``, the key options and ``-v``: every command that calls the API."""
    parser.add_argument(
        "--base-url", metavar="URL", help="API root, e.g. https://api.openai.com/v1"
    )
    azure = parser.add_argument_group("Azure OpenAI (docs/azure.md; key: AZURE_OPENAI_API_KEY)")
    azure.add_argument(
        "--azure-endpoint", metavar="URL", help="https://<resource>.openai.azure.com"
    )
    azure.add_argument("--azure-deployment", metavar="NAME", help="the image model's deployment")
    azure.add_argument(
        "--api-version", metavar="VERSION", help="e.g. 2025-04-01-preview (or OPENAI_API_VERSION)"
    )
    key = parser.add_mutually_exclusive_group()
    key.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="read the API key from FILE ('-': standard input)",
    )
    key.add_argument(
        "--api-key",
        metavar="KEY",
        help="the API key itself: every local user can read it in the process list; "
        "prefer TTAPI_API_KEY / OPENAI_API_KEY or --api-key-file",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log retries and reconnections on stderr"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttstream",
        description="Stream images from the TTAPI / OpenAI Images API.",
        epilog="API key: TTAPI_API_KEY, else OPENAI_API_KEY, else --api-key-file FILE "
        "(- reads stdin); with none of them and no --base-url, the built-in emulator runs.",
    )
    parser.add_argument("--version", action="version", version=f"ttstream {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser(
        "generate", help="generate an image from a prompt", epilog=parser.epilog
    )
    _image_options(generate, {})
    edit = commands.add_parser(
        "edit", help="edit one or more images with a prompt", epilog=parser.epilog
    )
    _image_options(edit, _EDIT_PARAMS)
    edit.add_argument(
        "--image",
        nargs="+",
        required=True,
        metavar="FILE",
        help="input images (put the prompt before --image: this option takes every file after it)",
    )
    edit.add_argument("--mask", metavar="FILE", help="mask image (PNG with alpha)")
    add_batch_parser(commands, _connection_options)
    commands.add_parser("emulator", help="run the API emulator", add_help=False)
    return parser


def _params(args: argparse.Namespace) -> dict[str, Any]:
    names = [*_TEXT_PARAMS, *_INT_PARAMS, "stream"]
    if args.command == "edit":
        names += list(_EDIT_PARAMS)
    params = {name: getattr(args, name) for name in names}
    if args.model.startswith("dall-e") and params["response_format"] is None:
        params["response_format"] = "b64_json"  # files are written from the inline image
    return {name: value for name, value in params.items() if value is not None}


def _check_base_url(url: str) -> None:
    try:
        http_url(url)
    except ValueError as exc:
        raise _UsageError(
            f"--base-url must be an http:// or https:// URL, such as "
            f"https://api.openai.com/v1 (got {clean(url, 80)!r}: {exc})"
        ) from None


def _read_key(args: argparse.Namespace) -> str | None:
    """The key from ``--api-key-file`` or ``--api-key`` (with a warning), else ``None``
    (the client then reads the environment)."""
    if args.api_key_file is not None:
        if args.api_key_file == "-":
            key = getpass.getpass("API key: ") if sys.stdin.isatty() else sys.stdin.readline()
        else:
            with open(args.api_key_file, encoding="utf-8") as file:
                key = file.readline()
        key = key.strip()
        if not key:
            raise _UsageError(f"--api-key-file {args.api_key_file}: no key in it")
        return key
    if args.api_key is not None:
        print(
            "ttstream: warning: --api-key shows the key to every local user in the process "
            "list; set TTAPI_API_KEY or use --api-key-file instead",
            file=sys.stderr,
        )
        return str(args.api_key)
    return None


@contextlib.contextmanager
def _service(
    args: argparse.Namespace, api_key: str | None
) -> Iterator[tuple[str | None, str | None]]:
    """Yields ``(api_key, base_url)``: the caller's, or an in-process emulator's."""
    if args.azure_endpoint is not None:  # Azure: the key may come from AZURE_OPENAI_API_KEY
        yield api_key, None
        return
    if api_key or any(os.environ.get(name) for name in _KEY_VARIABLES):
        yield api_key, args.base_url
        return
    if args.base_url is not None:
        raise TTStreamError(f"no API key for {_host(args.base_url)}: {_KEY_HELP}")
    try:
        from .emulator import api_or_emulator
    except ImportError as exc:
        raise TTStreamError(
            f"no API key and the emulator is not installed: {_KEY_HELP}, "
            "or pip install 'ttstream[cli]'"
        ) from exc
    with api_or_emulator(step_delay=_EMULATOR_STEP_DELAY) as service:
        yield service


def _host(base_url: str) -> str:
    return clean(urllib.parse.urlsplit(base_url).netloc or base_url, 100)


class _CountedStream(httpx2.AsyncByteStream):
    """A response body that adds the length of each chunk to ``progress.received``."""

    def __init__(self, inner: httpx2.AsyncByteStream, progress: Progress) -> None:
        self._inner = inner
        self._progress = progress
        self._chunks: Any = None

    def __aiter__(self) -> _CountedStream:
        self._chunks = self._inner.__aiter__()
        return self

    async def __anext__(self) -> bytes:
        chunk: bytes = await self._chunks.__anext__()
        self._progress.received += len(chunk)
        return chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _count_bytes(client: AsyncClient, progress: Progress) -> None:
    """Counts the bytes of every response of ``client`` into ``progress.received``,
    with an httpx response hook on the client's HTTP client."""
    http = client.http_client

    async def hook(response: httpx2.Response) -> None:
        if isinstance(response.stream, httpx2.AsyncByteStream):
            response.stream = _CountedStream(response.stream, progress)

    http.event_hooks = {**http.event_hooks, "response": [*http.event_hooks["response"], hook]}


async def _run(
    args: argparse.Namespace,
    api_key: str | None,
    base_url: str | None,
    progress: Progress,
    output: Output,
    secrets: Sequence[str],
) -> None:
    sink = FileSink(args.out, stem=f"{_slug(args.prompt)}-{_timestamp()}")
    try:
        client = (
            AsyncClient(api_key, base_url=base_url)
            if args.azure_endpoint is None
            else AsyncAzureClient(
                api_key,
                azure_endpoint=args.azure_endpoint,
                azure_deployment=args.azure_deployment,
                api_version=args.api_version,
            )
        )
    except TTStreamError as exc:
        raise _Failed(describe(exc, base_url, secrets)) from exc
    try:
        async with client:
            await _stream(args, client, sink, progress, output)
    except (TTStreamError, OSError) as exc:
        raise _Failed(describe(exc, client.base_url, secrets)) from exc
    await sink.aclose()
    output.done(len(sink.written), sink.directory)


async def _stream(
    args: argparse.Namespace,
    client: AsyncClient,
    sink: FileSink,
    progress: Progress,
    output: Output,
) -> None:
    _count_bytes(client, progress)
    params = _params(args)
    model: str | None = args.model
    if isinstance(client, AsyncAzureClient) and model == DEFAULT_MODEL:
        model = None  # the deployment names the model: not sent unless chosen
    if args.command == "edit":
        stream = client.edit(args.prompt, images=args.image, mask=args.mask, model=model, **params)
    else:
        stream = client.generate(args.prompt, model=model, **params)
    async with stream:
        async for event in stream:
            if isinstance(event, Reconnecting):
                what = "a new generation" if event.regenerating else "resuming"
                output.notice(f"connection lost; {what} in {event.delay:.1f}s ({event.reason})")
                continue
            if isinstance(event, Completed) and image_of(event) is None and event.url:
                output.notice(f"downloading the image from {event.url}")
                data = await client.fetch_image(event)
                event = attrs.evolve(event, b64_json=_Image(data=data))  # no base64 round trip
            failures = len(sink.failed)
            await sink.send(event)
            if len(sink.failed) > failures:
                path, error = sink.failed[-1]
                output.notice(f"preview not written to {path}: {describe(error, None)}")
                continue
            output.wrote(event, sink.written[-1], event.size or args.size or "")


def _reason(exc: APIConnectionError) -> str:
    """The transport's own words (``All connection attempts failed``), not a repr."""
    cause = exc.__cause__
    return str(cause) if isinstance(cause, httpx2.HTTPError) and str(cause) else str(exc)


def describe(exc: BaseException, base_url: str | None, secrets: Sequence[str] = ()) -> str:
    """One line for a person: what went wrong and, where it helps, what to do; through
    :func:`clean`, with ``secrets`` redacted."""
    where = _host(base_url) if base_url else "the API"
    text = str(exc)
    if isinstance(exc, ValidationError):
        options = {*_TEXT_PARAMS, *_INT_PARAMS, *_EDIT_PARAMS, "model", "stream"}
        hint = f" (option {_option(exc.param)})" if exc.param in options else ""
        text = f"no API key: {_KEY_HELP}" if exc.param == "api_key" else f"{exc}{hint}"
    elif isinstance(exc, APITimeoutError):
        text = f"{where} did not answer in time ({exc.timeout} timeout): {_reason(exc)}"
    elif isinstance(exc, APIConnectionError):
        text = f"cannot reach {where}: {_reason(exc)}"
    elif isinstance(exc, APIStatusError):
        details = f" (parameter {exc.param})" if exc.param else ""
        request = f" [request id {exc.request_id}]" if exc.request_id else ""
        text = f"{where} answered HTTP {exc.status_code}: {exc.message}{details}{request}"
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    # ttstream's own errors are at most 1,000 characters (their server text is cut
    # already): the line keeps the hint at its end.
    return clean(text, 1_100, secrets=secrets)


class _StderrHandler(logging.Handler):
    """Log lines on the current ``sys.stderr`` (a live display may redirect it), cleaned."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def emit(self, record: logging.LogRecord) -> None:
        line = clean(record.getMessage(), 500, secrets=self.secrets)
        print(f"ttstream: {line}", file=sys.stderr)


@contextlib.contextmanager
def _logging(verbose: bool, secrets: Sequence[str]) -> Iterator[None]:
    """Retries and reconnections of the ``ttstream`` logger on stderr with ``-v``; none
    otherwise (the CLI reports what matters itself)."""
    logger = logging.getLogger("ttstream")
    handler: logging.Handler = _StderrHandler(secrets) if verbose else logging.NullHandler()
    level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        from .emulator import main as emulator_main

        return emulator_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    progress = Progress()
    secrets: list[str] = [
        os.environ[name] for name in (*_KEY_VARIABLES, AZURE_KEY) if os.environ.get(name)
    ]
    try:
        if args.base_url is not None:
            _check_base_url(args.base_url)
        api_key = _read_key(args)
        secrets += [api_key] if api_key else []
        if args.command == "batch":
            with _logging(args.verbose, secrets), _service(args, api_key) as (key, url):
                return run_batch(args, key, url, secrets, lambda e: describe(e, url, secrets))
        with (
            _logging(args.verbose, secrets),
            _service(args, api_key) as (api_key, base_url),
            make_output(progress, several=(args.n or 1) > 1, secrets=secrets) as output,
        ):
            verb = "Editing" if args.command == "edit" else "Generating"
            output.start(f"{verb} with {args.model}")
            anyio.run(_run, args, api_key, base_url, progress, output, secrets)
    except _UsageError as exc:
        print(f"ttstream: error: {exc}", file=sys.stderr)
        return 2
    except _Failed as exc:
        print(f"ttstream: error: {exc}", file=sys.stderr)
        return 1
    except (TTStreamError, OSError) as exc:
        print(f"ttstream: error: {describe(exc, args.base_url, secrets)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ttstream: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
