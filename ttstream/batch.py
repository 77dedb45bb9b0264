"""``client.batch()``: many generations and edits, within the rate limits, resumable.

A :class:`Batch` runs jobs added with :meth:`Batch.add` / :meth:`Batch.edit` (the
parameters of ``client.generate`` / ``client.edit``, plus a ``key``) and yields one
:class:`JobResult` per job, in completion order (docs/batch.md)::

    async with client.batch(concurrency=8, images_per_minute=60, journal="run.sqlite",
                            out="images") as batch:
        for row in rows:
            batch.add(row.prompt, key=row.sku, size="1024x1024")
        async for result in batch:
            print(result.key, "ok" if result.ok else result.error)

What it guarantees:

- at most ``concurrency`` streams open at once (an anyio capacity limiter);
- requests started no faster than ``requests_per_minute``, images no faster than
  ``images_per_minute`` (a request for ``n`` images counts ``n``): requests are spaced
  evenly, with no burst;
- an HTTP 429 on any request of the client pauses the whole batch for the server's
  ``retry-after-ms`` / ``Retry-After`` (:mod:`ttstream._retry`, else its backoff), and
  halves the concurrency, which then grows back by one after each run of successes as
  long as the concurrency (additive increase, multiplicative decrease);
- each job gets the client's retries and reconnection rules and its own ``deadline=``;
  a job still rate-limited after the client's retries is tried again by the batch, up to
  :data:`MAX_RATE_LIMITED` times (a 429 is not billed);
- one failed job never fails the batch: its result carries the error;
- memory: at most ``concurrency`` finished results wait for the consumer, and a job
  holds its concurrency slot until its result is taken in, so a slow consumer slows the
  batch instead of filling memory;
- leaving the ``async with`` block early (``break``, an exception, a cancellation,
  Ctrl-C) cancels the jobs still running and closes every stream; the journal then holds
  them as ``running``, and the next run sends them again.

With ``journal=`` (a SQLite file, :mod:`ttstream._journal`), a job whose key is
``done`` in the journal with the same parameters is not sent again: its result comes
back at once with ``from_journal=True`` (and the files and usage recorded then). A job
that was in flight or failed is run again (``resumed=True`` for one in flight). With
``out=``, final images are written as ``out/<key>.<ext>`` (``<key>-2.<ext>``, ... for
``n > 1``), never over an existing file (``<key>_2.<ext>`` then), before the job is
recorded as done: first into temporary files synced to disk, whose names, sizes and
SHA-256 the journal keeps (``staged``), then linked to their names. A job left
``running`` with staged files that are all intact (named, or still temporary) is
finished from them by the next run, with nothing sent (``from_journal=True``).
"""

from __future__ import annotations

import contextvars
import decimal
import functools
import math
import os
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypedDict, Unpack

import anyio
import anyio.abc
import attrs
import httpx2
from anyio.from_thread import BlockingPortal

from ._bounds import CLIENT_TIMEOUT, require_int, validate_positive
from ._checks import require_path
from ._cost import estimate_cost, usage_totals
from ._delegate import Delegated
from ._exceptions import (
    APIStatusError,
    APITimeoutError,
    JournalError,
    TTStreamError,
    ValidationError,
)
from ._files import MAX_COUNTER, Staged, discard, publish, restore, stage, suffix_for
from ._journal import Journal, JournalRow, params_hash
from ._options import EditOptions, GenerateOptions, ResponseOptions, StreamOptions
from ._pacing import Pacing
from ._reconnect import Reconnecting
from ._resource import Resource
from ._responses_client import ResponseStream
from ._secrets import names_a_secret
from ._tally import Tally
from .events import Completed, PartialImage
from .stream import ImageStream

__all__ = ["MAX_RATE_LIMITED", "Batch", "BatchOptions", "JobProgress", "JobResult", "SyncBatch"]

MAX_RATE_LIMITED = 5
"""How many times the batch sends a job again that failed with HTTP 429 after the
client's own retries."""
_JOURNAL_WRITE_SECONDS = 30.0  # a shielded journal write at the end of a job
_MAX_KEY_CHARS = 200
_BAD_KEY = re.compile(r"[/\\\x00-\x1f]")
_current_job: contextvars.ContextVar[_Job | None] = contextvars.ContextVar(
    "ttstream_batch_job", default=None
)


class BatchOptions(TypedDict, total=False):
    """The options of a :class:`Batch`, as its docstring documents them: what
    ``client.batch(**options)`` passes on (PEP 692). The defaults are :class:`Batch`'s."""

    concurrency: int
    images_per_minute: float | None
    requests_per_minute: float | None
    journal: str | os.PathLike[str] | None
    out: str | os.PathLike[str] | None


class _Client(Protocol):
    """What a batch uses of :class:`~ttstream.AsyncClient`."""

    base_url: str

    @property
    def http_client(self) -> httpx2.AsyncClient: ...

    @property
    def generate(self) -> Callable[..., ImageStream]: ...

    @property
    def edit(self) -> Callable[..., ImageStream]: ...

    @property
    def fetch_image(self) -> Callable[..., Awaitable[bytes]]: ...

    @property
    def responses(self) -> Any: ...


@attrs.frozen(kw_only=True)
class JobResult:
    """The outcome of one job.

    Attributes:
        key: the job's key.
        events: the final images (``Completed``, one per image) when it succeeded;
            empty for a job found done in the journal (its files are in ``paths``).
        error: the error when it failed (a :class:`~ttstream.TTStreamError`, or an
            ``OSError`` writing its files or reading the files a killed run left for it,
            see ``from_journal``), else ``None``. An edit whose path in ``images`` or
            ``mask`` cannot be read when its request is made (each attempt reads them:
            the first, and one after a 429) fails with a ``ValidationError`` naming the
            path, before that request; a job done in the journal reads none.
        attempts: HTTP requests sent for it (retries and reconnections included), in
            this run and the earlier ones the journal remembers.
        usage: token counts summed over its images (``input_tokens``,
            ``output_tokens``, ``total_tokens``, ...), or ``None`` when unknown.
        cost: estimated US dollars (docs/batch.md, "Cost"), or ``None``.
        paths: the files written (with ``out=``).
        from_journal: done in an earlier run: nothing was sent this time. Also a job
            whose earlier run was killed after its files were written and journaled
            (``staged``) but before it was recorded done: finished from those files.
        resumed: it was in flight when an earlier run stopped, and ran again.
        waited: seconds from ``add`` to its first request (queue, pacing, pauses).
        seconds: seconds from its first request to its end (0 from the journal).
        first_preview: seconds from its first request to its first preview, or ``None``.
    """

    key: str
    events: tuple[Completed, ...] = ()
    error: BaseException | None = None
    attempts: int = 0
    usage: Mapping[str, int] | None = None
    cost: decimal.Decimal | None = None
    paths: tuple[Path, ...] = ()
    from_journal: bool = False
    resumed: bool = False
    waited: float = 0.0
    seconds: float = 0.0
    first_preview: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the job succeeded (now or in an earlier run)."""
        return self.error is None


@attrs.frozen
class JobProgress:
    """A running job, for a progress display: its key, seconds since its first request,
    previews received, the index of the latest one, attempts so far."""

    key: str
    seconds: float
    previews: int
    latest_preview: int | None
    attempts: int


@attrs.define
class _Progress:
    """How far a running job got: when (anyio clock) it started and got its first
    preview, the previews so far and the index of the latest."""

    started_at: float | None = None
    first_preview_at: float | None = None
    previews: int = 0
    latest_preview: int | None = None

    def report(self, key: str, attempts: int, now: float) -> JobProgress:
        return JobProgress(
            key=key,
            seconds=0.0 if self.started_at is None else now - self.started_at,
            previews=self.previews,
            latest_preview=self.latest_preview,
            attempts=attempts,
        )


@attrs.define(eq=False)
class _Job:
    key: str
    model: str | None
    make: Callable[..., ImageStream]  # the keywords of the job, deadline= may override
    hash: str
    images: int
    added_at: float
    batch: Batch
    earlier_attempts: int = 0
    # background Responses: (response id, starting_after, deadline) -> the resume stream
    resume: Callable[[str, int | None, float | None], ImageStream] | None = None
    # A background response's id and the sequence_number to resume after: what a retry
    # reads on, never a new request once the response exists. Journaled when set at a
    # preview (_progress); the id alone kept on a 429 is not (a rerun makes a new request).
    resume_point: tuple[str, int | None] | None = None
    attempts: int = 0
    resumed: bool = False
    progress: _Progress = attrs.Factory(_Progress)

    def new_stream(self, deadline: float | None = None) -> ImageStream:
        """The stream of the next attempt: for a background response that exists, its
        resume; else a new request (a pending job keeps its parameters, not a stream).
        ``deadline``: the seconds left of the job's own (a resend after a 429), else
        ``None`` for the job's as given."""
        if self.resume is not None and self.resume_point is not None:
            return self.resume(*self.resume_point, deadline)
        return self.make() if deadline is None else self.make(deadline=deadline)


def _utf8_size(key: str) -> int | None:
    """The length of ``key`` in UTF-8, or ``None`` when it has a lone surrogate (which
    neither a file name nor the journal can store)."""
    try:
        return len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _check_key(key: str) -> str:
    if (
        not isinstance(key, str)
        or not key
        or len(key) > _MAX_KEY_CHARS
        or (_utf8_size(key) or _MAX_KEY_CHARS + 1) > _MAX_KEY_CHARS
        or key.startswith(".")
        or _BAD_KEY.search(key)
    ):
        raise ValidationError(
            "key",
            key,
            f"a non-empty str of at most {_MAX_KEY_CHARS} bytes in UTF-8, not starting with "
            "'.', without '/', '\\', control characters or lone surrogates (it names the "
            "job's files, whose names have at most 255 bytes)",
        )
    return key


@attrs.define
class _Queue:
    """The jobs of a batch: ``pending`` (not started, in the order added), ``running``
    (by key), every key added, how many results were not taken yet, and the event that
    wakes the dispatcher when a job is added."""

    pending: deque[_Job] = attrs.Factory(deque)
    keys: set[str] = attrs.Factory(set)
    running: dict[str, _Job] = attrs.Factory(dict)
    outstanding: int = 0
    wake: anyio.Event | None = None


class Batch:
    """Many jobs on one client: see the module docstring and docs/batch.md.

    Made by ``client.batch(...)``; use it as ``async with``; add jobs with :meth:`add`
    and :meth:`edit` (before or while iterating); iterate the results with
    ``async for``. Iteration ends when every job added so far has its result.

    Args:
        concurrency: the most streams open at once (>= 1).
        images_per_minute: pacing by images (``n`` per request), or ``None``.
        requests_per_minute: pacing by requests, or ``None``.
        journal: a SQLite file path that makes the batch resumable, or ``None``.
        out: a directory for the final images (``<key>.<ext>``), or ``None``.

    Raises:
        ValidationError: a bad option (at construction); from ``add``/``edit``, a bad
            key, a key added twice, or a parameter the model does not take.
        JournalError: the journal cannot be opened or written; at ``async with``, another
            run holds it (one batch at a time per journal).
    """

    def __init__(
        self,
        client: _Client,
        *,
        concurrency: int = 8,
        images_per_minute: float | None = None,
        requests_per_minute: float | None = None,
        journal: str | os.PathLike[str] | None = None,
        out: str | os.PathLike[str] | None = None,
    ) -> None:
        self._client = client
        self._pacing = Pacing(
            require_int("concurrency", concurrency, 1),
            validate_positive("images_per_minute", images_per_minute, "images per minute"),
            validate_positive("requests_per_minute", requests_per_minute, "requests per minute"),
        )
        self.journal_path = None if journal is None else require_path("journal", journal)
        self.out = None if out is None else Path(require_path("out", out))
        self._queue = _Queue()
        self._entered = False
        self._closed = False
        self._journal: Journal | None = None
        self._rows: dict[str, JournalRow] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._send: Any = None
        self._receive: Any = None
        self._hooks: tuple[Any, Any] | None = None
        self._tally = Tally()

    def __repr__(self) -> str:
        return (
            f"<Batch concurrency={self.limit}/{self.concurrency} done={self.done} "
            f"failed={self.failed} skipped={self.skipped} pending={self.pending}>"
        )

    # ---- the options and counters (read-only) -----------------------------------------

    concurrency: Delegated[int] = Delegated("_pacing")
    """The most streams open at once, as configured."""
    images_per_minute: Delegated[float | None] = Delegated("_pacing")
    """Pacing by images (``n`` per request), or ``None``."""
    requests_per_minute: Delegated[float | None] = Delegated("_pacing")
    """Pacing by requests, or ``None``."""
    limit: Delegated[int] = Delegated("_pacing")
    """The concurrency in force now (lowered after a 429, then grown back)."""
    lowest_limit: Delegated[int] = Delegated("_pacing")
    """The lowest concurrency in force so far."""
    pauses: Delegated[int] = Delegated("_pacing")
    """Pauses of the whole batch after a 429."""
    paused_seconds: Delegated[float] = Delegated("_pacing")
    """Seconds the batch spent paused after 429s (pauses may overlap jobs' own)."""
    rate_limited: Delegated[int] = Delegated("_pacing")
    """HTTP 429 answers seen."""
    done: Delegated[int] = Delegated("_tally")
    """Jobs that succeeded in this run (not counting those found in the journal)."""
    failed: Delegated[int] = Delegated("_tally")
    """Jobs that failed in this run."""
    skipped: Delegated[int] = Delegated("_tally")
    """Jobs found done in the journal: nothing sent for them."""
    resumed: Delegated[int] = Delegated("_tally")
    """Jobs that were in flight when an earlier run stopped, sent again."""
    images: Delegated[int] = Delegated("_tally")
    """Final images received in this run."""
    tokens: Delegated[dict[str, int]] = Delegated("_tally")
    """Token counts summed over this run's jobs (as ``JobResult.usage``)."""
    cost: Delegated[decimal.Decimal | None] = Delegated("_tally")
    """Estimated US dollars of this run's jobs whose cost is known, or ``None``."""
    unpriced: Delegated[int] = Delegated("_tally")
    """Jobs of this run that succeeded with no known cost."""

    @property
    def pending(self) -> int:
        """Jobs added and not started yet."""
        return len(self._queue.pending)

    def running(self) -> list[JobProgress]:
        """The jobs running now, oldest first."""
        now = anyio.current_time()
        return [
            job.progress.report(job.key, job.attempts, now) for job in self._queue.running.values()
        ]

    # ---- adding jobs ------------------------------------------------------------------

    def add(
        self, prompt: str, *, key: str | None = None, **options: Unpack[GenerateOptions]
    ) -> str:
        """Adds a generation: ``options`` are ``client.generate``'s keyword arguments
        (``model``, ``n``, ``size``, ``deadline``, ...), passed through unchanged. Returns
        the key (default ``job-<number>``, numbered from 1 in the order added).

        Raises:
            TypeError: a keyword ``client.generate`` does not take; nothing is added then.
            ValidationError: see the class docstring; nothing is added then.
        """
        make = functools.partial(self._client.generate, prompt, **options)
        described = {"operation": "generation", "prompt": prompt, **_described(options)}
        return self._add(key, make, described, options)

    def edit(self, prompt: str, *, key: str | None = None, **options: Unpack[EditOptions]) -> str:
        """Adds an edit: the arguments of ``client.edit`` (``images``, ``mask``,
        ``model``, ...) plus ``key``. Returns the key. Input files are read when the job
        starts; the journal's parameter hash covers their paths (or bytes), not their
        content. A path that is not a readable file when the job starts fails that job
        (its ``error`` a ``ValidationError`` naming the path); a job done in the journal
        is not run, so its files are not needed.

        Raises:
            ValidationError: as :meth:`add`.
        """
        make = functools.partial(self._client.edit, prompt, **options)
        images = options.get("images")  # none: the TypeError of client.edit, at _add
        inputs = list(images) if isinstance(images, list | tuple) else [images]
        described = {
            "operation": "edit",
            "prompt": prompt,
            **_described(options),
            "images": inputs,
            "mask": options.get("mask"),
        }
        return self._add(key, make, described, options)

    def respond(
        self,
        input: str | Sequence[Mapping[str, Any]],
        *,
        key: str | None = None,
        **options: Unpack[ResponseOptions],
    ) -> str:
        """Adds a Responses API job: the arguments of ``client.responses.stream``
        (``model``, ``input``, ``tools``, ``background``, ...) plus ``key``. Returns the
        key. With ``background=True`` and a journal, the response id and the sequence
        number of the last preview before the first final image are journaled, and a
        rerun that finds the job in flight resumes it
        (``client.responses.resume(id, starting_after=n)``) instead of paying for a new
        generation (docs/batch.md, "The journal")."""
        responses = self._client.responses
        make = functools.partial(responses.stream, input=input, **options)
        described = {"operation": "response", **_described(options), "input": input}
        resume = None
        if options.get("background"):
            stream_options = StreamOptions(
                deadline=options.get("deadline"),
                timeout=options.get("timeout", CLIENT_TIMEOUT),
                extra_headers=options.get("extra_headers"),
                extra_query=options.get("extra_query"),
            )

            def resume(
                response_id: str, starting_after: int | None, left: float | None
            ) -> ImageStream:
                given = stream_options.copy()
                if left is not None:  # what is left of the job's deadline
                    given["deadline"] = left
                stream: ImageStream = responses.resume(
                    response_id, starting_after=starting_after, **given
                )
                return stream

        return self._add(key, make, described, options, resume=resume)

    def _add(
        self,
        key: str | None,
        make: Callable[[], ImageStream],
        described: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        resume: Callable[[str, int | None, float | None], ImageStream] | None = None,
    ) -> str:
        if self._closed:
            raise TTStreamError("this batch has ended: add jobs inside its `async with` block")
        queue = self._queue
        key = _check_key(f"job-{len(queue.keys) + 1}" if key is None else key)
        if key in queue.keys:
            raise ValidationError("key", key, "a key not used by another job of this batch")
        # checks the parameters now (sends nothing, reads no file); the stream is made
        # again when the job starts: a pending job keeps its parameters alone (~1 kB)
        made = make()
        n = params.get("n")
        queue.keys.add(key)
        queue.pending.append(
            _Job(
                key=key,
                model=made.model,
                make=make,
                hash=params_hash(described),
                images=n if isinstance(n, int) and n > 0 else 1,
                added_at=time.monotonic(),
                batch=self,
                resume=resume,
            )
        )
        queue.outstanding += 1
        if queue.wake is not None:
            queue.wake.set()
        return key

    # ---- the context manager and the iterator -----------------------------------------

    async def __aenter__(self) -> Batch:
        if self._entered:
            raise TTStreamError("a batch is used once: call client.batch(...) again")
        self._entered = True
        if self.journal_path is not None:
            self._journal = await Journal.open(self.journal_path)
            try:
                self._rows = await self._journal.rows()
            except BaseException:
                await self._journal.aclose()
                raise
        self._pacing.start()
        self._send, self._receive = anyio.create_memory_object_stream[JobResult](self.concurrency)
        self._install_hooks()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._dispatch)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._closed = True
        assert self._tg is not None
        try:
            self._tg.cancel_scope.cancel()  # what still runs is abandoned: streams close
            # The body's own exception goes on as it is (not in an exception group): the
            # task group only waits here for its cancelled jobs.
            await self._tg.__aexit__(None, None, None)
        finally:
            self._remove_hooks()
            self._send.close()
            self._receive.close()
            if self._journal is not None:
                with anyio.move_on_after(_JOURNAL_WRITE_SECONDS, shield=True):
                    await self._journal.aclose()

    def __aiter__(self) -> Batch:
        return self

    async def __anext__(self) -> JobResult:
        if self._tg is None or self._closed:
            raise TTStreamError("iterate a batch inside its `async with` block")
        if self._queue.outstanding == 0:
            raise StopAsyncIteration
        result: JobResult = await self._receive.receive()
        self._queue.outstanding -= 1
        return result

    # ---- rate limits ---------------------------------------------------------------

    def _install_hooks(self) -> None:
        http = self._client.http_client
        hooks = (self._on_request, self._on_response)
        http.event_hooks = {
            **http.event_hooks,
            "request": [*http.event_hooks["request"], hooks[0]],
            "response": [*http.event_hooks["response"], hooks[1]],
        }
        self._hooks = hooks

    def _remove_hooks(self) -> None:
        if self._hooks is None:
            return
        http = self._client.http_client
        on_request, on_response = self._hooks
        self._hooks = None
        http.event_hooks = {
            **http.event_hooks,
            "request": [h for h in http.event_hooks["request"] if h != on_request],
            "response": [h for h in http.event_hooks["response"] if h != on_response],
        }

    async def _on_request(self, request: httpx2.Request) -> None:
        """Counts the job's attempts; holds every API request while the batch pauses."""
        if not str(request.url).startswith(self._client.base_url):
            return
        job = _current_job.get()
        if job is not None and job.batch is self:
            job.attempts += 1
        await self._pacing.wait_pause()

    async def _on_response(self, response: httpx2.Response) -> None:
        if response.status_code == 429:
            self._pacing.on_rate_limited(response.headers)

    # ---- running jobs ----------------------------------------------------------------

    async def _dispatch(self) -> None:
        assert self._tg is not None
        limiter = self._pacing.limiter
        assert limiter is not None
        queue = self._queue
        while True:
            if not queue.pending:
                queue.wake = anyio.Event()
                await queue.wake.wait()
                continue
            job = queue.pending.popleft()
            row = self._rows.get(job.key)
            if row is not None and row.params_hash == job.hash:
                job.earlier_attempts = row.attempts
                if row.state == "done":
                    self._tally.skipped += 1
                    await self._send.send(_from_journal(job, row))
                    continue
                if row.state == "running" and row.staged and await self._restored(job, row):
                    continue
                job.resumed = row.state == "running"
                if job.resumed and job.resume is not None and row.response_id is not None:
                    # A background response in flight: read it on, not generated again.
                    job.resume_point = (row.response_id, row.sequence_number)
            await limiter.acquire_on_behalf_of(job)
            try:
                await self._pacing.pace(job.images)
            except BaseException:
                limiter.release_on_behalf_of(job)
                raise
            queue.running[job.key] = job
            self._tg.start_soon(self._run, job)

    async def _restored(self, job: _Job, row: JournalRow) -> bool:
        """Finishes a job that an earlier run left ``running`` after journaling its files
        (:meth:`_save`): when every one is intact (:func:`~ttstream._files.restore`), those
        not at their names yet get them (:meth:`_name`, as in :meth:`_save`), the job
        is recorded ``done`` and its result sent (``from_journal=True``, counted as
        skipped), and ``True`` returned; else ``False``, and the job runs again. A file
        that cannot be read or linked, or a journal that cannot be written, fails the job
        without a request, its row kept for the next run."""
        assert self._journal is not None
        staged = list(row.staged)
        try:
            named = await anyio.to_thread.run_sync(restore, staged)
            if named is None:
                return False
            usage = dict(row.usage) or None
            await self._name(
                row.key, staged, attempts=row.attempts, usage=usage, cost=row.cost, named=named
            )
        except (OSError, JournalError) as exc:
            self._tally.failed += 1
            await self._send.send(JobResult(key=job.key, error=exc, attempts=row.attempts))
            return True
        row = attrs.evolve(row, state="done", outputs=tuple(item.path for item in staged))
        with anyio.move_on_after(_JOURNAL_WRITE_SECONDS, shield=True):
            await self._journal.finish(
                row.key,
                state=row.state,
                attempts=row.attempts,
                outputs=row.outputs,
                usage=dict(row.usage) or None,
                cost=row.cost,
            )
        self._tally.skipped += 1
        await self._send.send(_from_journal(job, row))
        return True

    async def _run(self, job: _Job) -> None:
        limiter = self._pacing.limiter
        assert limiter is not None
        try:
            if job.resumed:
                self._tally.resumed += 1
            result = await self._result(job)
            if result.ok:
                self._tally.succeeded(result)
                self._pacing.succeeded()
            else:
                self._tally.failed += 1
            await self._send.send(result)
        finally:
            self._queue.running.pop(job.key, None)
            limiter.release_on_behalf_of(job)

    async def _result(self, job: _Job) -> JobResult:
        token = _current_job.set(job)
        job.progress.started_at = anyio.current_time()
        waited = time.monotonic() - job.added_at
        try:
            if self._journal is not None:
                await self._journal.start(job.key, job.hash, attempts=job.earlier_attempts)
            events = await self._attempts(job)
            files = await self._images(job, events) if self.out is not None else []
            result = self._result_of(job, waited, events=events)
            if files:
                # Shielded: the job is paid for; a cancellation now (Ctrl-C) waits for its
                # files and their journal rows instead of making the next run pay again.
                # Bounded as the writes are (a worker thread cannot be interrupted anyway;
                # each journal write within its own 30 s).
                with anyio.CancelScope(shield=True):
                    paths = await self._save(result, files)
                result = attrs.evolve(result, paths=tuple(paths))
        except (TTStreamError, OSError) as exc:
            result = self._result_of(job, waited, error=exc)
            await self._record(result, state="failed")
            return result
        except anyio.get_cancelled_exc_class():
            if self._journal is not None:  # still running: only its attempts so far
                with anyio.move_on_after(_JOURNAL_WRITE_SECONDS, shield=True):
                    attempts = job.earlier_attempts + job.attempts
                    await self._journal.start(job.key, job.hash, attempts=attempts)
            raise
        finally:
            _current_job.reset(token)
        await self._record(result, state="done")
        return result

    def _result_of(
        self,
        job: _Job,
        waited: float,
        *,
        events: Sequence[Completed] = (),
        error: BaseException | None = None,
    ) -> JobResult:
        usages = [event.usage for event in events]
        now = anyio.current_time()
        progress = job.progress
        started = progress.started_at if progress.started_at is not None else now
        return JobResult(
            key=job.key,
            events=tuple(events),
            error=error,
            attempts=job.earlier_attempts + job.attempts,
            usage=usage_totals(usages) if events else None,
            cost=estimate_cost(job.model, usages) if events else None,
            resumed=job.resumed,
            waited=waited,
            seconds=now - started,
            first_preview=(
                None if progress.first_preview_at is None else progress.first_preview_at - started
            ),
        )

    async def _record(self, result: JobResult, *, state: str) -> None:
        """Writes the job's end to the journal, shielded: a cancellation arriving now
        does not leave a finished job recorded as running."""
        if self._journal is None:
            return
        with anyio.move_on_after(_JOURNAL_WRITE_SECONDS, shield=True):
            await self._journal.finish(
                result.key,
                state=state,
                attempts=result.attempts,
                outputs=[str(path) for path in result.paths],
                error=None if result.error is None else _one_line(result.error),
                usage=result.usage,
                cost=None if result.cost is None else str(result.cost),
            )

    async def _attempts(self, job: _Job) -> list[Completed]:
        """The job's final images: its stream, sent again after a 429 past the client's
        retries (up to :data:`MAX_RATE_LIMITED` times) while its deadline, counted from
        its first request, has time left; each resend gets what is left of it.

        Raises:
            TTStreamError: the stream's error; a 429 past the resends.
            APITimeoutError: (``timeout="deadline"``) the deadline passed while the job
                was rate-limited: in a pause, waiting for its slot, or in a resend.
        """
        rate_limited = 0
        progress = job.progress
        deadline_at = math.inf  # the job's, on anyio's clock, once its first stream started
        left: float | None = None
        while True:
            events: list[Completed] = []
            stream = job.new_stream(left)
            try:
                async with stream:
                    async for item in stream:
                        if isinstance(item, PartialImage):
                            if progress.first_preview_at is None:
                                progress.first_preview_at = anyio.current_time()
                            if not events:  # journaled before it is shown
                                await self._progress(job, stream)
                            progress.previews += 1
                            progress.latest_preview = item.index
                        elif isinstance(item, Completed):
                            events.append(item)
                        elif isinstance(item, Reconnecting):
                            pass  # counted by the request hook as an attempt
            except APITimeoutError as exc:
                if left is None or exc.timeout != "deadline":
                    raise
                raise _out_of_time(rate_limited, exc) from exc  # in a resend
            except APIStatusError as exc:
                deadline_at = min(deadline_at, stream.deadline_at)
                if exc.status_code != 429 or rate_limited >= MAX_RATE_LIMITED:
                    raise
                rate_limited += 1
                if (
                    job.resume is not None
                    and job.resume_point is None
                    and isinstance(stream, ResponseStream)
                ):
                    # it exists once it has an id: the retry resumes it (new_stream)
                    response_id = stream.response_id
                    job.resume_point = None if response_id is None else (response_id, None)
                with anyio.move_on_at(deadline_at):
                    await self._pacing.pace(job.images)
                if deadline_at < math.inf:
                    left = deadline_at - anyio.current_time()
                    if left <= 0:  # the pause or the pacing outlasted the deadline
                        raise _out_of_time(rate_limited, exc) from exc
                continue
            return events

    async def _progress(self, job: _Job, stream: ImageStream) -> None:
        """Keeps, and journals, a background response's id and the sequence number of a
        preview before its first final image (called only then): a resume must deliver
        every final image again, as none is written before the job ends."""
        if job.resume is None or not isinstance(stream, ResponseStream):
            return
        response_id, number = stream.response_id, stream.last_sequence_number
        if response_id is None or number is None:
            return
        job.resume_point = (response_id, number)
        if self._journal is not None:
            # shielded: a cancellation arriving now still leaves the resume point written
            with anyio.move_on_after(_JOURNAL_WRITE_SECONDS, shield=True):
                await self._journal.progress(
                    job.key, response_id=response_id, sequence_number=number
                )

    async def _images(self, job: _Job, events: Sequence[Completed]) -> list[tuple[str, bytes]]:
        """The job's final images as ``(file name, bytes)``, URL results downloaded."""
        files: list[tuple[str, bytes]] = []
        for number, event in enumerate(events, start=1):
            data = (
                await self._client.fetch_image(event)
                if event.b64_json is None and event.url
                else event.image_bytes
            )
            name = job.key if number == 1 else f"{job.key}-{number}"
            files.append((f"{name}.{suffix_for(event.output_format)}", data))
        return files

    async def _save(self, result: JobResult, files: Sequence[tuple[str, bytes]]) -> list[Path]:
        """Writes ``files`` under ``out`` so that a kill at any moment never costs a
        second request for an image written: into temporary files synced to disk (in a
        worker thread, which hashes them), then their names, sizes and SHA-256 committed
        to the journal (with the result's usage and cost), then each linked to its free
        name, never over a file (:meth:`_name`).

        Raises:
            OSError: a file could not be written, or every name is taken; the temporary
                files are removed.
            JournalError: the journal could not be written; the images still get their
                names first (they are paid for: a journal that fails loses none of them).
        """
        assert self.out is not None
        out = self.out
        await anyio.Path(out).mkdir(parents=True, exist_ok=True)
        staged = await anyio.to_thread.run_sync(stage, out, files)
        cost = None if result.cost is None else str(result.cost)
        try:
            await self._name(
                result.key, staged, attempts=result.attempts, usage=result.usage, cost=cost
            )
        except (OSError, TTStreamError):
            await anyio.to_thread.run_sync(discard, staged)
            raise
        return [Path(item.path) for item in staged]

    async def _name(
        self,
        key: str,
        staged: list[Staged],
        *,
        attempts: int,
        usage: Mapping[str, int] | None,
        cost: str | None,
        named: Collection[int] | None = None,
    ) -> None:
        """Gives the files of ``staged`` their names (:func:`~ttstream._files.publish`),
        each journaled first (:meth:`_stage`, with ``attempts``, ``usage`` and ``cost``):
        a name another writer took in between gets the next free one, journaled again
        before its link, at most :data:`MAX_COUNTER` times. ``named``: those of a rerun
        (:meth:`_restored`), journaled already, the numbers of the files at their names.

        Raises:
            OSError: a file could not be linked, or every name is taken.
            JournalError: the journal could not be written; the files still get their
                names first (they are paid for: a journal that fails loses none of them).
        """
        failed: JournalError | None = None
        journaled = named is not None
        linked = 0
        for _ in range(MAX_COUNTER):
            if not journaled and failed is None:
                try:
                    await self._stage(key, staged, attempts=attempts, usage=usage, cost=cost)
                except JournalError as exc:
                    failed = exc
            linked = await anyio.to_thread.run_sync(
                functools.partial(publish, staged, linked, named=named or ())
            )
            if linked == len(staged):
                if failed is not None:
                    raise failed
                return
            journaled = False
        raise FileExistsError(f"every name of {staged[linked].path} is taken")

    async def _stage(
        self,
        key: str,
        staged: Sequence[Staged],
        *,
        attempts: int,
        usage: Mapping[str, int] | None,
        cost: str | None,
    ) -> None:
        """Journals the files being written, shielded like :meth:`_record`: a rerun then
        finishes the job from them instead of paying for it again."""
        if self._journal is None:
            return
        with anyio.move_on_after(_JOURNAL_WRITE_SECONDS, shield=True):
            await self._journal.stage(key, staged, attempts=attempts, usage=usage, cost=cost)


def _described(options: Mapping[str, object]) -> dict[str, object]:
    """What a job's parameter hash covers of its keywords: all but ``deadline`` and
    ``timeout``, which bound how long it may take, ``extra_headers``, which say how it
    is sent (a key, a project), not what it asks for, and the parameters of
    ``extra_query`` whose name says they carry a secret
    (:func:`~ttstream._secrets.names_a_secret`: ``sig``, ``api_key``,
    ``access_token``...), so that a new key is the same job; a query without such
    parameters is covered whole, as before."""
    described = {
        name: value
        for name, value in options.items()
        if name not in ("deadline", "timeout", "extra_headers")
    }
    query = described.get("extra_query")
    if isinstance(query, Mapping):
        described["extra_query"] = {
            name: value
            for name, value in query.items()
            if not (isinstance(name, str) and names_a_secret(name))
        }
    return described


def _out_of_time(resent: int, error: TTStreamError) -> APITimeoutError:
    """The error of a job whose deadline passed while it was rate-limited."""
    return APITimeoutError(
        f"the job's deadline passed while it was rate-limited (HTTP 429; sent again "
        f"{resent} time(s) by the batch)",
        timeout="deadline",
        last_partial=getattr(error, "last_partial", None),
    )


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".replace("\n", " ")


def _from_journal(job: _Job, row: JournalRow) -> JobResult:
    cost = None
    if row.cost is not None:
        try:
            cost = decimal.Decimal(row.cost)
        except decimal.InvalidOperation:
            cost = None
    return JobResult(
        key=job.key,
        attempts=row.attempts,
        usage=dict(row.usage) or None,
        cost=cost,
        paths=tuple(Path(path) for path in row.outputs),
        from_journal=True,
    )


class SyncBatch(Resource):
    """``Client.batch(...)``: a :class:`Batch` driven from synchronous code, through the
    client's event loop thread. ``with client.batch(...) as batch``; ``add``/``edit`` as
    the async batch; iterate with ``for result in batch``. Leaving ``with`` early
    (``break``, an exception, Ctrl-C) cancels the jobs still running."""

    def __init__(self, owner: object, portal: BlockingPortal, batch: Batch) -> None:
        self._owner = owner  # keeps the client, and its loop thread, alive
        self._portal = portal
        self._batch = batch
        self._context: Any = None

    def __repr__(self) -> str:
        return repr(self._batch).replace("<Batch", "<SyncBatch", 1)

    @property
    def batch(self) -> Batch:
        """The async batch underneath (its counters: ``done``, ``failed``, ...)."""
        return self._batch

    def __enter__(self) -> Self:
        self._context = self._portal.wrap_async_context_manager(self._batch)
        self._context.__enter__()
        return self

    def close(self) -> None:
        """Leaves the batch's ``async with`` block: cancels the jobs still running and
        closes their streams; does nothing outside ``with``."""
        context, self._context = self._context, None
        if context is not None:
            context.__exit__(None, None, None)

    def add(
        self, prompt: str, *, key: str | None = None, **options: Unpack[GenerateOptions]
    ) -> str:
        """As :meth:`Batch.add`."""
        return self._portal.call(functools.partial(self._batch.add, prompt, key=key, **options))

    def edit(self, prompt: str, *, key: str | None = None, **options: Unpack[EditOptions]) -> str:
        """As :meth:`Batch.edit`."""
        return self._portal.call(functools.partial(self._batch.edit, prompt, key=key, **options))

    def __iter__(self) -> Iterator[JobResult]:
        while True:
            try:
                yield self._portal.call(self._batch.__anext__)
            except StopAsyncIteration:
                return
