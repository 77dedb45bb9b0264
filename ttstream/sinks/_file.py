"""FileSink: every preview and every final image written to a directory, atomically."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import anyio

from ..events import Completed, PartialImage
from ..stream import Event, StreamItem

__all__ = ["FileSink"]

_EXTENSIONS = {"jpeg": "jpg"}


def _write_atomically(path: Path, data: bytes) -> None:
    """Writes to a temporary file in the same directory, then renames it over ``path``
    (``os.replace`` is atomic on POSIX and Windows), so a reader sees the old file or the
    new one, never half of it. The file gets the umask's permissions, like ``open``."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
    )
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


class FileSink:
    """Writes each event's image into ``directory`` (created if missing).

    Names: ``{stem}-partial-{index}.{ext}`` for previews and ``{stem}-final.{ext}`` for
    the final image; with several images (``n > 1``) the second and later carry their
    number: ``{stem}-2-partial-0.png``, ``{stem}-2-final.png``. ``ext`` comes from the
    event's ``output_format`` (``png`` when absent, ``jpg`` for ``jpeg``). Writes run in
    a worker thread and are atomic (temporary file plus ``os.replace``). ``written``
    lists the paths in the order written; a preview written again for the same name is
    replaced in place.

    Raises (from ``send``):
        TTStreamError: a ``Completed`` that carries a URL instead of the image
            (``response_format="url"``): fetch it with ``AsyncClient.fetch_image``.
        OSError: the file could not be written.
    """

    def __init__(self, directory: str | os.PathLike[str], *, stem: str = "image") -> None:
        self.directory = Path(directory)
        self.stem = stem
        self.written: list[Path] = []
        self._completed = 0

    def __repr__(self) -> str:
        return f"<FileSink {str(self.directory)!r} stem={self.stem!r} written={len(self.written)}>"

    def path_for(self, event: Event) -> Path:
        """Where ``event`` is written."""
        number = "" if self._completed == 0 else f"-{self._completed + 1}"
        ext = _EXTENSIONS.get(event.output_format or "png", event.output_format or "png")
        kind = f"partial-{event.index}" if isinstance(event, PartialImage) else "final"
        return self.directory / f"{self.stem}{number}-{kind}.{ext}"

    async def send(self, event: StreamItem) -> None:
        """Writes the image of ``event``; ``Reconnecting`` notices are ignored."""
        if not isinstance(event, PartialImage | Completed):
            return
        path = self.path_for(event)
        data = event.image_bytes
        await anyio.Path(self.directory).mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(_write_atomically, path, data)
        self.written.append(path)
        if isinstance(event, Completed):
            self._completed += 1

    async def aclose(self) -> None:
        """Nothing to release: every write is complete when ``send`` returns."""
