"""The old home of ``start_once``: its names, re-exported from :mod:`ttstream.redis`.

"Relay" means the browser relays (``SSERelay``, ``RedisRelay``); one generation per job
across workers is :func:`ttstream.redis.start_once` (``docs/redis.md``). This module
keeps ``from ttstream.relay import start_once, claim_key`` working.
"""

from .redis._claims import ClaimLostError, claim_key, start_once

__all__ = ["ClaimLostError", "claim_key", "start_once"]
