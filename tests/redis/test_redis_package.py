"""ttstream.redis is the one home of the Redis code; the old import paths give the very
same objects."""

from __future__ import annotations

import ttstream.redis
import ttstream.relay
import ttstream.sinks
from ttstream import TTStreamError


def test_the_old_paths_are_the_same_objects() -> None:
    assert ttstream.relay.start_once is ttstream.redis.start_once
    assert ttstream.relay.claim_key is ttstream.redis.claim_key
    assert ttstream.sinks.RedisStreamSink is ttstream.redis.RedisStreamSink
    assert ttstream.sinks.RedisRelay is ttstream.redis.RedisRelay
    assert ttstream.sinks.RedisStreamError is ttstream.redis.RedisStreamError
    assert ttstream.sinks.MalformedEntryError is ttstream.redis.MalformedEntryError


def test_claim_lost_is_a_redis_error_of_the_tree() -> None:
    assert issubclass(ttstream.redis.ClaimLostError, ttstream.redis.RedisStreamError)
    assert issubclass(ttstream.redis.RedisStreamError, TTStreamError)


def test_the_codec_is_public() -> None:
    fields = ttstream.redis.encode_terminal(ttstream.redis.Terminal(outcome="end", images=2))
    raw = {name.encode(): str(value).encode() for name, value in fields.items()}
    assert ttstream.redis.decode_entry("1-0", raw) == ttstream.redis.Terminal(
        outcome="end", images=2
    )
