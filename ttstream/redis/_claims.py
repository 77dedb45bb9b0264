"""One generation per job across workers: ``start_once`` and its claim in Redis (the
claims of :mod:`ttstream.redis`; also importable from ``ttstream.relay``, its old home).

A user who retries, a second tab, a request that lands on another worker: each asks for
the same job, and only the first may start a (billed) generation; the others attach to
its stream (``RedisRelay`` serves it). ``start_once`` takes the job's claim (the key
:func:`claim_key`, ``running:<token>`` with an expiry of ``claim_ttl``), renews it while
the generation runs, and on the way out makes sure the job's stream ends with a terminal
entry. A generation that succeeded turns its claim into ``done:<token>`` for as long as
the stream lives (``ttl``), so a retry after the end attaches to the finished stream
instead of paying again; one that failed leaves ``done:failed:<token>``, which the next
``start_once`` takes over at once (a retry).

Every write of a claimed job (its entries, its terminal entry, the cleanup of an orphaned
stream) is fenced: a Lua script compares the claim with this worker's token in the same
atomic step as the write. A worker whose claim expired (its event loop stalled longer
than ``claim_ttl``) and was taken over writes nothing more and stops with
:class:`~ttstream.redis.ClaimLostError`.

A worker that dies mid-generation stops renewing: its claim expires after at most
``claim_ttl`` seconds. ``RedisRelay(claims=True)`` then ends that stream for its
browsers with an error event, and the next ``start_once`` for the job closes the
orphaned stream (a terminal error entry, then ``DEL``) and starts a new generation. No
stream waits for ever. The layout of the keys is in ``docs/redis.md``.

Uses ``coredis`` (``pip install 'ttstream[redis]'``), imported when called.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from .._bounds import validate_seconds
from .._browser.items import public_message
from .._checks import require_callable
from ._codec import (
    Terminal,
    encode_terminal,
    generation_of,
    is_terminal,
    new_generation,
)
from ._commands import (
    Fence,
    append,
    call,
    check_client,
    claim_key,
    delete_fenced,
    fenced,
    newest_entry,
)
from ._errors import ClaimLostError, RedisStreamError

if TYPE_CHECKING:
    from ._commands import RedisClient

__all__ = ["ClaimLostError", "claim_key", "start_once"]

# KEYS[1] the claim, ARGV[1] our token, ARGV[2] ms: take the claim when it is free or
# left by a failed generation.
_TAKE = """
local held = redis.call('get', KEYS[1])
if held and string.sub(held, 1, 12) ~= 'done:failed:' then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS[1] the claim, ARGV[1] our token: renew (ARGV[2] ms) or hand over (ARGV[2] the new
# value, ARGV[3] ms) only while the claim is still ours.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_HAND_OVER = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end"  # noqa: E501


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


async def start_once(
    redis: RedisClient,
    job_key: str,
    start: Callable[[], Awaitable[object]],
    *,
    claim_ttl: float = 10.0,
    ttl: float = 3600.0,
    maxlen: int = 1000,
    command_timeout: float = 5.0,
) -> bool:
    """Runs ``start()`` unless another worker has (or had) the job ``job_key``.

    ``start`` runs the generation and writes it to the stream ``job_key``, typically
    ``lambda: pump(client.generate(...), RedisStreamSink(redis, job_key))``.

    Returns ``True`` once ``start()`` has returned here; ``False`` at once when the job
    was claimed elsewhere (running, or finished successfully less than ``ttl`` seconds
    ago): attach to the stream ``job_key`` instead. A job whose last generation failed
    is started again at once.

    While ``start()`` runs, the claim is renewed every ``claim_ttl / 3`` seconds, and
    every write of ttstream's Redis layer to ``job_key`` made from within ``start()``
    (a :class:`~ttstream.redis.RedisStreamSink` of that key, in any task ``start``
    starts) is fenced by the claim. When it ends, however it ends (an error, a
    cancellation), the stream gets a terminal ``error`` entry if ``start`` left it
    without one (the exception's type and message, shortened and redacted) and the
    claim becomes ``done:<token>`` (``done:failed:<token>`` after a failure) for ``ttl``
    seconds.

    Args:
        redis: an entered coredis client made with ``decode_responses=False``.
        job_key: the job's stream key; its claim is :func:`claim_key` of it (in the same
            hash slot, for a Redis Cluster).
        start: runs the generation (awaited here).
        claim_ttl: seconds a claim outlives its last renewal: how long a dead worker's
            job stays claimed (> 0).
        ttl: seconds the finished job stays claimed (its stream's lifetime; > 0).
        maxlen: ``MAXLEN ~`` of the terminal entry this function may append.
        command_timeout: seconds each Redis command may take (> 0).

    Raises:
        ValidationError: a setting that is not a finite number of seconds > 0, a
            ``redis`` that is no coredis client (or decodes responses), a ``start`` that
            is not callable, or a key whose claim cannot share its hash slot
            (:func:`claim_key`); before the claim is taken.
        ClaimLostError: the claim was lost while the generation ran (renewals failed for
            ``claim_ttl`` seconds, or another worker took the expired claim): ``start()``
            was cancelled, or its next write refused; nothing more was written.
        RedisStreamError: Redis failed at the claim.
        Exception: what ``start()`` raised (after the terminal entry was written).
    """
    for name, value in (
        ("claim_ttl", claim_ttl),
        ("ttl", ttl),
        ("command_timeout", command_timeout),
    ):
        validate_seconds(name, value)
    check_client(redis, ("eval", "xrevrange"))  # the claim, fenced writes, newest_entry()
    # found before the claim, not as a failed job holding it
    allowed = "a function of no arguments returning an awaitable: lambda: pump(...)"
    require_callable("start", start, allowed)
    timeout = command_timeout
    claim = claim_key(job_key)
    token = f"running:{secrets.token_hex(8)}"
    claimed = await call(
        "SET NX",
        claim,
        timeout,
        lambda: redis.eval(_TAKE, [claim], [token, _ms(claim_ttl)]),
    )
    if not claimed:
        return False
    fence = Fence(job_key, claim, token)
    lost: list[str] = []
    failure: BaseException | None = None

    async def hold(scope: anyio.CancelScope) -> None:
        """Renews the claim; on losing it, says why and cancels the generation."""
        renewed_at = anyio.current_time()
        while True:
            await anyio.sleep(claim_ttl / 3)
            try:
                ours = await call(
                    "EVAL renew",
                    claim,
                    timeout,
                    lambda: redis.eval(_RENEW, [claim], [token, _ms(claim_ttl)]),
                )
            except RedisStreamError as exc:
                if anyio.current_time() - renewed_at < claim_ttl:
                    continue
                lost.append(f"the claim {claim!r} expired: renewing it failed: {exc}")
            else:
                if ours:
                    renewed_at = anyio.current_time()
                    continue
                lost.append(f"the claim {claim!r} was lost (it expired and was taken)")
            fence.lost = True
            scope.cancel()
            return

    try:
        with fenced(fence):
            await _close_orphan(redis, fence, maxlen=maxlen, ttl=ttl, limit=timeout)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(hold, tasks.cancel_scope)
                try:
                    await start()
                except Exception as exc:
                    failure = exc
                tasks.cancel_scope.cancel()
    except BaseException as exc:  # a cancellation, or Redis failing before start()
        if isinstance(exc, ClaimLostError):
            lost.append(str(exc))
        failure = exc
        raise
    finally:
        with anyio.CancelScope(shield=True):  # bounded: each Redis call within ``timeout``
            try:
                await _finish(redis, fence, failure, maxlen=maxlen, ttl=ttl, limit=timeout)
            except RedisStreamError:
                if failure is None and not fence.lost:
                    raise
    if fence.lost:
        reason = lost[0] if lost else f"the claim {claim!r} was lost (it expired and was taken)"
        raise ClaimLostError(reason) from failure
    if failure is not None:
        raise failure
    return True


async def _close_orphan(
    redis: RedisClient, fence: Fence, *, maxlen: int, ttl: float, limit: float
) -> None:
    """A stream left by an earlier claim (a dead worker's, or an expired finished one):
    ends it for its browsers with an error entry if it has no terminal one, then
    deletes it, so that the new generation starts a stream of its own. Both writes are
    fenced by our claim."""
    key = fence.stream
    newest = await newest_entry(redis, key, limit)
    if newest is None:
        return
    if not is_terminal(newest[1]):
        orphan = generation_of(newest[1])
        terminal = Terminal(
            outcome="error", message="the worker running this generation stopped before its end"
        )
        generation = new_generation() if orphan is None else orphan.decode("latin-1")
        await _end(redis, fence, terminal, generation, maxlen=maxlen, ttl=ttl, limit=limit)
    await delete_fenced(redis, fence, limit)


async def _end(
    redis: RedisClient,
    fence: Fence,
    terminal: Terminal,
    generation: str,
    *,
    maxlen: int,
    ttl: float,
    limit: float,
) -> None:
    """Appends ``terminal`` to the fenced stream, as an entry of ``generation``."""
    await append(
        redis,
        fence.stream,
        encode_terminal(terminal),
        maxlen=maxlen,
        approximate=True,
        ttl=ttl,
        limit=limit,
        generation=generation,
        fence=fence,
    )


async def _finish(
    redis: RedisClient,
    fence: Fence,
    failure: BaseException | None,
    *,
    maxlen: int,
    ttl: float,
    limit: float,
) -> None:
    """Ends the stream with a terminal entry if it has none, and marks the claim done
    (or failed); both only while the claim is ours."""
    if fence.lost:
        return  # another worker owns the job now: not one more write
    newest = await newest_entry(redis, fence.stream, limit)
    ended = newest is not None and is_terminal(newest[1])
    failed = not ended or failure is not None
    if newest is not None and ended and newest[1].get(b"type") == b"error":
        failed = True
    if not ended:
        if failure is None:
            reason: BaseException | str = "the generation ended without its terminal entry"
        elif isinstance(failure, Exception):
            reason = failure
        else:
            reason = "the generation was cancelled"
        terminal = Terminal(
            outcome="error",
            error="" if isinstance(reason, str) else type(reason).__name__,
            message=public_message(reason),
        )
        await _end(redis, fence, terminal, fence.generation, maxlen=maxlen, ttl=ttl, limit=limit)
    claim = fence.claim
    done = f"done:{'failed:' if failed else ''}{fence.generation}"
    await call(
        "EVAL hand over",
        claim,
        limit,
        lambda: redis.eval(_HAND_OVER, [claim], [fence.token, done, _ms(ttl)]),
    )
