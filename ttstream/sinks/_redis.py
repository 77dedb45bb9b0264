"""Compatibility: the Redis sink's old module. Everything Redis lives in
:mod:`ttstream.redis` (``docs/redis.md``); these are the same objects, re-exported so
that imports of this module's old names keep working. New code imports
:mod:`ttstream.redis`."""

from .. import redis
from ..redis import *  # noqa: F403  (those of __all__: the same objects)

__all__ = [name for name in redis.__all__ if name not in ("RedisRelay", "start_once")]
