"""Reconnection after a stream started: the policy, and the notice consumers see.

WHATWG HTML, "Server-sent events", 9.2.3 "Processing model": after a network error or a
clean end, reconnect after the reconnection time (the server's ``retry`` field, else the
client's), sending ``Last-Event-ID`` when the last event ID is not empty. The Images API
sends no ``id`` fields (docs/reconnection.md), so there a reconnection cannot resume: it
would start a new, billed generation, which ttstream does only when the caller opted in
(``regenerate``).
"""

from __future__ import annotations

import attrs

from . import _secrets
from ._retry import backoff_delay

__all__ = ["ReconnectPolicy", "Reconnecting"]


@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """How a stream that broke after it started may reconnect.

    Attributes:
        max_attempts: reconnections allowed per stream (0 disables reconnection).
        budget: seconds, from the first break, after which no reconnection starts.
        delay: the reconnection time in seconds when the server sent no ``retry`` field.
        max_delay: the cap of the exponential backoff, in seconds (never below the
            reconnection time itself).
        regenerate: how many times a stream that cannot resume (its server sent no
            ``id`` fields) and is not idempotent may be started over as a new, billed
            generation. 0 (the default): such a stream raises
            :class:`~ttstream.IncompleteStreamError` with the last preview.
    """

    max_attempts: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    budget: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    delay: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    max_delay: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    regenerate: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    def backoff(self, attempt: int, server_retry_ms: int | None) -> float:
        """Seconds before reconnection ``attempt`` (0-based): at least the reconnection
        time (the server's ``retry`` if it sent one, else ``delay``); backoff and jitter
        only add to it: the one backoff formula of ttstream (``_retry.backoff_delay``)
        from that time, doubling per attempt, capped at ``max_delay``."""
        base = self.delay if server_retry_ms is None else server_retry_ms / 1000
        return max(base, backoff_delay(attempt, initial=base, cap=max(base, self.max_delay)))


@attrs.frozen(kw_only=True)
class Reconnecting:
    """Yielded by an :class:`~ttstream.EventSource` (and so by an
    :class:`~ttstream.ImageStream`) when it reconnects, so a UI can say so; consumers
    that only look for ``PartialImage`` and ``Completed`` skip it.

    Attributes:
        attempt: 1 for the first reconnection of this stream.
        delay: seconds the stream waits before the new request.
        last_event_id: the ``Last-Event-ID`` sent; ``""`` when starting over.
        regenerating: ``True`` when the request is sent again without
            ``Last-Event-ID``, so the server starts over (for the Images API: a new,
            billed generation that begins again with its first preview); ``False``
            when the server resumes after ``last_event_id``.
        reason: what broke.
    """

    attempt: int
    delay: float
    last_event_id: str = attrs.field(repr=lambda value: repr(_secrets.redact(value)))
    regenerating: bool
    reason: str = attrs.field(repr=lambda value: repr(_secrets.redact(value)))
