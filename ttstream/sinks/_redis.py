"""Compatibility: the Redis sink's old module. Everything Redis lives in
:mod:`ttstream.redis` (``docs/redis.md``); these are the same objects, re-exported so
that imports of this module's old names keep working. New code imports
:mod:`ttstream.redis`."""

from ..redis import (
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

__all__ = [
    "MARKER",
    "ClaimLostError",
    "MalformedEntryError",
    "RedisStreamError",
    "RedisStreamSink",
    "Terminal",
    "claim_key",
    "decode_entry",
    "encode_item",
    "encode_terminal",
    "format_id",
    "parse_id",
]
