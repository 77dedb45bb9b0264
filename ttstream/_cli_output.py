"""What the ``ttstream`` command prints: a live display on a terminal, plain lines
otherwise, and text from servers made safe to print.

:class:`LiveOutput` (needs ``rich``, the ``cli`` extra) shows a spinner with the elapsed
time and the bytes received while waiting, one status line that each preview updates,
and a line per final image; :class:`PlainOutput` prints one line per file, for pipes,
logs and dumb terminals. Both end with the same summary: time to first preview, total
time, tokens.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ._secrets import MIN_SECRET_CHARS, REDACTED, redact
from .events import Completed, PartialImage

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.spinner import Spinner

__all__ = [
    "LiveOutput",
    "Output",
    "PlainOutput",
    "Progress",
    "clean",
    "make_output",
    "plural",
    "shorten_middle",
    "terminal_console",
]

# C0 and C1 controls, DEL, lone surrogates, and the invisible formatting characters that
# reorder or hide text on a terminal (bidirectional overrides and isolates).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_LINE_BREAKS = re.compile("[\t\n\r\u2028\u2029]+")
_MAX_SHOWN = 300  # characters of server text shown in one line


def clean(text: object, limit: int = _MAX_SHOWN, *, secrets: Iterable[str] = ()) -> str:
    """``text`` as one printable line: each of ``secrets`` (the API keys), every key a
    client registered and any credential header value are replaced by ``[REDACTED]``
    (``ttstream.redact``, the one redaction of ttstream), tabs and line breaks
    become spaces, control characters (terminal escapes), lone surrogates and
    bidirectional overrides are shown as ``\\x1b``-style escapes, and more
    than ``limit`` characters are cut with ``…``.

    Everything the CLI prints that came from a server goes through here, so a server
    cannot move the cursor, rewrite the screen, crash the encoder of ``stdout``, or
    make the CLI print a key it echoed.
    """
    line = str(text)
    for secret in secrets:
        if len(secret) >= MIN_SECRET_CHARS:  # a short one would blot out words
            line = line.replace(secret, REDACTED)
    line = redact(line)
    line = _LINE_BREAKS.sub(" ", line)
    line = _UNSAFE.sub(lambda match: ascii(match.group())[1:-1], line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB"


def plural(count: int, noun: str) -> str:
    """``1 file``, ``4 files``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: the middle replaced by ``…``, keeping a
    third of the room for the start (the directory) and the rest for the end (the
    file name's distinguishing tail, ``-partial-2.png``)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) // 3
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


class Progress:
    """The counters of one run: elapsed time, bytes received, first preview, tokens,
    and where the stream is (which preview of which image), for the lines that say
    where a stream stopped. ``previews`` and ``images`` are what was asked
    (``--partial-images``, ``--n``); previews are numbered from 1."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        previews: int | None = None,
        images: int = 1,
    ) -> None:
        self._clock = clock
        self.started = clock()
        self.previews = previews
        self.images = images
        self.received = 0  # bytes of response bodies, as they arrive
        self.first_preview: float | None = None  # seconds from the start
        self.tokens = 0
        self.images_done = 0
        self.images_seen = 0  # previews and finals
        self.last_preview = 0  # number of the last preview of the image in progress

    def elapsed(self) -> float:
        return self._clock() - self.started

    def saw(self, event: PartialImage | Completed) -> None:
        self.images_seen += 1
        if isinstance(event, PartialImage):
            self.last_preview = event.index + 1
            if self.first_preview is None:
                self.first_preview = self.elapsed()
        if isinstance(event, Completed):
            self.images_done += 1
            self.last_preview = 0
            if event.usage is not None:
                self.tokens += event.usage.total_tokens or 0

    def preview_name(self, number: int) -> str:
        """``preview 2 of 3`` (``preview 2`` when the count was not asked)."""
        return f"preview {number}" + (f" of {self.previews}" if self.previews else "")

    def stopped(self) -> str:
        """Where the stream is: ``after preview 2 of 3``, ``after 1 of 2 images and
        preview 1 of 3``, ``before the first preview``."""
        parts = []
        if self.images > 1 and self.images_done:
            parts.append(f"{self.images_done} of {self.images} images")
        elif self.images_done:
            parts.append("the final image")
        if self.last_preview:
            parts.append(self.preview_name(self.last_preview))
        return "after " + " and ".join(parts) if parts else "before the first preview"

    def summary(self, files: int, directory: Path | str) -> str:
        parts = [f"{plural(files, 'file')} in {directory}/", f"total {self.elapsed():.1f}s"]
        if self.first_preview is not None:
            parts.insert(1, f"first preview after {self.first_preview:.1f}s")
        if self.tokens:
            parts.append(f"{self.tokens:,} tokens")
        return "Done: " + ", ".join(parts)


def label(event: PartialImage | Completed, progress: Progress, several: bool) -> str:
    """``preview 1 of 3``, ``final image``, or ``image 2 preview 1 of 3`` when ``n > 1``
    (previews numbered from 1, as the browser element numbers them); call before
    ``progress.saw(event)``."""
    image = f"image {progress.images_done + 1} " if several else ""
    if isinstance(event, PartialImage):
        return f"{image}{progress.preview_name(event.index + 1)}"
    return f"{image}final image"


class Output(Protocol):
    """Where the run's progress goes."""

    def __enter__(self) -> Output: ...
    def __exit__(self, *exc_info: object) -> None: ...
    def start(self, what: str) -> None: ...
    def wrote(self, event: PartialImage | Completed, path: Path, shape: str) -> None: ...
    def notice(self, text: str) -> None: ...
    def log(self, line: str) -> None: ...
    def done(self, files: int, directory: Path) -> None: ...


class PlainOutput:
    """One line per file written, as ``[  3.1s] preview 1 of 3  1024x1024  845 KiB -> path``
    (paths in full, for scripts); log lines on stderr."""

    def __init__(self, progress: Progress, *, several: bool, secrets: Iterable[str] = ()) -> None:
        self.progress = progress
        self.several = several
        self.secrets = tuple(secrets)

    def __enter__(self) -> PlainOutput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def start(self, what: str) -> None:
        print(f"{what}...", flush=True)

    def wrote(self, event: PartialImage | Completed, path: Path, shape: str) -> None:
        name = label(event, self.progress, self.several)
        self.progress.saw(event)
        seconds = self.progress.elapsed()
        size = kib(len(event.image_bytes))
        print(f"[{seconds:5.1f}s] {name:<24} {clean(shape, 20):>9} {size:>10}  -> {path}")
        if isinstance(event, Completed) and event.usage is not None:
            print(f"         tokens used: {event.usage.total_tokens}")

    def notice(self, text: str) -> None:
        print(clean(text, secrets=self.secrets), flush=True)

    def log(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def done(self, files: int, directory: Path) -> None:
        print(self.progress.summary(files, directory))


class _Status:
    """The live area: a spinner line (what, elapsed, bytes received) and one status line
    that the latest preview rewrites. Rendered afresh at each refresh."""

    def __init__(self, progress: Progress, spinner: Spinner) -> None:
        self.progress = progress
        self.spinner = spinner
        self.what = ""
        self.line = ""

    def __rich__(self) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        received = self.progress.received
        amount = kib(received) if received < 1024 * 1024 else f"{received / 1048576:,.1f} MiB"
        self.spinner.update(
            text=Text(f"{self.what}  {self.progress.elapsed():.1f}s  {amount} received")
        )
        if not self.line:
            return self.spinner
        return Group(self.spinner, Text("  " + self.line, style="cyan"))


class LiveOutput:
    """A ``rich`` live display on a terminal; see the module docstring."""

    def __init__(
        self, progress: Progress, console: Console, *, several: bool, secrets: Iterable[str] = ()
    ) -> None:
        from rich.live import Live
        from rich.spinner import Spinner

        self.progress = progress
        self.console = console
        self.several = several
        self.secrets = tuple(secrets)
        self._status = _Status(progress, Spinner("dots"))
        self._live: Live = Live(
            self._status, console=console, refresh_per_second=12, transient=True
        )

    def __enter__(self) -> LiveOutput:
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def _print(self, line: str, style: str = "", *, fitted: bool = False) -> None:
        """Prints ``line`` above the live area, through the display's console (rich
        clears the area, prints, and draws it again: nothing is left behind); a
        ``fitted`` line is cut at the terminal's edge rather than wrapped."""
        from rich.text import Text

        text = Text(line, style=style)
        if fitted:
            text.no_wrap, text.overflow = True, "ellipsis"
        self._live.console.print(text)

    def _fitted(self, line: str, path: Path | str, indent: int = 0) -> str:
        """``line`` followed by ``path``, the path shortened in the middle so that the
        whole fits the terminal's width (a path never wraps in the middle of a name)."""
        room = self.console.width - indent - len(line)
        return line + shorten_middle(str(path), max(room, 12))

    def start(self, what: str) -> None:
        self._status.what = what

    def wrote(self, event: PartialImage | Completed, path: Path, shape: str) -> None:
        name = label(event, self.progress, self.several)
        self.progress.saw(event)
        line = f"{name}  {clean(shape, 20)}  {kib(len(event.image_bytes))}  -> "
        if isinstance(event, PartialImage):
            self._status.line = self._fitted(line, path, indent=2)
        else:
            self._status.line = ""
            tokens = (
                f"  ({event.usage.total_tokens:,} tokens)"
                if event.usage and event.usage.total_tokens
                else ""
            )
            start = f"[{self.progress.elapsed():5.1f}s] {line}"
            room = self.console.width - len(start) - len(tokens)
            path_shown = shorten_middle(str(path), max(room, 12))
            self._print(start + path_shown + tokens, "green", fitted=True)
        self._live.refresh()

    def notice(self, text: str) -> None:
        self._print(clean(text, secrets=self.secrets), "yellow")

    def log(self, line: str) -> None:
        self._print(line, "dim")

    def done(self, files: int, directory: Path) -> None:
        self._live.stop()
        room = self.console.width - len(self.progress.summary(files, ""))
        shown = shorten_middle(str(directory), max(room, 12))
        self._print(self.progress.summary(files, shown), "bold", fitted=True)


def make_output(progress: Progress, *, several: bool, secrets: Iterable[str] = ()) -> Output:
    """A :class:`LiveOutput` when stdout is a terminal (not ``TERM=dumb``) and ``rich``
    is installed, else a :class:`PlainOutput`; ``secrets`` are redacted from notices."""
    plain = PlainOutput(progress, several=several, secrets=secrets)
    console = terminal_console()
    if console is None:
        return plain
    return LiveOutput(progress, console, several=several, secrets=secrets)


def terminal_console() -> Console | None:
    """A ``rich`` console when stdout is a terminal (not ``TERM=dumb``) and ``rich`` is
    installed; else ``None``: print plain lines."""
    if not sys.stdout.isatty():
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    console = Console(highlight=False)
    if not console.is_terminal or console.is_dumb_terminal:
        return None
    return console
