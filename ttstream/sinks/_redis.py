"""RedisStreamSink: every item of a stream appended to a Redis stream, for other processes.

Each item becomes one entry (``XADD``), so any process that reads the stream (the relay
of :mod:`ttstream.sinks`'s ``RedisRelay``, ``redis-cli XRANGE``, a service in another
language) sees the generation as it happens, with Redis's entry ids as its order. The
entry layout is documented in ``docs/redis.md``; in short, every entry has a ``type``
field and the ``ttstream`` marker (its generation's id), images carry the image file
as the binary ``image`` field, and the other metadata are fields of their own (numbers
in decimal, ``usage`` and ``extra`` as JSON), every text through the one redaction.
The last entry of a generation is a terminal one: ``type`` ``end`` (``images``: how many
final images), or ``error`` (``error``: the exception's type name, ``message``: its
message, shortened and redacted). Writes within ``start_once`` are fenced by the job's
claim (``docs/redis.md``, "Fencing").

The client is ``coredis`` (``pip install 'ttstream[redis]'``), imported only here and
in the other Redis modules, lazily: ``import ttstream.sinks`` works without it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import attrs

from .. import _secrets
from .._bounds import validate_seconds
from .._exceptions import (
    ClaimLostError,
    ClosedError,
    MalformedEntryError,
    RedisStreamError,
    TTStreamError,
    ValidationError,
    short_repr,
)
from .._reconnect import Reconnecting
from ..events import Completed, InputTokensDetails, PartialImage, Usage, _Image, image_of
from ..stream import StreamItem

if TYPE_CHECKING:
    from coredis import Redis, RedisCluster

    RedisClient = Redis[bytes] | RedisCluster[bytes]
    """A coredis client made with ``decode_responses=False`` (the default), entered."""

__all__ = [
    "MARKER",
    "ClaimLostError",
    "Fence",
    "MalformedEntryError",
    "RedisStreamError",
    "RedisStreamSink",
    "Terminal",
    "claim_key",
    "decode_entry",
    "encode_item",
    "encode_terminal",
    "fence_of",
    "fenced",
    "format_id",
    "parse_id",
]

_T = TypeVar("_T")

EntryId = tuple[int, int]
"""A Redis stream entry id ``<milliseconds>-<sequence>`` as a pair of ints (ordered)."""

MARKER = "ttstream"
"""The field every entry ttstream writes carries: the id of its generation (a random
token, the claim's under ``start_once``). A relay serves no entry without it, and a
``Last-Event-ID`` of another generation restarts a viewer (``docs/redis.md``)."""

_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX_ID_PART = 2**64 - 1  # each part of a stream entry id is an unsigned 64-bit integer
_MAX_MESSAGE = 500  # characters of an error message kept in a terminal entry


def parse_id(text: str | bytes) -> EntryId | None:
    """``"1700000000000-3"`` as ``(1700000000000, 3)``; ``None`` for anything else,
    including parts past 64 bits, which Redis never issues and refuses in commands."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    match = _ID.fullmatch(text.strip())
    if match is None:
        return None
    entry_id = (int(match[1]), int(match[2]))
    return entry_id if max(entry_id) <= _MAX_ID_PART else None


def format_id(entry_id: EntryId) -> str:
    """``(1700000000000, 3)`` as ``"1700000000000-3"``."""
    return f"{entry_id[0]}-{entry_id[1]}"


def public_message(error: BaseException | str) -> str:
    """The message of ``error`` as it may be stored and shown to browsers: at most 500
    characters, with every registered key and credential value redacted
    (``ttstream._secrets``)."""
    text = error if isinstance(error, str) else str(error) or type(error).__name__
    text = _secrets.redact(text)  # the one redaction: registered keys, credential values
    return text if len(text) <= _MAX_MESSAGE else f"{text[: _MAX_MESSAGE - 1]}…"


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


# The entry codec. Field values are bytes on the wire; these are the fields that are not
# plain text, by how they parse.
_IMAGE_TEXT = ("size", "quality", "background", "output_format")
_COMPLETED_TEXT = ("url", "revised_prompt", "safety_identifier")


@attrs.frozen(kw_only=True)
class Terminal:
    """The last entry of a generation: ``outcome`` ``"end"`` (``images`` final images
    were written) or ``"error"`` (``error``: the exception's type name, ``message``)."""

    outcome: Literal["end", "error"]
    images: int = 0
    error: str = ""
    message: str = ""

    def payload(self) -> tuple[str, dict[str, Any]]:
        """The SSE event name and JSON object a relay sends for it (``SSERelay``'s end
        and error events: ``{"type": "end", "images": n}``, ``{"type": "error",
        "message": ...}``)."""
        if self.outcome == "end":
            return "end", {"type": "end", "images": self.images}
        return "error", {"type": "error", "message": self.message}


def encode_item(item: StreamItem) -> dict[str, str | bytes]:
    """The fields of the entry for ``item`` (``docs/redis.md``, "Entries")."""
    if isinstance(item, Reconnecting):
        return _redacted(
            {
                "type": "reconnecting",
                "attempt": str(item.attempt),
                "delay": repr(float(item.delay)),
                "last_event_id": item.last_event_id,
                "regenerating": "1" if item.regenerating else "0",
                "reason": item.reason,
            }
        )
    fields: dict[str, str | bytes] = {
        "type": "partial_image" if isinstance(item, PartialImage) else "completed",
        "operation": item.operation,
    }
    if isinstance(item, PartialImage):
        fields["index"] = str(item.index)
    names = _IMAGE_TEXT + (_COMPLETED_TEXT if isinstance(item, Completed) else ())
    for name in (*names, "created_at", "sequence_number"):
        value = getattr(item, name)
        if value is not None:
            fields[name] = str(value)
    if isinstance(item, Completed) and item.usage is not None:
        fields["usage"] = json.dumps(attrs.asdict(item.usage), separators=(",", ":"))
    if item.extra:
        fields["extra"] = json.dumps(dict(item.extra), separators=(",", ":"))
    if image_of(item) is not None:  # not item.b64_json: that would encode the image
        fields["image"] = item.image_bytes
    return _redacted(fields)


def _redacted(fields: dict[str, str | bytes]) -> dict[str, str | bytes]:
    """Every text field through the one redaction (``ttstream._secrets``): what a server
    echoed (a key in ``extra``, ``revised_prompt``, a ``Last-Event-ID``, a transport's
    error text) is stored without it. The image's bytes are left as they are."""
    return {name: _secrets.redact(v) if isinstance(v, str) else v for name, v in fields.items()}


def encode_terminal(terminal: Terminal) -> dict[str, str | bytes]:
    """The fields of a terminal entry."""
    if terminal.outcome == "end":
        return {"type": "end", "images": str(terminal.images)}
    return _redacted({"type": "error", "error": terminal.error, "message": terminal.message})


class _Entry:
    """Typed access to the fields of one entry; errors name the entry and the field."""

    def __init__(self, entry_id: str, fields: Mapping[Any, Any]) -> None:
        self.entry_id = entry_id
        self.fields: dict[str, bytes] = {}
        for name, value in fields.items():
            if not isinstance(name, bytes) or not isinstance(value, bytes):
                raise MalformedEntryError(
                    f"entry {entry_id}: fields must be bytes; the coredis client must be "
                    "made with decode_responses=False"
                )
            self.fields[name.decode("latin-1")] = value

    def malformed(self, name: str, reason: str) -> MalformedEntryError:
        shown = short_repr(self.fields.get(name), 60)
        return MalformedEntryError(f"entry {self.entry_id}: field {name!r} {reason}, got {shown}")

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.fields.get(name)
        if value is None:
            if required:
                raise self.malformed(name, "is required")
            return None
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise self.malformed(name, "is not UTF-8") from None

    def number(self, name: str, *, required: bool = False) -> int | None:
        text = self.text(name, required=required)
        if text is None:
            return None
        if not re.fullmatch(r"-?[0-9]{1,30}", text):
            raise self.malformed(name, "is not a decimal integer")
        return int(text)

    def json(self, name: str) -> dict[str, Any] | None:
        text = self.text(name)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise self.malformed(name, "is not JSON (or is nested too deeply)") from None
        if not isinstance(value, dict):
            raise self.malformed(name, "is not a JSON object")
        return value


def _usage(entry: _Entry) -> Usage | None:
    usage = entry.json("usage")
    if usage is None:
        return None
    try:
        details = usage.pop("input_tokens_details", None)
        return Usage(
            **usage,
            input_tokens_details=None if details is None else InputTokensDetails(**details),
        )
    except TypeError:
        raise entry.malformed("usage", "does not hold Usage's fields") from None


def decode_entry(entry_id: str, fields: Mapping[Any, Any]) -> StreamItem | Terminal:
    """The item (or terminal) an entry written by :class:`RedisStreamSink` stands for.

    Images come back with ``b64_json`` re-encoded from the ``image`` field.

    Raises:
        MalformedEntryError: the entry is not one of ours (see the class).
    """
    entry = _Entry(entry_id, fields)
    kind = entry.text("type", required=True)
    if kind == "end":
        return Terminal(outcome="end", images=entry.number("images", required=True) or 0)
    if kind == "error":
        return Terminal(
            outcome="error",
            error=entry.text("error") or "",
            message=entry.text("message") or "the generation failed",
        )
    if kind == "reconnecting":
        delay = entry.text("delay", required=True) or ""
        try:
            seconds = float(delay)
        except ValueError:
            raise entry.malformed("delay", "is not a number") from None
        return Reconnecting(
            attempt=entry.number("attempt", required=True) or 0,
            delay=seconds,
            last_event_id=entry.text("last_event_id") or "",
            regenerating=entry.text("regenerating") == "1",
            reason=entry.text("reason") or "",
        )
    if kind not in ("partial_image", "completed"):
        raise entry.malformed("type", "is not a ttstream entry type")
    image = entry.fields.get("image")
    common: dict[str, Any] = {
        # The bytes as they are: no base64 text is made unless someone asks for it (the
        # relay's frame encodes it once, spliced).
        "b64_json": None if image is None else _Image(data=image),
        "operation": entry.text("operation", required=True),
        "created_at": entry.number("created_at"),
        "sequence_number": entry.number("sequence_number"),
        "extra": entry.json("extra") or {},
        **{name: entry.text(name) for name in _IMAGE_TEXT},
    }
    if kind == "partial_image":
        return PartialImage(index=entry.number("index", required=True) or 0, **common)
    return Completed(
        usage=_usage(entry),
        url=entry.text("url"),
        revised_prompt=entry.text("revised_prompt"),
        safety_identifier=entry.text("safety_identifier"),
        **common,
    )


def generation_of(fields: Mapping[Any, Any]) -> bytes | None:
    """The :data:`MARKER` field of an entry's raw fields: its generation's id; ``None``
    for an entry ttstream did not write."""
    value = fields.get(MARKER.encode())
    return value if isinstance(value, bytes) and value else None


def new_generation() -> str:
    """A fresh generation id (16 hex digits)."""
    return secrets.token_hex(8)


def is_terminal(fields: Mapping[Any, Any]) -> bool:
    """Whether the raw fields of an entry are those of a terminal entry."""
    kind = fields.get(b"type", fields.get("type"))
    return kind in (b"end", b"error", "end", "error")


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


class RedisStreamSink:
    """Appends every item of a stream to the Redis stream ``key``, then a terminal entry.

    Items are ``PartialImage`` and ``Completed`` events (the image file as the binary
    ``image`` field) and ``Reconnecting`` notices; ``fail(error)`` (called by
    :func:`~ttstream.sinks.pump` when the stream fails) appends the ``error`` entry and
    ``aclose`` appends ``end`` (or ``error`` when no final image came), unless a
    terminal entry was already written. Every ``XADD`` trims the stream to about
    ``maxlen`` entries (``MAXLEN ~``; exactly with ``approximate=False``) and sets its
    expiry to ``ttl`` seconds from now (``PEXPIRE``), so Redis keeps a bounded, expiring
    log. Entry layout: ``docs/redis.md``.

    Under :func:`~ttstream.sinks.pump` it gets the ``block`` and ``latest`` policies and
    the failure isolation of every sink.

    A short Redis outage (a restart, a failover) is ridden out: an entry Redis did not
    take is kept, with the ones after it, in order, in a buffer of at most
    ``max_buffer`` bytes, and written as soon as Redis answers again (each ``send``
    tries first; ``fail`` and ``aclose`` wait for it). Only when Redis has failed for
    ``outage`` seconds, or the buffer would pass ``max_buffer``, does the sink fail:
    ``send`` raises, ``pump`` detaches it and raises :class:`~ttstream.sinks.SinkError`
    at the end. An entry whose command timed out may have been applied before the
    timeout: it is then written twice (same fields, a later id). Entries survive a
    Redis restart only if Redis persists them (``appendonly yes``); ``docs/redis.md``,
    "Outages".

    Within :func:`ttstream.redis.start_once` for the same key, every write is fenced by
    the job's claim: a worker that lost it writes nothing more and raises
    :class:`ClaimLostError`.

    Args:
        redis: an entered coredis client (``async with coredis.Redis(...) as redis``),
            ``Redis`` or ``RedisCluster``, made with ``decode_responses=False``.
        key: the stream's key.
        maxlen: entries kept (at least 1); a generation writes ``n * (partial_images +
            1) + 1`` entries plus its ``Reconnecting`` notices.
        ttl: seconds the stream lives after its last entry (> 0).
        approximate: ``MAXLEN ~`` (Redis trims whole nodes, cheaper; the stream may hold
            a few more than ``maxlen`` entries) or ``MAXLEN =``.
        timeout: seconds each command may take (> 0).
        outage: seconds a Redis failure is ridden out before the sink fails (> 0).
        max_buffer: bytes of entries kept while Redis is away (at least 1; default
            64 MiB: a few images at full size).

    Raises:
        ValidationError: a setting out of range, or a client that decodes responses.
        RedisStreamError: from ``send``, ``fail`` and ``aclose``: Redis refused the
            entries or did not answer for ``outage`` seconds, or the buffer was full.
        ClaimLostError: from the same, under ``start_once``: the claim was lost.
        ClosedError: from ``send``: the terminal entry was already written (also a
            ``RuntimeError``).
    """

    def __init__(
        self,
        redis: RedisClient,
        key: str,
        *,
        maxlen: int = 1000,
        ttl: float = 3600.0,
        approximate: bool = True,
        timeout: float = 5.0,
        outage: float = 10.0,
        max_buffer: int = 64 * 1024 * 1024,
    ) -> None:
        if not isinstance(maxlen, int) or maxlen < 1:
            raise ValidationError("maxlen", maxlen, "an int >= 1 (entries)")
        if not isinstance(max_buffer, int) or max_buffer < 1:
            raise ValidationError("max_buffer", max_buffer, "an int >= 1 (bytes)")
        validate_seconds("ttl", ttl)
        validate_seconds("timeout", timeout)
        validate_seconds("outage", outage)
        if getattr(redis, "decode_responses", False):
            raise ValidationError("redis", redis, "a coredis client with decode_responses=False")
        self.redis = redis
        self.key = key
        self.maxlen = maxlen
        self.ttl = ttl
        self.approximate = approximate
        self.timeout = timeout
        self.outage = outage
        self.max_buffer = max_buffer
        self.last_id = ""
        """The id of the newest entry written (``""`` before the first)."""
        self.entries = 0
        """Entries written so far, the terminal one included."""
        self._images = 0
        self._ended = False
        self._generation = new_generation()
        self._pending: deque[tuple[Mapping[str, str | bytes], int]] = deque()
        self._pending_bytes = 0
        self._failing_since: float | None = None

    def __repr__(self) -> str:
        state = "ended" if self._ended else "live"
        waiting = f" buffered={len(self._pending)}" if self._pending else ""
        return f"<RedisStreamSink {state} key={self.key!r} entries={self.entries}{waiting}>"

    async def _write(self, fields: Mapping[str, str | bytes]) -> None:
        fence = fence_of(self.key)
        self.last_id = await append(
            self.redis,
            self.key,
            fields,
            maxlen=self.maxlen,
            approximate=self.approximate,
            ttl=self.ttl,
            limit=self.timeout,
            generation=self._generation if fence is None else fence.generation,
            fence=fence,
        )
        self.entries += 1

    async def _append(self, fields: Mapping[str, str | bytes], *, wait: bool = False) -> None:
        """Queues the entry behind those Redis has not taken yet, and writes what it can
        (with ``wait``, waits for Redis up to ``outage``)."""
        size = sum(len(name) + len(value) for name, value in fields.items())
        self._pending.append((fields, size))
        self._pending_bytes += size
        await self._flush(wait=wait)

    async def _flush(self, *, wait: bool) -> None:
        while True:
            try:
                while self._pending:
                    fields, size = self._pending[0]
                    await self._write(fields)
                    self._pending.popleft()
                    self._pending_bytes -= size
            except ClaimLostError:
                self._drop_pending()
                raise
            except RedisStreamError as exc:
                now = anyio.current_time()
                if self._failing_since is None:
                    self._failing_since = now
                failing = now - self._failing_since
                if failing >= self.outage or self._pending_bytes > self.max_buffer:
                    lost = len(self._pending)
                    self._drop_pending()
                    why = (
                        f"Redis failed for {failing:.1f} s"
                        if failing >= self.outage
                        else f"more than max_buffer={self.max_buffer} bytes waited for it"
                    )
                    raise RedisStreamError(f"{exc} ({why}; {lost} entries not written)") from exc
                if not wait:
                    return
                await anyio.sleep(min(0.25, self.outage - failing))
            else:
                self._failing_since = None
                return

    def _drop_pending(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0
        self._ended = True  # a failed sink takes no more

    async def send(self, event: StreamItem) -> None:
        """Appends the entry for ``event`` (see the class docstring)."""
        if self._ended:
            raise ClosedError(f"{self!r} has written its terminal entry: it takes no more")
        await self._append(encode_item(event))
        if isinstance(event, Completed):
            self._images += 1

    async def fail(self, error: BaseException | str) -> None:
        """Appends the ``error`` terminal entry: ``error`` is the exception's type name,
        ``message`` its message (:func:`public_message`). Does nothing once ended."""
        if self._ended:
            return
        self._ended = True
        name = "" if isinstance(error, str) else type(error).__name__
        await self._append(
            encode_terminal(Terminal(outcome="error", error=name, message=public_message(error))),
            wait=True,
        )

    async def aclose(self) -> None:
        """Appends ``end`` (with the number of final images), or ``error`` when no final
        image was written; does nothing once a terminal entry was written."""
        if self._ended:
            return
        if not self._images:
            await self.fail(TTStreamError("the generation ended before its final image"))
            return
        self._ended = True
        await self._append(encode_terminal(Terminal(outcome="end", images=self._images)), wait=True)
