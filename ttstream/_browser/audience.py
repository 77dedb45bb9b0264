"""What a relay keeps about its viewers: who may watch (:class:`ViewerGate`) and how
many do (:class:`ViewerCounts`). Both relays (``ttstream.sinks.SSERelay`` and
``ttstream.redis.RedisRelay``) hold one of each; the rules are in
``docs/live-previews.md``."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import attrs

from .viewers import Authorize, viewer_allowed

__all__ = ["ViewerCounts", "ViewerGate"]


@attrs.frozen
class ViewerGate:
    """The viewer check of one relay: an ``authorize`` callback and a ``token_secret``
    (never in the repr), either or both ``None``."""

    authorize: Authorize | None = None
    token_secret: bytes | None = attrs.field(default=None, repr=False)

    async def allows(self, scope: MutableMapping[str, Any], job_key: str) -> bool:
        """:func:`~ttstream._browser.viewers.viewer_allowed` with this gate's parts."""
        return await viewer_allowed(
            scope, job_key, authorize=self.authorize, token_secret=self.token_secret
        )


@attrs.define
class ViewerCounts:
    """The counters a relay shows: ``connections`` served right now, and ``dropped``
    viewers (they did not take a frame within the relay's ``send_timeout``)."""

    connections: int = 0
    dropped: int = 0
