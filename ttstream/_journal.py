"""The batch journal: one SQLite row per job, so that a batch can be run again after a
crash without paying twice for what it finished (docs/batch.md, "The journal").

SQLite from the standard library, in WAL mode with ``synchronous=NORMAL``: every change
is one transaction, so a write torn by a crash or a kill leaves the row as it was
before it (SQLite's atomic commit), never half-written. Every call runs in a worker
thread (``anyio.to_thread``) under a capacity limiter of one token: one writer at a
time, on one connection, and the event loop never waits on the disk.

A row: ``key`` (the caller's), ``params_hash`` (SHA-256 of the job's parameters),
``state`` (``running``, ``done``, ``failed``), ``attempts`` (requests sent for it, in
all runs), ``outputs`` (JSON list of the files written), ``error`` (one line, redacted),
``usage`` (JSON object of token counts), ``cost`` (US dollars as text, or ``NULL``),
``response_id`` and ``sequence_number`` (Responses API background jobs), ``staged``
(JSON list of the files a job is writing, :class:`~ttstream._files.Staged` as objects:
committed before they get their names, so that a rerun after a kill finishes the job
from the disk instead of sending it again), ``updated`` (Unix seconds).

One batch at a time: :meth:`Journal.open` takes an exclusive ``flock`` on
``<journal>.lock`` (a file of its own, created and kept, never SQLite's database, whose
POSIX locks are SQLite's), without waiting, and :meth:`Journal.aclose` gives it back; the
kernel gives it back when the process dies, even by ``kill -9``. A second run on the
same journal is refused with a ``JournalError``: its restore would link and remove the
files the first run is writing. (Windows has no ``flock``: no lock there.)

The schema's version is SQLite's ``user_version``: a journal of an older version is
migrated when it is opened (:data:`_MIGRATIONS`, in one transaction); one of a newer
version is refused with a ``JournalError``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs

from ._exceptions import JournalError
from ._files import Staged
from ._json import loads
from ._secrets import redact

if sys.platform != "win32":
    import fcntl

__all__ = ["MAX_ERROR_CHARS", "Journal", "JournalRow", "params_hash"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    params_hash TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    outputs TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    usage TEXT,
    cost TEXT,
    response_id TEXT,
    sequence_number INTEGER,
    updated REAL NOT NULL
)
"""
_MIGRATIONS = (
    # version 1: the files a job is writing, journaled before they get their names
    "ALTER TABLE jobs ADD COLUMN staged TEXT NOT NULL DEFAULT '[]'",
)
"""The statements that bring the table of version ``i`` to version ``i + 1``."""
_BUSY_TIMEOUT = 30.0
"""Seconds a statement waits for another process's lock before failing."""
MAX_ERROR_CHARS = 1000
"""The longest error text kept in a row, in characters."""


def params_hash(params: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of ``params`` as canonical JSON (sorted keys, no spaces); values
    that are not JSON (bytes, paths) are hashed by their ``repr``-free digest: bytes by
    their own SHA-256, anything else by ``str``."""

    def default(value: object) -> object:
        if isinstance(value, bytes | bytearray | memoryview):
            return "sha256:" + hashlib.sha256(value).hexdigest()
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        return str(value)

    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=default)
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.frozen
class JournalRow:
    """One job as the journal holds it."""

    key: str
    params_hash: str
    state: str
    attempts: int
    outputs: tuple[str, ...]
    error: str | None
    usage: Mapping[str, int]
    cost: str | None
    response_id: str | None
    sequence_number: int | None
    staged: tuple[Staged, ...] = ()


class Journal:
    """A batch's SQLite journal at ``path`` (created if missing, with its table).

    Use ``await Journal.open(path)``, then the coroutine methods; :meth:`aclose` at the
    end. Safe to call from one event loop's many tasks (calls are serialized).

    Raises:
        JournalError: from every method, when SQLite fails; from :meth:`open`, when
            another run holds the journal.
    """

    def __init__(
        self, path: str | os.PathLike[str], connection: sqlite3.Connection, lock: int | None
    ) -> None:
        self.path = os.fspath(path)
        self._db: sqlite3.Connection | None = connection
        self._lock = lock
        self._limiter = anyio.CapacityLimiter(1)

    def __repr__(self) -> str:
        return f"<Journal {self.path!r}>"

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> Journal:
        """Opens (or creates) the journal at ``path``, for this run alone (its lock,
        module docstring).

        Raises:
            JournalError: another run (of this process or another) holds the journal, or
                SQLite failed.
        """
        path = os.fspath(path)
        return cls(path, *await anyio.to_thread.run_sync(_open, path))

    async def _run(self, func: Any, *args: Any) -> Any:
        db = self._db
        if db is None:
            raise JournalError(f"the journal {self.path} is closed")

        def call() -> Any:
            try:
                return func(db, *args)
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: {exc}") from exc

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def rows(self) -> dict[str, JournalRow]:
        """Every row, by key."""
        result: dict[str, JournalRow] = await self._run(_read_all)
        return result

    async def start(self, key: str, hash: str, *, attempts: int) -> None:
        """Marks ``key`` as running (its row created or replaced; outputs, resume point
        and staged files kept only when the hash is the same), with ``attempts`` so
        far."""
        await self._run(_start, key, hash, attempts)

    async def finish(
        self,
        key: str,
        *,
        state: str,
        attempts: int,
        outputs: Sequence[str] = (),
        error: str | None = None,
        usage: Mapping[str, int] | None = None,
        cost: str | None = None,
    ) -> None:
        """Marks ``key`` as ``done`` or ``failed`` (no file staged any more), in one
        transaction."""
        if error is not None:
            error = redact(error)[:MAX_ERROR_CHARS]
        await self._run(
            _finish, key, state, attempts, json.dumps(list(outputs)), error, usage, cost
        )

    async def stage(
        self,
        key: str,
        staged: Sequence[Staged],
        *,
        attempts: int,
        usage: Mapping[str, int] | None,
        cost: str | None,
    ) -> None:
        """Keeps the files ``key`` is writing (as many as its images), with the
        ``attempts``, ``usage`` and ``cost`` that :meth:`finish` would record: what a
        rerun needs to finish the job as ``done`` from them. The row stays ``running``."""
        await self._run(
            _stage, key, json.dumps([attrs.asdict(item) for item in staged]), attempts, usage, cost
        )

    async def progress(self, key: str, *, response_id: str, sequence_number: int) -> None:
        """Keeps a Responses background job's ``response_id`` and last sequence number.
        An id that the one redaction would change (a server echoing the key as its id)
        is not kept: the job then has no resume point."""
        if redact(response_id) != response_id:
            return
        await self._run(_progress, key, response_id, sequence_number)

    async def aclose(self) -> None:
        """Closes the connection (after the calls in progress), then gives the lock
        back. Idempotent."""
        db, self._db = self._db, None
        if db is not None:
            await anyio.to_thread.run_sync(
                _close, db, self._lock, limiter=self._limiter, abandon_on_cancel=False
            )


def _open(path: str) -> tuple[sqlite3.Connection, int | None]:
    """The connection to the journal at ``path``, after its lock (:func:`_lock`)."""
    lock = _lock(path)
    try:
        return _connect(path), lock
    except BaseException:
        if lock is not None:
            os.close(lock)
        raise


def _close(db: sqlite3.Connection, lock: int | None) -> None:
    try:
        db.close()
    finally:
        if lock is not None:
            os.close(lock)  # frees the flock


def _lock(path: str) -> int | None:
    """Takes the exclusive ``flock`` of ``<path>.lock`` without waiting and returns its
    descriptor (closing it frees the lock); ``None`` on Windows.

    Raises:
        JournalError: another run holds it, or the lock file cannot be opened.
    """
    if sys.platform == "win32":  # pragma: no cover - no flock
        return None
    lock_path = f"{path}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise JournalError(f"journal {path}: its lock file {lock_path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise JournalError(f"journal {path}: its lock file {lock_path}: {exc}") from exc
        raise JournalError(
            f"the journal {path} is in use by another batch run (it holds {lock_path}):"
            " a journal serves one run at a time; wait for that run to end (or stop it),"
            " or give this run another journal"
        ) from None
    return fd


def _connect(path: str) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT, check_same_thread=False, isolation_level=None
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            _migrate(db)
        except BaseException:
            db.close()
            raise
    except sqlite3.Error as exc:
        raise JournalError(f"journal {path}: {exc}") from exc
    return db


def _migrate(db: sqlite3.Connection) -> None:
    """Creates the table (version 0) if missing, then brings it to the latest version."""
    with _transaction(db):
        db.execute(_SCHEMA)
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > len(_MIGRATIONS):
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this ttstream reads"
                f" (at most {len(_MIGRATIONS)}): a newer ttstream wrote it"
            )
        for statement in _MIGRATIONS[version:]:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {len(_MIGRATIONS)}")


def _read_all(db: sqlite3.Connection) -> dict[str, JournalRow]:
    rows = db.execute(
        "SELECT key, params_hash, state, attempts, outputs, error, usage, cost,"
        " response_id, sequence_number, staged FROM jobs"
    ).fetchall()
    try:
        return {row[0]: _row(row) for row in rows}
    except (ValueError, TypeError) as exc:
        # a row this module did not write (edited by hand, or by another program)
        raise sqlite3.DatabaseError(f"a row of table jobs is malformed ({exc})") from None


def _row(row: Any) -> JournalRow:
    outputs = loads(row[4] or "[]")
    usage = loads(row[6]) if row[6] else {}
    if not (isinstance(outputs, list) and all(isinstance(path, str) for path in outputs)):
        raise TypeError(f"outputs of {row[0]!r} is not a JSON list of paths")
    if not isinstance(usage, dict):
        raise TypeError(f"usage of {row[0]!r} is not a JSON object")
    staged = loads(row[10] or "[]")
    if not (isinstance(staged, list) and all(isinstance(item, dict) for item in staged)):
        raise TypeError(f"staged of {row[0]!r} is not a JSON list of objects")
    return JournalRow(
        key=row[0],
        params_hash=row[1],
        state=row[2],
        attempts=int(row[3]),
        outputs=tuple(outputs),
        error=row[5],
        usage=usage,
        cost=row[7],
        response_id=row[8],
        sequence_number=row[9],
        staged=tuple(Staged(**item) for item in staged),
    )


def _start(db: sqlite3.Connection, key: str, hash: str, attempts: int) -> None:
    with _transaction(db):
        db.execute(
            "INSERT INTO jobs (key, params_hash, state, attempts, updated)"
            " VALUES (?, ?, 'running', ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET state='running', attempts=excluded.attempts,"
            " error=NULL, updated=excluded.updated,"
            " response_id=CASE WHEN params_hash=excluded.params_hash THEN response_id END,"
            " sequence_number=CASE WHEN params_hash=excluded.params_hash"
            " THEN sequence_number END,"
            " staged=CASE WHEN params_hash=excluded.params_hash THEN staged ELSE '[]' END,"
            " params_hash=excluded.params_hash",
            (key, hash, attempts, time.time()),
        )


def _finish(
    db: sqlite3.Connection,
    key: str,
    state: str,
    attempts: int,
    outputs: str,
    error: str | None,
    usage: Mapping[str, int] | None,
    cost: str | None,
) -> None:
    with _transaction(db):
        db.execute(
            "UPDATE jobs SET state=?, attempts=?, outputs=?, error=?, usage=?, cost=?,"
            " staged='[]', updated=? WHERE key=?",
            (
                state,
                attempts,
                outputs,
                error,
                _usage_text(usage),
                cost,
                time.time(),
                key,
            ),
        )


def _stage(
    db: sqlite3.Connection,
    key: str,
    staged: str,
    attempts: int,
    usage: Mapping[str, int] | None,
    cost: str | None,
) -> None:
    with _transaction(db):
        db.execute(
            "UPDATE jobs SET staged=?, attempts=?, usage=?, cost=?, updated=? WHERE key=?",
            (
                staged,
                attempts,
                _usage_text(usage),
                cost,
                time.time(),
                key,
            ),
        )


def _usage_text(usage: Mapping[str, int] | None) -> str | None:
    return None if usage is None else json.dumps(dict(usage))


def _progress(db: sqlite3.Connection, key: str, response_id: str, sequence_number: int) -> None:
    with _transaction(db):
        db.execute(
            "UPDATE jobs SET response_id=?, sequence_number=?, updated=? WHERE key=?",
            (response_id, sequence_number, time.time(), key),
        )


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
