"""A compatibility alias: ``start_once``, ``claim_key`` and ``ClaimLostError`` of
:mod:`ttstream.redis`, re-exported under their old home.

Kept so that ``from ttstream.relay import start_once, claim_key`` goes on working; new
code imports them from :mod:`ttstream.redis`, where everything Redis lives. "Relay" in
ttstream means a browser relay (:class:`~ttstream.sinks.SSERelay`,
:class:`~ttstream.redis.RedisRelay`); one generation per job across workers is
:func:`ttstream.redis.start_once` (``docs/redis.md``). This module defines nothing.
"""

from .redis import ClaimLostError, claim_key, start_once

__all__ = ["ClaimLostError", "claim_key", "start_once"]
