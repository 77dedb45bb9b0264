"""Writing image files without ever overwriting one that is not ours: the suffix of an
``output_format``, an atomic replace, and an exclusive create (``os.link`` of a complete
file). One rule for every writer of images (``FileSink``, ``ttstream.batch``, the CLI).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "MAX_COUNTER",
    "SUFFIXES",
    "claim_and_write",
    "create_new",
    "replace_atomically",
    "suffix_for",
]

SUFFIXES: Mapping[str, str] = {
    "png": "png",
    "jpeg": "jpg",
    "jpg": "jpg",
    "webp": "webp",
    "gif": "gif",
    "svg": "svg",
}
"""File suffix per ``output_format``; any other format is written as ``.bin``."""
MAX_COUNTER = 10_000  # names tried before giving up: a directory this full is a mistake


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


def replace_atomically(path: Path, data: bytes) -> None:
    """Writes ``data`` over ``path`` atomically: a reader sees the old file or the new
    one, never half of it (a temporary file, then ``os.replace``)."""
    temporary = _temporary(path.parent, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def claim_and_write(path: Path, data: bytes) -> bool:
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
    return claim_and_write(path, data)
