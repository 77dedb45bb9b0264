"""The ``ttstream`` command: ``generate``, ``edit`` and ``emulator`` (docs/cli.md).

``generate`` and ``edit`` write every preview and the final image into ``--out`` as they
arrive. On a terminal a live display (``rich``, the ``cli`` extra) shows a spinner with
the elapsed time and the bytes received, one status line per preview and a summary;
elsewhere each file's path is printed on a line of its own. No file is ever overwritten
(:class:`ttstream.sinks.FileSink`). Previews are numbered from 1, in the lines and in the
file names (``...-partial-1.png``); with ``--n 2`` or more each image's files carry its
number (``...-image-2-final.png``).

The key comes from ``TTAPI_API_KEY`` or ``OPENAI_API_KEY``, or from ``--api-key-file``
(``-`` reads standard input); ``--api-key`` works but shows the key to every local user
in the process list, so it warns. With no key and no ``--base-url`` the built-in
emulator runs on a free loopback port, and a line says so.

Everything that can be checked without the network is checked before anything starts
(no emulator, no request): the base URL, the key (printable ASCII, a key file in UTF-8),
``--out`` (a directory, or a name one can be made under), the input files and every
parameter against the model's table; a mistake ends with one short line and exit status
2. A model missing from the table draws a one-line warning and is sent as given.

Other errors end with one line on stderr, exit status 1 (130 after Ctrl-C, which lists
the files kept), never a traceback; a stream cut short says after which preview and
where the previews are. With ``-v`` the transport's own words follow on a ``detail``
line, and retries and reconnections are logged, through the live display when there is
one. Text from the server is printed through :func:`ttstream._cli_output.clean`: no
terminal escapes reach the terminal.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import difflib
import errno
import getpass
import logging
import os
import re
import shlex
import socket
import ssl
import sys
import time
import typing
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import anyio
import attrs
import httpx2

from ._azure import AD_TOKEN_VARIABLE as AZURE_TOKEN
from ._azure import AZURE_KEY_VARIABLE as AZURE_KEY
from ._azure import AsyncAzureClient
from ._cli_batch import JobsFileError, inline_images
from ._cli_batch import add_parser as add_batch_parser
from ._cli_batch import check as check_batch
from ._cli_batch import run as run_batch
from ._cli_output import Output, Progress, clean, make_output, plural
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    IncompleteStreamError,
    TTStreamError,
    ValidationError,
)
from ._reconnect import Reconnecting
from ._version import VERSION
from .client import DEFAULT_MODEL, AsyncClient, http_url
from .events import Completed, PartialImage, image_of
from .params import (
    MODELS,
    EditParameters,
    GenerationParameters,
    Operation,
    allowed_summary,
    streams_by_default,
    validate,
)
from .sinks import FileSink

__all__ = ["PARAMETERS_WITHOUT_OPTIONS", "main"]

_EMULATOR_STEP_DELAY = 0.6  # seconds between events, so that previews visibly stream in
_KEY_VARIABLES = ("TTAPI_API_KEY", "OPENAI_API_KEY")
_KEY_HELP = "set TTAPI_API_KEY (or OPENAI_API_KEY), or pass --api-key-file FILE (- for stdin)"
_AZURE_KEY_HELP = f"set {AZURE_KEY} (or {AZURE_TOKEN}), or pass --api-key-file FILE (- for stdin)"
_MAX_KEY_LINE = 4096  # bytes of a key file read: a key is far shorter
_KEY_CHARACTERS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space: what a header carries
_MODEL_LIST = re.compile(r"only ((?:[\w.-]+, ){3,}[\w.-]+) take (\w+)")
# The image parameters are options built from the typed declarations
# (ttstream.params.GenerationParameters, EditParameters): one option per parameter, named
# after it (dashes for underscores) and passed through under its API name; the help gives
# the range from the model's table (params.allowed_summary). A parameter added there is an
# option here with no edit. What follows is presentation only (a parameter missing from
# it still gets its option), and the parameters that have no option, with the reason.
PARAMETERS_WITHOUT_OPTIONS: Mapping[str, str] = MappingProxyType(
    {"svg": "an object of options (a mapping), not a word of the command line; use the API"}
)
"""Typed parameters with no command-line option, each with the reason (docs/cli.md)."""
_HELP = {  # what the option is for, around the range from the table ({})
    "n": "number of images: {}",
    "partial_images": "previews to stream: {}",
    "output_compression": "compression in percent: {}",
    "frame_count": "frames of a gif: {}",
    "frame_duration_ms": "milliseconds per gif frame: {}",
    "response_format": "{}; url results are downloaded",
    "stream": "stream previews ({})",
    "safety_identifier": "a stable id for your end user (replaces --user)",
    "user": "an id for your end user (deprecated alias of --safety-identifier)",
    "input_fidelity": "how closely the edit keeps the input's details: {}",
}
_METAVARS = {
    "size": "WxH", "quality": "Q", "background": "B", "output_format": "FMT",
    "moderation": "M", "response_format": "FMT", "style": "S", "complexity": "C",
    "safety_identifier": "ID", "user": "ID", "output_compression": "PCT",
    "frame_duration_ms": "MS", "input_fidelity": "F",
}  # fmt: skip


def _slug(prompt: str) -> str:
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    return "-".join(words)[:48].strip("-") or "image"


def _timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _declared(command: str) -> type[GenerationParameters]:
    """The TypedDict of ``command``'s typed API parameters."""
    return EditParameters if command == "edit" else GenerationParameters


def _parameter_names(command: str) -> list[str]:
    """The typed API parameters of ``command`` that are options, in declaration order."""
    declared = _declared(command)
    return [name for name in declared.__annotations__ if name not in PARAMETERS_WITHOUT_OPTIONS]


def _parameter_option(name: str, hint: object) -> dict[str, Any]:
    """The ``add_argument`` keywords of one typed parameter's option:
    ``--stream/--no-stream`` for a bool, an int for an int, else the text as given (the
    model's table checks it before anything starts, with the lines of
    :func:`_parameter_line`)."""
    kinds = {arg for arg in typing.get_args(hint) if arg is not type(None)}
    summary = allowed_summary(name, DEFAULT_MODEL)
    template = _HELP.get(name, "{}")
    text = template if summary is None else template.format(summary)
    options: dict[str, Any] = {"dest": name, "help": None if text == "{}" else text}
    if kinds == {bool}:
        return {**options, "action": argparse.BooleanOptionalAction}
    if kinds == {int}:
        return {**options, "metavar": _METAVARS.get(name, "N"), "type": int}
    if all(kind is str or typing.get_origin(kind) is Literal for kind in kinds):
        return {**options, "metavar": _METAVARS.get(name)}
    raise TypeError(f"{name}: {hint} has no command-line form (PARAMETERS_WITHOUT_OPTIONS)")


def _image_options(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("prompt", help="what to draw")
    api = parser.add_argument_group("image parameters (the API's own, checked per model)")
    api.add_argument("--model", default=DEFAULT_MODEL, help=f"default {DEFAULT_MODEL}")
    hints = typing.get_type_hints(_declared(command))
    for name in _parameter_names(command):
        api.add_argument(_option(name), **_parameter_option(name, hints[name]))
    parser.add_argument(
        "--out", metavar="DIR", default="ttstream-out", help="directory for the files"
    )
    _connection_options(parser)
    azure = parser.add_argument_group(
        "Azure OpenAI (docs/azure.md; key: AZURE_OPENAI_API_KEY, or AZURE_OPENAI_AD_TOKEN)"
    )
    azure.add_argument(
        "--azure-endpoint", metavar="URL", help="https://<resource>.openai.azure.com"
    )
    azure.add_argument("--azure-deployment", metavar="NAME", help="the image model's deployment")
    azure.add_argument(
        "--api-version", metavar="VERSION", help="e.g. 2025-04-01-preview (or OPENAI_API_VERSION)"
    )


def _connection_options(parser: argparse.ArgumentParser) -> None:
    """``--base-url``, the key options and ``-v``: every command that calls the API."""
    parser.add_argument(
        "--base-url", metavar="URL", help="API root, e.g. https://api.openai.com/v1"
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
    parser.add_argument("--version", action="version", version=f"ttstream {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser(
        "generate", help="generate an image from a prompt", epilog=parser.epilog
    )
    _image_options(generate, "generate")
    edit = commands.add_parser(
        "edit", help="edit one or more images with a prompt", epilog=parser.epilog
    )
    _image_options(edit, "edit")
    edit.add_argument(
        "--image",
        nargs="+",
        required=True,
        metavar="FILE",
        help="input images (put the prompt before --image: this option takes every file after it)",
    )
    edit.add_argument("--mask", metavar="FILE", help="mask image (PNG with alpha)")
    add_batch_parser(commands, _connection_options)
    commands.add_parser(
        "emulator",
        help="run the API emulator (ttstream emulator --help; --fault SPEC for faults)",
        add_help=False,
    )
    return parser


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


class _UsageError(Exception):
    """A command-line mistake found after parsing: exit status 2."""


class _Failed(Exception):
    """The run failed: exit status 1. The message is the line for the user, ``detail``
    the transport's own words (shown with ``-v``)."""

    def __init__(self, line: str, detail: str | None = None) -> None:
        super().__init__(line)
        self.detail = detail


# --- checks before anything starts ---------------------------------------------------


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params = {name: getattr(args, name) for name in _parameter_names(args.command)}
    given = {name: value for name, value in params.items() if value is not None}
    inline_images(args.model, given)
    return given


def _check_base_url(url: str) -> None:
    try:
        http_url(url)
    except ValueError as exc:
        raise _UsageError(
            f"--base-url must be an http:// or https:// URL, such as "
            f"https://api.openai.com/v1 (got {clean(url, 80)!r}: {exc})"
        ) from None


def _check_key(key: str, source: str) -> str:
    """``key`` if a header can carry it (printable ASCII, no space); never echoes it.

    Raises:
        _UsageError: naming ``source`` and the position of the first bad character.
    """
    if _KEY_CHARACTERS.fullmatch(key) is None:
        where, bad = next((i, c) for i, c in enumerate(key, 1) if not _KEY_CHARACTERS.match(c))
        if not bad.isascii():
            kind = "a non-ASCII character"
        else:
            kind = "a space" if bad == " " else "a control character"
        raise _UsageError(
            f"the API key from {source} has {kind} (character {where} of {len(key)}); "
            "API keys are printable ASCII without spaces"
        )
    return key


def _key_from_file(name: str) -> str:
    """The first line of file ``name`` (``-``: standard input, hidden on a terminal)."""
    if name == "-":
        if sys.stdin.isatty():
            return getpass.getpass("API key: ")
        try:
            return sys.stdin.readline(_MAX_KEY_LINE)
        except UnicodeDecodeError:
            raise _UsageError("--api-key-file -: standard input is not UTF-8 text") from None
    try:
        with open(name, "rb") as file:
            line = file.readline(_MAX_KEY_LINE)
    except OSError as exc:
        raise _UsageError(f"--api-key-file {clean(name, 200)}: {exc.strerror or exc}") from None
    try:
        return line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _UsageError(
            f"--api-key-file {clean(name, 200)}: not UTF-8 text (is it the key file?)"
        ) from None


def _read_key(args: argparse.Namespace) -> str | None:
    """The key from ``--api-key-file`` or ``--api-key`` (with a warning), checked; else
    ``None`` (the client then reads the environment, whose key is checked here too)."""
    if args.api_key_file is not None:
        source = "standard input" if args.api_key_file == "-" else clean(args.api_key_file, 200)
        key = _key_from_file(args.api_key_file).strip()
        if not key:
            raise _UsageError(f"--api-key-file {args.api_key_file}: no key in it")
        return _check_key(key, source)
    if args.api_key is not None:
        print(
            "ttstream: warning: --api-key shows the key to every local user in the process "
            "list; set TTAPI_API_KEY or use --api-key-file instead",
            file=sys.stderr,
        )
        return _check_key(str(args.api_key), "--api-key")
    for name in _KEY_VARIABLES:
        if os.environ.get(name):
            _check_key(os.environ[name], name)
            break
    return None


def _check_key_given(args: argparse.Namespace, api_key: str | None) -> None:
    """A run for Azure or for ``--base-url`` has a key (only a run for neither may start
    the emulator without one): Azure's own variables for Azure (its key, or a Microsoft
    Entra ID token, which the client sends as a bearer token), since TTAPI's and OpenAI's
    are not Azure's."""
    if getattr(args, "azure_endpoint", None) is not None:
        if not (api_key or os.environ.get(AZURE_KEY) or os.environ.get(AZURE_TOKEN)):
            raise _UsageError(f"no API key for Azure: {_AZURE_KEY_HELP}")
    elif args.base_url is not None and not (api_key or any(map(os.environ.get, _KEY_VARIABLES))):
        raise _UsageError(f"no API key for {_host(args.base_url)}: {_KEY_HELP}")


def _check_out(out: str) -> None:
    """``--out`` is a directory, or can be made: its nearest existing ancestor is a
    directory this user may write in."""
    path = Path(out)
    shown = clean(out, 200)
    try:
        if path.exists() and not path.is_dir():
            raise _UsageError(f"--out {shown} is a file, not a directory; name a directory")
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
    except OSError as exc:  # a name too long, say
        raise _UsageError(f"--out {shown}: {exc.strerror or type(exc).__name__}") from None
    if not existing.is_dir():
        raise _UsageError(f"--out {shown}: {clean(existing, 200)} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _UsageError(f"--out {shown}: no permission to write in {clean(existing, 200)}")


def _make_out(out: str) -> None:
    """Makes ``--out``, after every other check (a mistake found before leaves no
    directory behind) and before the request: a name the file system refuses (too long,
    on a file system ``os.access`` misjudges) ends the run before anything is billed,
    not after the first image arrived with nowhere to go."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _UsageError(f"--out {clean(out, 200)}: cannot make the directory: {reason}") from None


def _check_inputs(args: argparse.Namespace) -> None:
    for option, name in [*(("--image", n) for n in args.image), ("--mask", args.mask)]:
        if name is not None and not os.path.isfile(name):
            why = "is a directory" if os.path.isdir(name) else "no such file"
            raise _UsageError(f"{option} {clean(name, 200)}: {why}")
        if name is not None and not os.access(name, os.R_OK):
            raise _UsageError(f"{option} {clean(name, 200)}: no permission to read it")


def _parameter_line(exc: ValidationError) -> str:
    """A parameter the model does not take, as one short line: the option, the value,
    the model and what it takes, long lists of model names counted instead."""
    options = {*_parameter_names("edit"), "model"}
    name = _option(exc.param) if exc.param in options else exc.param
    value = shlex.quote(exc.value) if isinstance(exc.value, str) else repr(exc.value)
    model = f" for {clean(exc.model, 60)}" if exc.model else ""

    def count(match: re.Match[str]) -> str:
        models = match[1].count(",") + 1
        return f"only {models} other models take {match[2]}"

    allowed = _MODEL_LIST.sub(count, exc.allowed)
    return clean(f"{name} {clean(value, 60)} is not allowed{model}: it must be {allowed}", 400)


def _check_params(args: argparse.Namespace) -> None:
    """Every parameter against the model's table (:func:`ttstream.params.validate`, as
    the client checks them), before anything starts."""
    params = {"prompt": args.prompt, **_params(args)}
    if params.get("stream") is None:
        params["stream"] = streams_by_default(args.model, params)
    images: list[bytes | None] = []
    if args.command == "edit":
        params["mask"] = args.mask
        images = [None] * len(args.image)  # files: their content is checked when read
    operation: Operation = "edit" if args.command == "edit" else "generation"
    try:
        validate(operation, args.model, params, images=images)
    except ValidationError as exc:
        raise _UsageError(_parameter_line(exc)) from None


def _model_warning(model: str) -> str | None:
    """One line for a model missing from ttstream's table, or ``None``."""
    if model in MODELS:
        return None
    close = difflib.get_close_matches(model, list(MODELS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"model {clean(model, 60)!r} is not in ttstream's table{hint}: its parameters "
        "are not checked; sending it as given"
    )


def _check(args: argparse.Namespace) -> str | None:
    """Every check that needs no network, in the order of the command line; returns
    the key of ``--api-key-file`` / ``--api-key``. ``batch`` checks its jobs itself.

    Raises:
        _UsageError: the first mistake found.
    """
    if args.base_url is not None:
        _check_base_url(args.base_url)
    api_key = _read_key(args)
    _check_key_given(args, api_key)
    _check_out(args.out)
    if args.command == "edit":
        _check_inputs(args)
    if args.command in ("generate", "edit"):
        _check_params(args)
        _make_out(args.out)
    return api_key


@contextlib.contextmanager
def _service(
    args: argparse.Namespace, api_key: str | None
) -> Iterator[tuple[str | None, str | None]]:
    """Yields ``(api_key, base_url)``: the caller's, or an in-process emulator's (no
    key, no ``--base-url``, no Azure: :func:`_check_key_given` refused a service without
    one before)."""
    if getattr(args, "azure_endpoint", None) is not None:
        yield api_key, None
        return
    if api_key or args.base_url is not None or any(map(os.environ.get, _KEY_VARIABLES)):
        yield api_key, args.base_url
        return
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


# --- the run ---------------------------------------------------------------------------


class _Files:
    """The files of one run: one :class:`FileSink` for ``n`` = 1, else one per image,
    whose stem ends in ``-image-<k>`` (``...-image-2-final.png``: not the ``_2`` that
    FileSink adds when a name is taken). Previews are written numbered from 1."""

    def __init__(self, directory: str, stem: str, n: int) -> None:
        self.directory = Path(directory)
        self._stem = stem
        self._several = n > 1
        self._sinks: dict[int, FileSink] = {}
        self._image = 1
        self.written: list[Path] = []
        self.previews = 0  # of the files written

    def _sink(self) -> FileSink:
        number = self._image if self._several else 1
        if number not in self._sinks:
            stem = f"{self._stem}-image-{number}" if self._several else self._stem
            self._sinks[number] = FileSink(self.directory, stem=stem)
        return self._sinks[number]

    async def write(self, event: PartialImage | Completed) -> Path | OSError:
        """Writes ``event``; the path written, or the error of a preview not written
        (the error of a final image is raised)."""
        sink = self._sink()
        failures = len(sink.failed)
        if isinstance(event, PartialImage):
            await sink.send(attrs.evolve(event, index=event.index + 1))
        else:
            await sink.send(event)
            self._image += 1
        if len(sink.failed) > failures:
            return sink.failed[-1][1]
        self.written.append(sink.written[-1])
        self.previews += isinstance(event, PartialImage)
        return sink.written[-1]

    def kept(self) -> str:
        """``2 previews kept in DIR/``, ``3 files kept in DIR/`` or ``no file was
        written``."""
        if not self.written:
            return "no file was written"
        what = "preview" if self.previews == len(self.written) else "file"
        return f"{plural(len(self.written), what)} kept in {self.directory}/"


async def _run(
    args: argparse.Namespace,
    api_key: str | None,
    base_url: str | None,
    progress: Progress,
    output: Output,
    files: _Files,
    secrets: Sequence[str],
) -> None:
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
            await _stream(args, client, files, progress, output, secrets)
    except (TTStreamError, OSError) as exc:
        line = describe(exc, client.base_url, secrets, stopped=progress.stopped())
        if isinstance(exc, IncompleteStreamError) or files.written:
            line = f"{line}; {files.kept()}"
        raise _Failed(line, clean(exc, 1_100, secrets=secrets)) from exc
    output.done(len(files.written), files.directory)


async def _stream(
    args: argparse.Namespace,
    client: AsyncClient,
    files: _Files,
    progress: Progress,
    output: Output,
    secrets: Sequence[str],
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
                output.notice(f"connection lost {progress.stopped()}; {what} in {event.delay:.1f}s")
                if args.verbose:
                    output.log(f"ttstream: detail: {clean(event.reason, 500, secrets=secrets)}")
                continue
            if isinstance(event, Completed) and image_of(event) is None and event.url:
                output.notice(f"downloading the image from {event.url}")
                data = await client.fetch_image(event)
                event = attrs.evolve(event, b64_json=base64.b64encode(data).decode("ascii"))
            written = await files.write(event)
            if isinstance(written, OSError):
                number = event.index + 1 if isinstance(event, PartialImage) else 0
                output.notice(f"preview {number} not written: {describe(written, None)}")
                continue
            output.wrote(event, written, event.size or args.size or "")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups on the way."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        error = todo.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        todo += [e for e in (error.__cause__, error.__context__) if e is not None]
        if isinstance(error, BaseExceptionGroup):
            todo += list(error.exceptions)


def _why_unreachable(exc: BaseException) -> str:
    """Why a connection could not be made, in words (the transport's own are for ``-v``)."""
    for error in _chain(exc):
        if isinstance(error, socket.gaierror):
            return "its host name was not found (check --base-url)"
        if isinstance(error, ConnectionRefusedError):
            return "the connection was refused (is the server running, and --base-url right?)"
        if isinstance(error, ssl.SSLCertVerificationError):
            return f"its TLS certificate was not accepted ({error.verify_message})"
        if isinstance(error, ssl.SSLError):
            return "the TLS handshake failed (an http:// server behind https://?)"
        if isinstance(error, OSError) and error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "no route to it (is the network up?)"
    return "the connection failed (-v shows the transport's words)"


def _reason(exc: APIConnectionError) -> str:
    """The transport's own words (``The read operation timed out``), not a repr."""
    cause = exc.__cause__
    return str(cause) if isinstance(cause, httpx2.HTTPError) and str(cause) else str(exc)


def describe(
    exc: BaseException,
    base_url: str | None,
    secrets: Sequence[str] = (),
    *,
    stopped: str = "before the first preview",
) -> str:
    """One line for a person: what went wrong and, where it helps, what to do; through
    :func:`clean`, with ``secrets`` redacted. A stream cut short says where it stopped
    (``stopped``: ``after preview 2 of 3``). The transport's own words are left to the
    ``-v`` detail line, but for timeouts, which say which timeout fired."""
    where = _host(base_url) if base_url else "the API"
    text = str(exc)
    if isinstance(exc, ValidationError):
        text = f"no API key: {_KEY_HELP}" if exc.param == "api_key" else _parameter_line(exc)
    elif isinstance(exc, IncompleteStreamError):
        if exc.__cause__ is not None:  # a transport error: the connection broke
            text = f"the connection broke {stopped}"
        else:
            text = f"{where} ended the stream {stopped}, without the final image"
    elif isinstance(exc, APITimeoutError):
        text = f"{where} did not answer in time ({exc.timeout} timeout): {_reason(exc)}"
    elif isinstance(exc, APIConnectionError):
        text = f"cannot reach {where}: {_why_unreachable(exc)}"
    elif isinstance(exc, APIStatusError):
        details = f" (parameter {exc.param})" if exc.param else ""
        request = f" [request id {exc.request_id}]" if exc.request_id else ""
        # A refused model comes with the list of every model served: cut it short.
        message = clean(exc.message, 160) if exc.param == "model" else exc.message
        text = f"{where} answered HTTP {exc.status_code}: {message}{details}{request}"
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    # ttstream's own errors are at most 1,000 characters (their server text is cut
    # already): the line keeps the hint at its end.
    return clean(text, 1_100, secrets=secrets)


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr)


class _LineHandler(logging.Handler):
    """Log records as cleaned lines, through ``log``: the live display's console on a
    terminal (so that no spinner fragment is left), else stderr."""

    def __init__(self, log: Callable[[str], None], secrets: Sequence[str]) -> None:
        super().__init__()
        self.log = log
        self.secrets = secrets

    def emit(self, record: logging.LogRecord) -> None:
        self.log(f"ttstream: {clean(record.getMessage(), 500, secrets=self.secrets)}")


@contextlib.contextmanager
def _logging(
    verbose: bool, secrets: Sequence[str], log: Callable[[str], None] = _stderr_line
) -> Iterator[None]:
    """Retries and reconnections of the ``ttstream`` logger through ``log`` with ``-v``;
    none otherwise (the CLI reports what matters itself)."""
    logger = logging.getLogger("ttstream")
    handler: logging.Handler = _LineHandler(log, secrets) if verbose else logging.NullHandler()
    level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _error(line: str) -> None:
    print(f"ttstream: error: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        from .emulator import main as emulator_main

        return emulator_main(argv[1:], prog="ttstream emulator")
    parser = _parser()
    args = parser.parse_args(argv)
    secrets: list[str] = [
        os.environ[name]
        for name in (*_KEY_VARIABLES, AZURE_KEY, AZURE_TOKEN)
        if os.environ.get(name)
    ]
    files: _Files | None = None
    progress = Progress()
    try:
        api_key = _check(args)
        secrets += [api_key] if api_key else []
        if args.command == "batch":
            try:
                jobs = check_batch(args)  # before the emulator starts
            except JobsFileError as exc:
                raise _UsageError(clean(exc, 1000, secrets=secrets)) from None
            with _logging(args.verbose, secrets), _service(args, api_key) as (key, url):
                return run_batch(args, jobs, key, url, secrets, lambda e: describe(e, url, secrets))
        warning = _model_warning(args.model)
        if warning:
            print(f"ttstream: warning: {warning}", file=sys.stderr)
        n = args.n if args.n is not None and args.n > 0 else 1
        progress = Progress(previews=args.partial_images, images=n)
        files = _Files(args.out, f"{_slug(args.prompt)}-{_timestamp()}", n)
        with (
            _service(args, api_key) as (api_key, base_url),
            make_output(progress, several=n > 1, secrets=secrets) as output,
            _logging(args.verbose, secrets, output.log),
        ):
            verb = "Editing" if args.command == "edit" else "Generating"
            output.start(f"{verb} with {args.model}")
            anyio.run(_run, args, api_key, base_url, progress, output, files, secrets)
    except _UsageError as exc:
        _error(str(exc))
        return 2
    except _Failed as exc:
        _error(str(exc))
        if args.verbose and exc.detail:
            print(f"ttstream: detail: {exc.detail}", file=sys.stderr)
        return 1
    except (TTStreamError, OSError) as exc:
        _error(describe(exc, args.base_url, secrets))
        return 1
    except KeyboardInterrupt:
        _interrupted(progress, files)
        return 130
    return 0


def _interrupted(progress: Progress, files: _Files | None) -> None:
    """The lines after Ctrl-C: where the stream was, and the files kept, one a line."""
    if files is None:
        print("ttstream: interrupted", file=sys.stderr)
        return
    stopped = f" {progress.stopped()}" if progress.images_seen else ""
    listing = f"; {files.kept()}:" if files.written else f"; {files.kept()}"
    print(f"ttstream: interrupted{stopped}{listing}", file=sys.stderr)
    for path in files.written:
        print(f"  {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
