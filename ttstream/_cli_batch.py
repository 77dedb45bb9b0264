"""``ttstream batch JOBS.jsonl --out DIR``: many jobs through :class:`ttstream.batch.Batch`
(docs/batch.md, "The command").

``JOBS.jsonl`` holds one JSON object per line: ``prompt``, an optional ``key`` (default
``line-<N>``), ``model`` and any ``generate`` parameter (``n``, ``size``, ``quality``,
...). With ``--edit`` every job is an edit and names its input files: ``"images"`` (a
path or a list of paths) and an optional ``"mask"``, relative to the JOBS file's
directory. Blank lines and lines starting with ``#`` are skipped.

Finals are written as ``DIR/<key>.<ext>`` (never over an existing file). The journal
(default ``DIR/.ttstream-journal.sqlite``) makes a rerun of the same command continue
where the last one stopped: done jobs are not sent again.

On a terminal a live ``rich`` display shows an overall bar (done, failed, in flight,
ETA) and a line per running job with its latest preview; elsewhere one plain line per
finished job. A summary follows: done, failed with their reasons, images, tokens and
estimated cost (of every job done, earlier runs included), time. Exit status 0 only
when every job succeeded (now or before), 1 when any failed, 2 for a mistake in the
command line or the JOBS file (its form and values checked before anything starts), 130 after
Ctrl-C.
"""

from __future__ import annotations

import argparse
import decimal
import difflib
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ._bounds import require_timeout, validate_positive, validate_seconds
from ._cli_output import clean, terminal_console
from ._cost import pricing_available
from ._exceptions import TTStreamError, ValidationError
from ._json import NestedTooDeeply, loads
from ._options import EditOptions, GenerateOptions
from ._reconnect import require_policy
from ._request import checked_body, merge_extra_body
from ._tally import Tally
from .batch import Batch, JobResult
from .client import DEFAULT_MODEL, AsyncClient
from .params import EditParameters, GenerationParameters

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

__all__ = [
    "JOURNAL_NAME",
    "JobsFileError",
    "add_parser",
    "check",
    "inline_images",
    "read_jobs",
    "run",
]

JOURNAL_NAME = ".ttstream-journal.sqlite"
"""The journal's file name inside ``--out`` unless ``--journal`` names another."""
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that did not decode (surrogateescape)
_MAX_LINE = 1024 * 1024  # characters of one JOBS line
_REFRESH = 0.25  # seconds between redraws of the live display
_MAX_SHOWN_RUNNING = 12  # lines of running jobs on the live display
_FIELDS = {  # a JOBS line's fields besides prompt and key, with --edit and without
    edit: sorted(options.__required_keys__ | options.__optional_keys__)
    for edit, options in ((True, EditOptions), (False, GenerateOptions))
}
_API_FIELDS = {  # the API's own parameters among them
    edit: parameters.__optional_keys__
    for edit, parameters in ((True, EditParameters), (False, GenerationParameters))
}


class JobsFileError(Exception):
    """A mistake in the JOBS file: the message names the line; exit status 2."""


@attrs.frozen
class JobLine:
    """One job of the JOBS file: its line number, its key and its arguments."""

    line: int
    key: str
    prompt: str
    params: dict[str, Any]


def add_parser(
    commands: Any, connection_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Registers ``batch`` on the ``ttstream`` command's subparsers; ``connection_options``
    adds the command's shared ``--base-url``, key and ``-v`` options."""
    parser = commands.add_parser(
        "batch",
        help="run many jobs from a JSON Lines file, resumable",
        description="Run the jobs of JOBS (one JSON object per line: prompt, key, model, "
        "and any generate parameter), writing each final image as DIR/<key>.<ext>. "
        "A rerun continues where the last one stopped.",
    )
    parser.add_argument("jobs", metavar="JOBS", help="the jobs, one JSON object per line")
    parser.add_argument("--out", metavar="DIR", required=True, help="directory for the images")
    parser.add_argument(
        "--concurrency", metavar="N", type=int, default=4, help="streams open at once (4)"
    )
    parser.add_argument(
        "--images-per-minute", metavar="N", type=float, help="pace requests to N images a minute"
    )
    parser.add_argument(
        "--requests-per-minute", metavar="N", type=float, help="pace to N requests a minute"
    )
    parser.add_argument(
        "--journal",
        metavar="FILE",
        help=f"the SQLite journal that makes reruns continue (default DIR/{JOURNAL_NAME})",
    )
    parser.add_argument(
        "--edit",
        action="store_true",
        help='every job is an edit naming its input files ("images", optional "mask")',
    )
    connection_options(parser)


def read_jobs(path: Path, *, edit: bool) -> list[JobLine]:
    """The jobs of the JOBS file at ``path``.

    Raises:
        JobsFileError: a line that is not a JSON object, has no ``prompt``, repeats a
            key, has a field that is no parameter or a value the request would refuse
            (the checks of ``client.generate`` / ``client.edit``, docs/models.md), or
            names (or lacks) input files against ``edit``.
            A file that cannot be opened (none, a directory, no permission) is one too.
        OSError: the file cannot be read once open.
    """
    jobs: list[JobLine] = []
    keys: dict[str, int] = {}
    base = path.parent
    try:
        opened = path.open(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:  # a command-line mistake, as `edit --image nope.png` is
        raise JobsFileError(f"{clean(str(path), 200)}: {exc.strerror or exc}") from None
    with opened as file:
        # readline with a limit: a line longer than the cap is refused without being
        # held whole in memory
        lines = iter(lambda: file.readline(_MAX_LINE + 2), "")
        for number, text in enumerate(lines, start=1):
            where = f"{path.name} line {number}"
            if len(text.rstrip("\r\n")) > _MAX_LINE:
                raise JobsFileError(f"{where}: longer than {_MAX_LINE} characters")
            if _NOT_UTF8.search(text):
                raise JobsFileError(f"{where}: not UTF-8 text")
            text = text.strip()
            if not text or text.startswith("#"):
                continue
            try:
                obj = loads(text)
            except NestedTooDeeply as exc:
                raise JobsFileError(f"{where}: JSON {exc}") from None
            except ValueError as exc:
                raise JobsFileError(f"{where}: not JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise JobsFileError(f"{where}: a JSON object is needed, got {type(obj).__name__}")
            prompt = obj.pop("prompt", None)
            if not isinstance(prompt, str) or not prompt:
                raise JobsFileError(f'{where}: "prompt" must be a non-empty string')
            key = obj.pop("key", f"line-{number}")
            if not isinstance(key, str):
                raise JobsFileError(f'{where}: "key" must be a string')
            if key in keys:
                raise JobsFileError(f"{where}: key {key!r} is also on line {keys[key]}")
            keys[key] = number
            if edit:
                images = obj.get("images")
                paths = [images] if isinstance(images, str) else images
                if not (
                    isinstance(paths, list) and paths and all(isinstance(p, str) for p in paths)
                ):
                    raise JobsFileError(
                        f'{where}: --edit jobs need "images": a file path or a list of them'
                    )
                obj["images"] = [str(base / p) for p in paths]
                if "mask" in obj:
                    if not isinstance(obj["mask"], str):
                        raise JobsFileError(f'{where}: "mask" must be a file path')
                    obj["mask"] = str(base / obj["mask"])
            elif "images" in obj or "mask" in obj:
                raise JobsFileError(f'{where}: "images" and "mask" need --edit')
            _check_fields(obj, where, edit=edit)
            inline_images(obj.get("model"), obj)
            _check_values(obj, prompt, where, edit=edit)
            jobs.append(JobLine(number, key, prompt, obj))
    return jobs


def inline_images(model: object, params: dict[str, Any]) -> None:
    """Asks a dall-e ``model`` for ``response_format="b64_json"`` when ``params`` (the
    request's, the ones not given left out) has none: the command writes its files from
    the inline image (a URL answer, asked for explicitly, is downloaded). Of ``ttstream
    generate``/``edit`` and of every JOBS line of ``ttstream batch``."""
    if isinstance(model, str) and model.startswith("dall-e"):
        params.setdefault("response_format", "b64_json")


def _check_fields(obj: dict[str, Any], where: str, *, edit: bool) -> None:
    """Refuses a field that is no parameter of the job, naming the nearest one."""
    allowed = _FIELDS[edit]
    for name in obj:
        if name not in allowed:
            near = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise JobsFileError(
                f"{where}: unknown field {clean(name, 100)!r}{hint}; the fields are prompt, "
                f"key, {', '.join(allowed)}"
            )


def _check_values(obj: dict[str, Any], prompt: str, where: str, *, edit: bool) -> None:
    """Refuses a value the job's request would refuse at once (its ``deadline``,
    ``timeout``, ``reconnect`` and ``extra_body``, its model's parameters), with the request's own
    checks, naming the line."""
    model = obj.get("model")
    try:
        validate_seconds("deadline", obj.get("deadline"))
        if "timeout" in obj:  # seconds (JSON holds no httpx2.Timeout); null refused
            require_timeout("timeout", obj["timeout"])
        if obj.get("reconnect") is not None:  # JSON holds no ReconnectPolicy: refused
            require_policy(obj["reconnect"])
        merge_extra_body({}, obj.get("extra_body"))
        checked_body(
            "edit" if edit else "generation",
            prompt,
            DEFAULT_MODEL if model is None else model,
            {name: value for name, value in obj.items() if name in _API_FIELDS[edit]},
            mask=obj.get("mask"),
            images=[None] * len(obj.get("images", ())),  # files: read when the job starts
        )
    except ValidationError as exc:
        raise JobsFileError(f"{where}: {exc}") from None


def _add(batch: Batch, job: JobLine, *, edit: bool, jobs_name: str) -> None:
    try:
        if edit:
            batch.edit(job.prompt, key=job.key, **job.params)
        else:
            batch.add(job.prompt, key=job.key, **job.params)
    except (ValidationError, TypeError) as exc:
        raise JobsFileError(f"{jobs_name} line {job.line}: {exc}") from None


def _reason(error: BaseException | None, describe: Callable[[BaseException], str]) -> str:
    return "" if error is None else describe(error)


class _Display:
    """What the run shows: a live display on a terminal, plain lines otherwise."""

    def __init__(self, total: int, console: Console | None, secrets: Sequence[str]) -> None:
        self.total = total
        self.console = console
        self.secrets = tuple(secrets)
        self.started = time.monotonic()
        self.finished = 0  # results taken in
        self.ran = 0  # results of jobs run in this run (for the ETA)
        self.succeeded = Tally()  # every job that succeeded, in earlier runs too
        self._live: Any = None
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Display:
        if self.console is not None:
            from rich.live import Live
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[counts]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._task = self._bar.add_task("jobs", total=self.total, counts="")
            self._live = Live(console=self.console, auto_refresh=False, transient=True)
            self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.stop()

    def line(self, text: str, style: str = "") -> None:
        text = clean(text, 500, secrets=self.secrets)
        if self._live is not None:
            from rich.text import Text

            self._live.console.print(Text(text, style=style))
        else:
            print(text, flush=True)

    def result(self, result: JobResult, describe: Callable[[BaseException], str]) -> None:
        self.finished += 1
        if result.ok:
            self.succeeded.succeeded(result)
        seconds = time.monotonic() - self.started
        if result.from_journal:
            self.line(f"[{seconds:6.1f}s] already done  {result.key}", "dim")
        elif result.ok:
            self.ran += 1
            paths = ", ".join(str(p) for p in result.paths)
            tokens = (result.usage or {}).get("total_tokens")
            extra = f"  ({tokens:,} tokens)" if tokens else ""
            self.line(f"[{seconds:6.1f}s] done  {result.key} -> {paths}{extra}", "green")
        else:
            self.ran += 1
            reason = _reason(result.error, describe)
            self.line(f"[{seconds:6.1f}s] failed  {result.key}: {reason}", "red")

    def refresh(self, batch: Batch) -> None:
        if self._live is None:
            return
        from rich.console import Group
        from rich.text import Text

        counts = (
            f"done {batch.done + batch.skipped}  failed {batch.failed}  "
            f"in flight {len(batch.running())}"
        )
        if batch.pauses:
            counts += f"  paused {batch.pauses}x (concurrency {batch.limit})"
        self._bar.update(self._task, completed=self.finished, counts=counts)
        lines: list[RenderableType] = [self._bar]
        running = batch.running()
        for job in running[:_MAX_SHOWN_RUNNING]:
            preview = "waiting" if job.latest_preview is None else f"preview #{job.latest_preview}"
            retry = f"  attempt {job.attempts}" if job.attempts > 1 else ""
            text = clean(f"  {job.key}  {job.seconds:5.1f}s  {preview}{retry}", 200)
            lines.append(Text(text, style="cyan"))
        if len(running) > _MAX_SHOWN_RUNNING:
            lines.append(Text(f"  ... and {len(running) - _MAX_SHOWN_RUNNING} more"))
        self._live.update(Group(*lines), refresh=True)

    def summary(self, batch: Batch, failed: Sequence[tuple[str, str]]) -> None:
        """The summary; ``failed``: the key and the reason of each job that failed."""
        if self._live is not None:
            self._live.stop()
        seconds = time.monotonic() - self.started
        tokens = self.succeeded.tokens.get("total_tokens", 0)
        cost = _money(self.succeeded.cost, self.succeeded.unpriced)
        rows = [
            (
                "done",
                f"{batch.done}"
                + (f" (+{batch.skipped} from earlier runs)" if batch.skipped else ""),
            ),
            ("failed", str(batch.failed)),
            ("images", str(batch.images)),
            ("tokens", f"{tokens:,}"),
            ("estimated cost", cost),
            ("time", f"{seconds:.1f}s"),
        ]
        if batch.pauses:
            rows.append(
                ("rate limited", f"{batch.rate_limited} x 429, paused {batch.paused_seconds:.1f}s")
            )
        if self.console is not None:
            from rich.table import Table

            table = Table(title="ttstream batch", show_header=False)
            for name, value in rows:
                table.add_row(name, value)
            self.console.print(table)
            if failed:
                reasons = Table(title="failed jobs", show_header=True)
                reasons.add_column("key")
                reasons.add_column("reason")
                for key, reason in failed:
                    reasons.add_row(clean(key, 100), clean(reason, 300, secrets=self.secrets))
                self.console.print(reasons)
            return
        print("Summary: " + ", ".join(f"{name} {value}" for name, value in rows), flush=True)
        for key, reason in failed:
            print(clean(f"  failed {key}: {reason}", 500, secrets=self.secrets), flush=True)


def _money(cost: decimal.Decimal | None, unpriced: int) -> str:
    if cost is None:
        if not unpriced:
            return "$0"
        return "unknown" if pricing_available() else "unknown (the cost extra prices it)"
    text = f"${cost:.4f}"
    return f"{text} (+{unpriced} job(s) unpriced)" if unpriced else text


async def _run(
    args: argparse.Namespace,
    jobs: Sequence[JobLine],
    client: AsyncClient,
    display: _Display,
    describe: Callable[[BaseException], str],
) -> bool:
    out = Path(args.out)
    journal = Path(args.journal) if args.journal else out / JOURNAL_NAME
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    # each failure as its key and reason, not its result: an error keeps its last
    # preview (``last_partial``, about a megabyte), which a run of many would pile up
    failures: list[tuple[str, str]] = []
    batch = client.batch(
        concurrency=args.concurrency,
        images_per_minute=args.images_per_minute,
        requests_per_minute=args.requests_per_minute,
        journal=journal,
        out=out,
    )
    for job in jobs:  # every job checked before the first request
        _add(batch, job, edit=args.edit, jobs_name=Path(args.jobs).name)
    async with client, batch:
        async with anyio.create_task_group() as tg:

            async def redraw() -> None:
                while True:
                    display.refresh(batch)
                    await anyio.sleep(_REFRESH)

            tg.start_soon(redraw)
            async for result in batch:
                display.result(result, describe)
                if not result.ok:
                    failures.append((result.key, _reason(result.error, describe)))
            tg.cancel_scope.cancel()
        display.summary(batch, failures)
    return not failures


def _check_options(args: argparse.Namespace) -> None:
    """Refuses the options the batch would refuse (its own checks), before anything
    starts: ``inf`` (or ``1e400``) per minute passed ``> 0`` and failed the run (exit 1)."""
    if args.concurrency < 1:
        raise JobsFileError("--concurrency must be at least 1")
    for name, unit in (("images_per_minute", "images"), ("requests_per_minute", "requests")):
        try:
            validate_positive(name, getattr(args, name), f"{unit} per minute")
        except ValidationError:
            raise JobsFileError(
                f"--{name.replace('_', '-')} must be a finite number more than 0"
            ) from None


def check(args: argparse.Namespace) -> list[JobLine]:
    """The options and the JOBS file checked, before anything starts (the emulator, a
    client): the jobs.

    Raises:
        JobsFileError: a mistake in an option or the JOBS file, or a JOBS file that
            cannot be opened (exit status 2).
        OSError: the JOBS file cannot be read once open.
    """
    _check_options(args)
    return read_jobs(Path(args.jobs), edit=args.edit)


def run(
    args: argparse.Namespace,
    jobs: Sequence[JobLine],
    api_key: str | None,
    base_url: str | None,
    secrets: Sequence[str],
    describe: Callable[[BaseException], str],
) -> int:
    """Runs ``ttstream batch`` on the ``jobs`` of :func:`check`; returns the exit
    status (0 only if every job succeeded).

    Raises:
        TTStreamError, OSError: the client, the journal or the files failed as a whole
            (the caller prints one line; exit status 1); KeyboardInterrupt (130).
    """
    try:
        client = AsyncClient(api_key, base_url=base_url)
    except TTStreamError as exc:
        print(f"ttstream: error: {describe(exc)}", file=sys.stderr)
        return 1
    with _Display(len(jobs), terminal_console(), secrets) as display:
        try:
            ok = anyio.run(_run, args, jobs, client, display, describe)
        except JobsFileError as exc:
            print(f"ttstream: error: {clean(exc, 1000, secrets=secrets)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            journal = Path(args.journal) if args.journal else Path(args.out) / JOURNAL_NAME
            print(
                "ttstream: interrupted; the same command continues where this run stopped "
                f"(journal {clean(journal, 300, secrets=secrets)})",
                file=sys.stderr,
            )
            return 130
    return 0 if ok else 1
