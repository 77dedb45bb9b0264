"""The errors of ttstream's Redis layer (:mod:`ttstream.redis`), in the tree of
``ttstream._exceptions`` (root :class:`~ttstream.TTStreamError`); ``docs/redis.md``."""

from __future__ import annotations

from .._exceptions import TTStreamError

__all__ = ["ClaimLostError", "MalformedEntryError", "RedisStreamError"]


class RedisStreamError(TTStreamError):
    """A Redis command of ttstream's Redis layer failed or got no answer in time.

    The message names the command, the key and what went wrong (coredis's error, or the
    timeout in seconds); the coredis exception, if any, is the ``__cause__``.
    """


class ClaimLostError(RedisStreamError):
    """The worker no longer holds the claim of the job it was writing (its claim expired
    and another worker took the job over): nothing was written, and nothing more will be.
    Raised by fenced writes and by :func:`ttstream.redis.start_once`
    (``docs/redis.md``, "Fencing")."""


class MalformedEntryError(TTStreamError):
    """A stream entry that :class:`~ttstream.redis.RedisStreamSink` did not write: an
    unknown ``type``, a missing field, or a field that does not parse (the message names
    the entry id, the field and what it held). Raised by
    :func:`ttstream.redis.decode_entry`."""
