"""FileSink: every preview and every final image written to a directory, atomically,
never over a file it did not write itself."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import anyio

from .._checks import require_path
from .._event_types import Event, StreamItem
from .._exceptions import ValidationError
from .._files import (
    MAX_COUNTER,
    SUFFIXES,
    claim_and_write,
    replace_atomically,
    suffix_for,
)
from ..events import Completed, PartialImage

__all__ = ["SUFFIXES", "FileSink", "suffix_for"]

logger = logging.getLogger("ttstream")


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
        ValidationError: (at construction) ``directory`` is no path (a ``str`` or
            ``os.PathLike``) or ``stem`` no ``str``, either contains a NUL, or ``stem``
            a path separator.
        TTStreamError: (from ``send``) a ``Completed`` that carries a URL instead of
            the image (``response_format="url"``): fetch it with
            ``AsyncClient.fetch_image``.
        OSError: (from ``send``) the final image could not be written.
    """

    def __init__(self, directory: str | os.PathLike[str], *, stem: str = "image") -> None:
        self.directory = Path(require_path("directory", directory))
        if not isinstance(stem, str) or "\0" in stem:
            raise ValidationError("stem", stem, "a file name (a str) without NUL characters")
        if "/" in stem or os.sep in stem or (os.altsep and os.altsep in stem):
            raise ValidationError("stem", stem, "a file name without path separators")
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
            replace_atomically(path, data)
            return path
        while not claim_and_write(path, data):
            if self._counter >= MAX_COUNTER:
                raise FileExistsError(errno.EEXIST, "every name is taken", str(path))
            self._counter += 1
            path = self.path_for(event)
        self._claimed.add(path)
        return path

    async def aclose(self) -> None:
        """Nothing to release: every write is complete when ``send`` returns."""
