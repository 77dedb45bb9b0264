"""Compatibility: the viewer tokens' old module. They live in ``ttstream._browser.viewers``
(shared by :class:`~ttstream.sinks.SSERelay` and :class:`~ttstream.redis.RedisRelay`);
the public ones are :func:`ttstream.sinks.sign_viewer_token` and
:func:`ttstream.sinks.verify_viewer_token`. Same objects, re-exported."""

from .._browser import viewers
from .._browser.viewers import *  # noqa: F403  (those of __all__: the same objects)

__all__ = list(viewers.__all__)
