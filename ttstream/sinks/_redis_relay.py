"""Compatibility: the Redis relay's old module; :class:`~ttstream.redis.RedisRelay`
lives in :mod:`ttstream.redis` (``docs/redis.md``) and is re-exported here."""

from ..redis import RedisRelay

__all__ = ["RedisRelay"]
