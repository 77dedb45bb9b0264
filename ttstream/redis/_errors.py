"""The errors of ttstream's Redis layer (:mod:`ttstream.redis`): defined in the one tree
of ``ttstream._exceptions`` (root :class:`~ttstream.TTStreamError`; docs/errors.md) and
re-exported here; ``docs/redis.md``."""

from __future__ import annotations

from .._exceptions import ClaimLostError, MalformedEntryError, RedisStreamError

__all__ = ["ClaimLostError", "MalformedEntryError", "RedisStreamError"]
