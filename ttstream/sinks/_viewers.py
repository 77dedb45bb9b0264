"""Compatibility: the viewer tokens' old module. They live in ``ttstream._browser.viewers``
(shared by :class:`~ttstream.sinks.SSERelay` and :class:`~ttstream.redis.RedisRelay`);
the public ones are :func:`ttstream.sinks.sign_viewer_token` and
:func:`ttstream.sinks.verify_viewer_token`. Same objects, re-exported."""

from .._browser.viewers import (
    FORBIDDEN,
    Authorize,
    sign_viewer_token,
    verify_viewer_token,
    viewer_allowed,
)

__all__ = [
    "FORBIDDEN",
    "Authorize",
    "sign_viewer_token",
    "verify_viewer_token",
    "viewer_allowed",
]
