"""One generation per job across workers: ``start_once`` and its claim in Redis.

A user who retries, a second tab, a request that lands on another worker: each asks for
the same job, and only the first may start a (billed) generation; the others attach to
its stream (``RedisRelay`` serves it). ``start_once`` takes the job's claim with
``SET <job_key>:claim running:<token> NX PX <claim_ttl>``, renews it while the generation
runs, and on the way out makes sure the job's stream ends with a terminal entry and
turns the claim into ``done:<token>`` for as long as the stream lives (``ttl``), so a
retry after the end attaches to the finished stream instead of paying again.

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

from ._bounds import validate_seconds
from .sinks._redis import (
    RedisStreamError,
    Terminal,
    append,
    call,
    encode_terminal,
    last_entry,
    public_message,
)

if TYPE_CHECKING:
    from .sinks._redis import RedisClient

__all__ = ["claim_key", "start_once"]

# KEYS[1] the claim, ARGV[1] our token: renew (ARGV[2] ms) or hand over (ARGV[2] the new
# value, ARGV[3] ms) only while the claim is still ours.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_HAND_OVER = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end"  # noqa: E501


def claim_key(job_key: str) -> str:
    """The key of the claim on the job whose stream is ``job_key``: ``<job_key>:claim``."""
    return f"{job_key}:claim"


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
    was claimed elsewhere (running, or finished less than ``ttl`` seconds ago): attach
    to the stream ``job_key`` instead.

    While ``start()`` runs, the claim is renewed every ``claim_ttl / 3`` seconds. When
    it ends, however it ends (an error, a cancellation), the stream gets a terminal
    ``error`` entry if ``start`` left it without one (the exception's type and message,
    shortened) and the claim becomes ``done:<token>`` for ``ttl`` seconds.

    Args:
        redis: an entered coredis client made with ``decode_responses=False``.
        job_key: the job's stream key; its claim is :func:`claim_key` of it.
        start: runs the generation (awaited here).
        claim_ttl: seconds a claim outlives its last renewal: how long a dead worker's
            job stays claimed (> 0).
        ttl: seconds the finished job stays claimed (its stream's lifetime; > 0).
        maxlen: ``MAXLEN ~`` of the terminal entry this function may append.
        command_timeout: seconds each Redis command may take (> 0).

    Raises:
        ValidationError: a setting that is not a finite number of seconds > 0.
        RedisStreamError: Redis failed at the claim, or the claim was lost while the
            generation ran (renewals failed for ``claim_ttl`` seconds, or another worker
            took the expired claim): ``start()`` was then cancelled.
        Exception: what ``start()`` raised (after the terminal entry was written).
    """
    from coredis import PureToken

    for name, value in (
        ("claim_ttl", claim_ttl),
        ("ttl", ttl),
        ("command_timeout", command_timeout),
    ):
        validate_seconds(name, value)
    timeout = command_timeout
    claim = claim_key(job_key)
    token = f"running:{secrets.token_hex(8)}"
    claimed = await call(
        "SET NX",
        claim,
        timeout,
        lambda: redis.set(claim, token, condition=PureToken.NX, px=_ms(claim_ttl)),
    )
    if not claimed:
        return False
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
            scope.cancel()
            return

    try:
        await _close_orphan(redis, job_key, maxlen=maxlen, ttl=ttl, limit=timeout)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold, tasks.cancel_scope)
            try:
                await start()
            except Exception as exc:
                failure = exc
            tasks.cancel_scope.cancel()
    except BaseException as exc:  # a cancellation, or Redis failing before start()
        failure = exc
        raise
    finally:
        with anyio.CancelScope(shield=True):  # bounded: each Redis call within ``timeout``
            try:
                await _finish(
                    redis, job_key, token, failure, lost, maxlen=maxlen, ttl=ttl, limit=timeout
                )
            except RedisStreamError:
                if failure is None and not lost:
                    raise
    if failure is not None:
        raise failure
    if lost:
        raise RedisStreamError(lost[0])
    return True


async def _close_orphan(
    redis: RedisClient, key: str, *, maxlen: int, ttl: float, limit: float
) -> None:
    """A stream left by an earlier claim (a dead worker's, or an expired finished one):
    ends it for its browsers with an error entry if it has no terminal one, then
    deletes it, so that the new generation starts a stream of its own."""
    newest = await last_entry(redis, key, limit)
    if newest is None:
        return
    if not newest[1]:
        terminal = Terminal(
            outcome="error", message="the worker running this generation stopped before its end"
        )
        await append(
            redis,
            key,
            encode_terminal(terminal),
            maxlen=maxlen,
            approximate=True,
            ttl=ttl,
            limit=limit,
        )
    await call("DEL", key, limit, lambda: redis.delete([key]))


async def _finish(
    redis: RedisClient,
    key: str,
    token: str,
    failure: BaseException | None,
    lost: list[str],
    *,
    maxlen: int,
    ttl: float,
    limit: float,
) -> None:
    """Ends the stream with a terminal entry if it has none; marks the claim done."""
    if lost:
        return  # another worker owns the job now
    newest = await last_entry(redis, key, limit)
    if newest is None or not newest[1]:
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
        await append(
            redis,
            key,
            encode_terminal(terminal),
            maxlen=maxlen,
            approximate=True,
            ttl=ttl,
            limit=limit,
        )
    claim = claim_key(key)
    done = f"done:{token.partition(':')[2]}"
    await call(
        "EVAL hand over",
        claim,
        limit,
        lambda: redis.eval(_HAND_OVER, [claim], [token, done, _ms(ttl)]),
    )
