"""The Redis commands of ttstream's Redis layer: each bounded by a timeout
(:func:`call`), the writes of a claimed job fenced by its claim (:class:`Fence`,
:func:`fenced`, :func:`append`, :func:`delete_fenced`; ``docs/redis.md``, "Fencing"),
and the look at a stream's newest entry.

The client is ``coredis`` (``pip install 'ttstream[redis]'``), imported lazily, when a
command runs: ``import ttstream.redis`` works without it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .._exceptions import ValidationError, short_repr
from .._secrets import hidden
from ._codec import MARKER, is_terminal
from ._errors import ClaimLostError, RedisStreamError

if TYPE_CHECKING:
    from coredis import Redis, RedisCluster

    RedisClient = Redis[bytes] | RedisCluster[bytes]
    """A coredis client made with ``decode_responses=False`` (the default), entered."""

__all__ = [
    "Fence",
    "append",
    "call",
    "check_client",
    "claim_key",
    "delete_fenced",
    "fence_of",
    "fenced",
    "last_entry",
    "newest_entry",
]

_T = TypeVar("_T")


def check_client(redis: object, needs: Sequence[str]) -> None:
    """Refuses what is no coredis client (a URL string: found here, not after a billed
    generation whose every entry it would fail), and a client made with
    ``decode_responses=True``: entries carry binary fields (images), which such a client
    would decode as text. ``needs`` names the client methods the caller calls (a
    read-only :class:`~ttstream.redis.RedisRelay` needs no ``xadd``), and only those.

    Raises:
        ValidationError: ``redis`` lacks one of ``needs``, or decodes responses. A
            string is not shown, only its length: a Redis URL may hold a password.
    """
    missing = [name for name in needs if not callable(getattr(redis, name, None))]
    if missing or getattr(redis, "decode_responses", False):
        allowed = "a coredis client (coredis.Redis.from_url(...)) with decode_responses=False"
        if missing:
            allowed += f" (this has no {', '.join(missing)})"
        shown = hidden(redis) if isinstance(redis, str | bytes) else redis
        raise ValidationError("redis", shown, allowed)


async def call(what: str, key: str, limit: float, command: Callable[[], Awaitable[_T]]) -> _T:
    """Runs one coredis command, bounded by ``limit`` seconds.

    Raises:
        RedisStreamError: the command failed (connection refused or lost, a wrong key
            type, ...) or did not answer within ``timeout``.
    """
    from coredis.exceptions import RedisError

    try:
        with anyio.fail_after(limit):
            return await command()
    except TimeoutError:
        raise RedisStreamError(f"{what} {key!r}: no answer from Redis within {limit} s") from None
    except (RedisError, OSError) as exc:
        reason = short_repr(str(exc) or type(exc).__name__, 200)
        raise RedisStreamError(f"{what} {key!r} failed: {type(exc).__name__}: {reason}") from exc


# KEYS[1] the stream, KEYS[2] the claim; ARGV[1] the token, ARGV[2] MAXLEN's operator
# ("~" or "="), ARGV[3] its threshold, ARGV[4] the expiry in ms, then field, value, ...:
# the XADD and PEXPIRE happen only while the claim holds the token, in one atomic step.
_FENCED_XADD = """
if redis.call('get', KEYS[2]) ~= ARGV[1] then return false end
local id = redis.call('xadd', KEYS[1], 'MAXLEN', ARGV[2], ARGV[3], '*', unpack(ARGV, 5))
redis.call('pexpire', KEYS[1], ARGV[4])
return id
"""
# KEYS[1] the stream, KEYS[2] the claim, ARGV[1] the token: DEL while the claim is ours.
_FENCED_DEL = """
if redis.call('get', KEYS[2]) ~= ARGV[1] then return -1 end
return redis.call('del', KEYS[1])
"""


def claim_key(job_key: str) -> str:
    """The key of the claim on the job whose stream is ``job_key``, in the stream's hash
    slot (a Redis Cluster runs a fenced write, which names both, on one node):
    ``<job_key>:claim`` when ``job_key`` has a hash tag (``{...}``, non-empty),
    ``{<job_key>}:claim`` when it has no brace at all (the tag is then the whole stream
    key, which is what the stream's slot is computed from).

    Raises:
        ValidationError: a key with braces but no hash tag (``a}b``, ``{}x``): no claim
            key can share its slot.
    """
    opening = job_key.find("{")
    if opening >= 0:
        closing = job_key.find("}", opening + 1)
        if closing > opening + 1:
            return f"{job_key}:claim"
    elif "}" not in job_key:
        return f"{{{job_key}}}:claim"
    raise ValidationError(
        "job_key", job_key, "a key with a non-empty hash tag ({...}) or without braces"
    )


class Fence:
    """The fencing token of a claimed job: the stream ``stream`` may be written only
    while the claim key ``claim`` holds ``token``; each write checks it in the same
    atomic step (a Lua script), so a worker whose claim expired writes nothing after
    another worker took the job over (``docs/redis.md``, "Fencing").

    ``lost`` becomes ``True`` once a write was refused: the claim is gone for good."""

    __slots__ = ("claim", "lost", "stream", "token")

    def __init__(self, stream: str, claim: str, token: str) -> None:
        self.stream = stream
        self.claim = claim
        self.token = token
        self.lost = False

    def __repr__(self) -> str:  # the token is not a secret, but it is noise
        return f"<Fence stream={self.stream!r} lost={self.lost}>"

    @property
    def generation(self) -> str:
        """The id of the generation this claim runs: the token without its state."""
        return self.token.rpartition(":")[2]

    def refused(self, what: str) -> ClaimLostError:
        """Marks the claim lost; the error a refused write raises."""
        self.lost = True
        return ClaimLostError(
            f"{what} {self.stream!r} refused: the claim {self.claim!r} is no longer this "
            "worker's (it expired and another worker took the job over)"
        )


_FENCES: contextvars.ContextVar[tuple[Fence, ...]] = contextvars.ContextVar(
    "ttstream_redis_fences", default=()
)


@contextlib.contextmanager
def fenced(fence: Fence) -> Iterator[Fence]:
    """Within this block (and the tasks started in it), every write of ttstream's Redis
    layer to ``fence.stream`` is fenced by ``fence``; :func:`ttstream.redis.start_once`
    enters it around ``start()``."""
    reset = _FENCES.set((*_FENCES.get(), fence))
    try:
        yield fence
    finally:
        _FENCES.reset(reset)


def fence_of(stream: str) -> Fence | None:
    """The fence that holds for writes to ``stream`` here (see :func:`fenced`), if any."""
    for fence in reversed(_FENCES.get()):
        if fence.stream == stream:
            return fence
    return None


async def delete_fenced(redis: RedisClient, fence: Fence, limit: float) -> None:
    """``DEL`` of ``fence.stream``, only while the claim is ours.

    Raises:
        ClaimLostError: the claim is no longer ours; nothing was deleted.
        RedisStreamError: Redis refused or did not answer within ``limit`` seconds.
    """
    keys = [fence.stream, fence.claim]
    done = await call(
        "DEL", fence.stream, limit, lambda: redis.eval(_FENCED_DEL, keys, [fence.token])
    )
    if done == -1:
        raise fence.refused("DEL")


async def append(
    redis: RedisClient,
    key: str,
    fields: Mapping[str, str | bytes],
    *,
    maxlen: int,
    approximate: bool,
    ttl: float,
    limit: float,
    generation: str,
    fence: Fence | None = None,
) -> str:
    """``XADD key MAXLEN [~] maxlen * fields`` and ``PEXPIRE key ttl``, in one round
    trip; returns the new entry's id. The entry carries :data:`MARKER` with
    ``generation``. With ``fence``, both run in one Lua script only while the claim
    holds the fence's token.

    Raises:
        ClaimLostError: with ``fence``: the claim is no longer ours; nothing was written.
        RedisStreamError: Redis refused or did not answer within ``limit`` seconds.
    """
    from coredis import PureToken

    expiry = max(1, round(ttl * 1000))
    fields = {MARKER: generation, **fields}
    if fence is not None:
        if fence.lost:
            raise fence.refused("XADD")
        arguments: list[str | bytes | int] = [fence.token, "~" if approximate else "=", maxlen]
        arguments.append(expiry)
        for name, value in fields.items():
            arguments += [name, value]
        keys = [key, fence.claim]
        added = await call("XADD", key, limit, lambda: redis.eval(_FENCED_XADD, keys, arguments))
        if added is None:
            raise fence.refused("XADD")
        return added.decode("latin-1") if isinstance(added, bytes) else str(added)

    async def xadd() -> str:
        async with redis.pipeline(transaction=False) as pipe:
            added = pipe.xadd(
                key,
                fields,
                trim_strategy=PureToken.MAXLEN,
                trim_operator=PureToken.APPROXIMATELY if approximate else None,
                threshold=maxlen,
            )
            pipe.pexpire(key, expiry)
        entry_id = await added
        return "" if entry_id is None else entry_id.decode("latin-1")

    return await call("XADD", key, limit, xadd)


async def newest_entry(
    redis: RedisClient, key: str, limit: float
) -> tuple[str, Mapping[Any, Any]] | None:
    """The id and raw fields of the newest entry of ``key``; ``None`` when the stream is
    empty or absent.

    Raises:
        RedisStreamError: Redis refused or did not answer within ``limit`` seconds.
    """
    entries = await call("XREVRANGE", key, limit, lambda: redis.xrevrange(key, count=1))
    if not entries:
        return None
    entry_id = entries[0].identifier
    text = entry_id.decode("latin-1") if isinstance(entry_id, bytes) else entry_id
    return text, entries[0].field_values


async def last_entry(redis: RedisClient, key: str, limit: float) -> tuple[str, bool] | None:
    """The id of the newest entry of ``key`` and whether it is terminal; ``None`` when
    the stream is empty or absent.

    Raises:
        RedisStreamError: Redis refused or did not answer within ``limit`` seconds.
    """
    newest = await newest_entry(redis, key, limit)
    return None if newest is None else (newest[0], is_terminal(newest[1]))
