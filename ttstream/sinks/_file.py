"""FileSink: every preview and every final image written to a directory, atomically,
never over a file it did not write itself."""

from __future__ import annotations

import errno
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import anyio

from .._exceptions import ValidationError
from ..events import Completed, PartialImage
from ..stream import Event, StreamItem

__all__ = ["SUFFIXES", "FileSink", "create_new", "suffix_for"]

logger = logging.getLogger("ttstream")

SUFFIXES: Mapping[str, str] = {
    "png": "png",
    "jpeg": "jpg",
    "jpg": "jpg",
    "webp": "webp",
    "gif": "gif",
    "svg": "svg",
}
"""File suffix per ``output_format``; any other format is written as ``.bin``."""
_MAX_COUNTER = 10_000  # names tried before giving up: a directory this full is a mistake


def suffix_for(output_format: str | None) -> str:
    """The file suffix (no dot) for an event's ``output_format``: from :data:`SUFFIXES`
    (``png`` when absent), else ``bin``. Never the server's string itself, which could
    hold ``/``, ``..`` or a NUL."""
    if output_format is None:
        return "png"
    return SUFFIXES.get(output_format.lower(), "bin")


def _temporary(directory: Path, data: bytes) -> Path:
    """Writes ``data`` to a new file with a short random name in ``directory``.

    The name (``.ttstream-<8 hex>.tmp``, 22 characters) does not grow with the final
    name, so final names up to the file system's limit (255 bytes) work. The file gets
    the umask's permissions, like ``open``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = directory / f".ttstream-{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temporary, flags, 0o666)
        except FileExistsError:  # pragma: no cover - 1 in 4 billion
            continue
        break
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def _replace(path: Path, data: bytes) -> None:
    """Writes ``data`` over ``path`` atomically: a reader sees the old file or the new
    one, never half of it (a temporary file, then ``os.replace``)."""
    temporary = _temporary(path.parent, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _create(path: Path, data: bytes) -> bool:
    """Writes ``data`` to ``path`` only if no file has that name, atomically; ``False``
    when the name is taken.

    The complete file is linked to its name with ``os.link``, which fails when the name
    exists, so two processes can never both claim one name and a reader never sees half
    a file. Where the file system has no hard links, the name is claimed with
    ``O_CREAT | O_EXCL`` (an empty file for a moment) and the content renamed over it.
    """
    temporary = _temporary(path.parent, data)
    try:
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                return False
            os.replace(temporary, path)
            return True
        return True
    finally:
        if temporary.exists():
            os.unlink(temporary)


def create_new(path: Path, data: bytes) -> bool:
    """Writes ``data`` to ``path`` only if no file has that name, atomically; ``False``
    when the name is taken: FileSink's no-overwrite rule, for other writers of finals
    (``ttstream.batch``)."""
    return _create(path, data)


def _check_name(param: str, value: str) -> None:
    if "\0" in value:
        raise ValidationError(param, value, "a file name without NUL characters")


class FileSink:
    """Writes each event's image into ``directory`` (created if missing).

    Names: ``{stem}-partial-{index}.{ext}`` for previews and ``{stem}-final.{ext}`` for
    the final image; with several images (``n > 1``) the second and later carry their
    number: ``{stem}-2-partial-0.png``, ``{stem}-2-final.png``. ``ext`` comes from the
    event's ``output_format`` through :data:`SUFFIXES` (``png`` when absent, ``jpg`` for
    ``jpeg``, ``bin`` for a format not listed).

    No file is ever overwritten unless this sink wrote it: a name is claimed
    exclusively at its first write (``os.link`` of the complete file, which fails if
    the name exists), so two sinks, in one process or two, never share a file. When a
    name is taken, the stem gains a counter, ``{stem}_2``, ``{stem}_3``, ..., kept for
    the sink's later files. A preview written again under a name this sink claimed is
    replaced in place, atomically (``os.replace``): a watcher never reads half an
    image. Writes run in a worker thread. ``written`` lists the paths in the order
    written.

    A preview that cannot be written (a full disk, say) is logged as a warning on the
    ``ttstream`` logger and kept in ``failed``, and the sink goes on, so that the final
    image is still tried.

    Raises:
        ValidationError: (at construction) ``stem`` or ``directory`` contains a NUL,
            or ``stem`` a path separator.
        TTStreamError: (from ``send``) a ``Completed`` that carries a URL instead of
            the image (``response_format="url"``): fetch it with
            ``AsyncClient.fetch_image``.
        OSError: (from ``send``) the final image could not be written.
    """

    def __init__(self, directory: str | os.PathLike[str], *, stem: str = "image") -> None:
        _check_name("directory", os.fspath(directory))
        _check_name("stem", stem)
        if "/" in stem or os.sep in stem or (os.altsep and os.altsep in stem):
            raise ValidationError("stem", stem, "a file name without path separators")
        self.directory = Path(directory)
        self.stem = stem
        self.written: list[Path] = []
        self.failed: list[tuple[Path, OSError]] = []
        self._completed = 0
        self._counter = 1
        self._claimed: set[Path] = set()

    def __repr__(self) -> str:
        return f"<FileSink {str(self.directory)!r} stem={self.stem!r} written={len(self.written)}>"

    def path_for(self, event: Event) -> Path:
        """Where ``event`` is written if its name is free (or this sink's already)."""
        stem = self.stem if self._counter == 1 else f"{self.stem}_{self._counter}"
        number = "" if self._completed == 0 else f"-{self._completed + 1}"
        kind = f"partial-{event.index}" if isinstance(event, PartialImage) else "final"
        return self.directory / f"{stem}{number}-{kind}.{suffix_for(event.output_format)}"

    async def send(self, event: StreamItem) -> None:
        """Writes the image of ``event``; ``Reconnecting`` notices are ignored."""
        if not isinstance(event, PartialImage | Completed):
            return
        data = event.image_bytes
        try:
            await anyio.Path(self.directory).mkdir(parents=True, exist_ok=True)
            path = await anyio.to_thread.run_sync(self._write, event, data)
        except OSError as exc:
            if isinstance(event, Completed):
                raise
            self.failed.append((self.path_for(event), exc))
            logger.warning("preview %d not written: %s", event.index, exc)
            return
        self.written.append(path)
        if isinstance(event, Completed):
            self._completed += 1

    def _write(self, event: Event, data: bytes) -> Path:
        """Writes ``data`` under the event's name, claiming the name if it is new."""
        path = self.path_for(event)
        if path in self._claimed:
            _replace(path, data)
            return path
        while not _create(path, data):
            if self._counter >= _MAX_COUNTER:
                raise FileExistsError(errno.EEXIST, "every name is taken", str(path))
            self._counter += 1
            path = self.path_for(event)
        self._claimed.add(path)
        return path

    async def aclose(self) -> None:
        """Nothing to release: every write is complete when ``send`` returns."""
