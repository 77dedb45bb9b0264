"""What a relay keeps about its viewers: who may watch (:class:`ViewerGate`) and how
many do (:class:`ViewerCounts`). Both relays (``ttstream.sinks.SSERelay`` and
``ttstream.redis.RedisRelay``) hold one of each; the rules are in
``docs/live-previews.md``."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import attrs

from .._checks import require_callable
from .frames import Receive, ViewerGuard
from .viewers import Authorize, check_secret, viewer_allowed

__all__ = ["ViewerCounts", "ViewerGate"]


def _authorize(value: Authorize | None) -> Authorize | None:
    if value is None:
        return None
    allowed = "None or a callable authorize(scope, job_key) -> bool"
    return require_callable("authorize", value, allowed)


def _token_secret(value: object) -> bytes | None:
    return None if value is None else check_secret(value, "token_secret")


@attrs.frozen
class ViewerGate:
    """The viewer check of one relay: an ``authorize`` callback and a ``token_secret``
    (never in the repr), either or both ``None``; both checked when the gate is made, so
    a relay refuses them at construction rather than at its first viewer.

    Raises:
        ValidationError: ``authorize`` not callable; ``token_secret`` not bytes of at
            least 16 (the value is never shown).
    """

    authorize: Authorize | None = attrs.field(default=None, converter=_authorize)
    token_secret: bytes | None = attrs.field(default=None, repr=False, converter=_token_secret)

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

    async def watch(
        self,
        receive: Receive,
        send_timeout: float,
        serve: Callable[[ViewerGuard], Awaitable[None]],
    ) -> None:
        """Runs ``serve(guard)`` (which sends one viewer its frames, each piece bounded by
        ``guard``) as one of ``connections``, with the viewer's :class:`ViewerGuard` of
        ``receive`` and ``send_timeout`` (:meth:`ViewerGuard.run`) in the same task
        group, until it returns or the browser disconnects. A viewer that left while
        frames were sent (``OSError``) ends quietly; one that the guard ended (it did not
        take a piece within ``send_timeout``) is counted in ``dropped``."""
        guard = ViewerGuard(receive, send_timeout)
        self.connections += 1
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(guard.run, tasks.cancel_scope)
                with contextlib.suppress(OSError):  # the browser left while we sent
                    await serve(guard)
                await guard.stop(tasks.cancel_scope)
            if guard.expired:
                self.dropped += 1
        finally:
            self.connections -= 1
