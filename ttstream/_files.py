"""Writing image files without ever overwriting one that is not ours: the suffix of an
``output_format``, an atomic replace, and an exclusive create (``os.link`` of a complete
file). One rule for every writer of images (``FileSink``, ``ttstream.batch``, the CLI).

The batch writes in two steps that survive a kill between them (:class:`Staged`): each
image into a temporary file synced to disk (:func:`stage`), then, once the batch has
journaled them, each linked to its name (:func:`publish`); a rerun checks them
(:func:`restore`) and finishes the links from the journal.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import attrs

__all__ = [
    "MAX_COUNTER",
    "SUFFIXES",
    "Staged",
    "claim_and_write",
    "discard",
    "publish",
    "replace_atomically",
    "restore",
    "stage",
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
_TEMPORARY = re.compile(r"\.ttstream-[0-9a-f]{8}\.tmp")  # the names _temporary makes
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20  # bytes read at a time to hash a file
_NO_DIRECTORY_SYNC = frozenset(  # a directory not to be opened or synced: skipped
    {errno.EACCES, errno.EPERM, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}
)


def suffix_for(output_format: str | None) -> str:
    """The file suffix (no dot) for an event's ``output_format``: from :data:`SUFFIXES`
    (``png`` when absent), else ``bin``. Never the server's string itself, which could
    hold ``/``, ``..`` or a NUL."""
    if output_format is None:
        return "png"
    return SUFFIXES.get(output_format.lower(), "bin")


def _temporary(directory: Path, data: bytes, *, durable: bool = False) -> Path:
    """Writes ``data`` to a new file with a short random name in ``directory``, synced to
    disk (``fsync``) when ``durable``.

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
            if durable:
                file.flush()
                os.fsync(file.fileno())
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
        return _claim(temporary, path)
    finally:
        if temporary.exists():
            os.unlink(temporary)


def _claim(temporary: Path, path: Path) -> bool:
    """Gives the complete file ``temporary`` the name ``path`` if no file has it (see
    :func:`claim_and_write`); ``False`` when the name is taken."""
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


def _check_temporary(staged: Staged, attribute: object, value: str) -> None:
    name = os.path.basename(value)
    if not _TEMPORARY.fullmatch(name) or os.path.dirname(value) != os.path.dirname(staged.path):
        raise ValueError(f"temporary {value!r} is not a .ttstream-<8 hex>.tmp next to its path")


def _check_sha256(staged: Staged, attribute: object, value: str) -> None:
    if not _SHA256.fullmatch(value):
        raise ValueError(f"sha256 {value!r} is not 64 lowercase hex digits")


@attrs.frozen(kw_only=True)
class Staged:
    """An image written but not yet named: its complete file at ``temporary`` (a
    ``.ttstream-<8 hex>.tmp`` in the same directory, synced to disk), ``size`` in bytes
    and ``sha256`` (hex), and the free name ``path`` it is to be linked to.

    Raises:
        ValueError: a ``temporary`` not of that form, or a ``sha256`` not 64 hex digits
            (a journal row edited by hand).
    """

    path: str = attrs.field(validator=attrs.validators.instance_of(str))
    temporary: str = attrs.field(validator=[attrs.validators.instance_of(str), _check_temporary])
    size: int = attrs.field(validator=[attrs.validators.instance_of(int), attrs.validators.ge(0)])
    sha256: str = attrs.field(validator=[attrs.validators.instance_of(str), _check_sha256])


def _free_name(directory: Path, name: str) -> Path:
    """``directory/name``, or the first of ``stem_2.ext``, ``stem_3.ext``, ... that no
    file has; ``FileExistsError`` after :data:`MAX_COUNTER` names."""
    stem, dot, suffix = name.rpartition(".")
    for counter in range(1, MAX_COUNTER + 1):
        path = directory / (name if counter == 1 else f"{stem}_{counter}{dot}{suffix}")
        if not os.path.lexists(path):
            return path
    raise FileExistsError(errno.EEXIST, "every name is taken", str(directory / name))


def _sync_directory(directory: Path) -> None:
    """Makes the names just created or removed in ``directory`` durable (``fsync`` of
    the directory), where the system lets it: a directory this user may write in but
    not read (mode ``-wx``), or a file system that does not sync directories, is left
    unsynced (as SQLite does), not an error: the files themselves are synced.

    Raises:
        OSError: any other failure (``EIO``: the disk), or a missing directory.
    """
    if not hasattr(os, "O_DIRECTORY"):  # pragma: no cover - Windows
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno in _NO_DIRECTORY_SYNC:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_DIRECTORY_SYNC:
            raise
    finally:
        os.close(fd)


def stage(directory: Path, files: Sequence[tuple[str, bytes]]) -> list[Staged]:
    """Writes each ``(name, data)`` of ``files`` to a temporary file of ``directory``,
    synced to disk with its directory, and picks its free name (``name``, else
    ``stem_2.ext``, ...). Nothing has a final name yet: :func:`publish` gives them.

    Raises:
        OSError: writing failed (no temporary file is left), or :data:`MAX_COUNTER`
            names of one file are taken (``FileExistsError``).
    """
    staged: list[Staged] = []
    try:
        for name, data in files:
            temporary = _temporary(directory, data, durable=True)
            staged.append(
                Staged(
                    path=str(_free_name(directory, name)),
                    temporary=str(temporary),
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
        _sync_directory(directory)
    except BaseException:
        discard(staged)
        raise
    return staged


def publish(staged: list[Staged], start: int, *, named: Collection[int] = ()) -> int:
    """Links ``staged[start:]`` to their names, in order, never over a file, and returns
    how many of ``staged`` have their names: all (then the temporary files are removed),
    or up to one whose name another writer took since it was picked, which gets the next
    free name in ``staged`` (journal it again, then call again from there). The numbers
    in ``named`` are skipped: those files are at their names already (:func:`restore`)."""
    for number in range(start, len(staged)):
        if number in named:
            continue
        item = staged[number]
        path = Path(item.path)
        if not _claim(Path(item.temporary), path):
            staged[number] = attrs.evolve(item, path=str(_free_name(path.parent, path.name)))
            return number
    discard(staged)
    return len(staged)


def restore(staged: Sequence[Staged]) -> set[int] | None:
    """Checks the files of ``staged``, which an earlier run journaled, before any is
    linked: the numbers of those already at their names with their content (size and
    SHA-256), the others being intact in their temporary files (give them their names
    with :func:`publish`); or ``None`` when one is neither, and then the temporary files
    are removed and nothing gets a new name (the job runs again, and its new files get
    the names these would have had, not ``key_2.png``).

    Raises:
        OSError: a file could not be read (other than missing); nothing is removed then,
            so a later call can try again.
    """
    named = {number for number, item in enumerate(staged) if _holds(Path(item.path), item)}
    if all(
        number in named or _holds(Path(item.temporary), item) for number, item in enumerate(staged)
    ):
        return named
    discard(staged)
    return None


def discard(staged: Sequence[Staged]) -> None:
    """Removes the temporary files of ``staged`` that are still there (the directory is
    synced only when one was: a directory removed since is no error)."""
    removed = False
    for item in staged:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(item.temporary)
            removed = True
    if removed:
        _sync_directory(Path(staged[0].path).parent)


def _holds(path: Path, staged: Staged) -> bool:
    """Whether ``path`` is a regular file of ``staged``'s size and SHA-256 (read in
    chunks, only when the size is right)."""
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode) or status.st_size != staged.size:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return False
    return digest.hexdigest() == staged.sha256
