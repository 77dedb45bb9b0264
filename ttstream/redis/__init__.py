"""Everything Redis, in one place: a generation written to a Redis stream, served to
browsers from any worker, started once per job (``pip install 'ttstream[redis]'``).

- :class:`RedisStreamSink` appends every item of a stream to a Redis stream;
- :class:`RedisRelay` serves that stream to browsers as Server-Sent Events, from any
  worker, with resumption;
- :func:`start_once` runs one generation per job across workers, fenced by its claim;
- the entry codec: :func:`decode_entry` (an entry back into the item it stands for),
  :func:`encode_item`, :class:`Terminal`, :data:`MARKER`.

The keys, the entry layout, fencing and outages are described in ``docs/redis.md``.
``ttstream.sinks.RedisStreamSink``, ``ttstream.sinks.RedisRelay`` and
``ttstream.relay.start_once`` are the same objects. ``coredis`` is imported only when a
Redis command runs.
"""

from ..sinks._redis import (
    MARKER,
    ClaimLostError,
    MalformedEntryError,
    RedisStreamError,
    RedisStreamSink,
    Terminal,
    claim_key,
    decode_entry,
    encode_item,
    encode_terminal,
    format_id,
    parse_id,
)
from ..sinks._redis_relay import RedisRelay
from ._claims import start_once

__all__ = [
    "MARKER",
    "ClaimLostError",
    "MalformedEntryError",
    "RedisRelay",
    "RedisStreamError",
    "RedisStreamSink",
    "Terminal",
    "claim_key",
    "decode_entry",
    "encode_item",
    "encode_terminal",
    "format_id",
    "parse_id",
    "start_once",
]
