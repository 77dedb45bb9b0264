"""Reconnection after a stream started: the policy, the notice consumers see, and the
state machine that applies the rules, with no I/O and an injected clock.

WHATWG HTML, "Server-sent events", 9.2.3 "Processing model": after a network error or a
clean end, reconnect after the reconnection time (the server's ``retry`` field, else the
client's), sending ``Last-Event-ID`` when the last event ID is not empty. The Images API
sends no ``id`` fields (docs/reconnection.md), so there a reconnection cannot resume: it
would start a new, billed generation, which ttstream does only when the caller opted in
(``regenerate``).

:class:`Reconnection` holds every rule that decides whether, when and how a stream
reconnects (h11's rule: everything that affects the state machine lives in one place):
the attempts and the time budget, counted over consecutive failures since the last
event that brought something new (for an image stream: a new image event); the opt-in
regeneration; the ``retry:`` floor of each
wait; and which events of a resumed body are replays. :class:`~ttstream.EventSource`
drives it: it tells the machine what happened (a 2xx answer, an event, a break, a failed
connection) and does what the machine says. docs/reconnection.md states the rules.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable

import attrs

from ._checks import require_int, require_non_negative
from ._exceptions import ValidationError
from ._retry import backoff_delay
from ._secrets import redact
from .sse import ServerSentEvent, fingerprint, id_in_body

Fingerprint = tuple[str, int, int]

__all__ = [
    "ReconnectPolicy",
    "Reconnecting",
    "Reconnection",
    "State",
    "require_policy",
    "stream_policy",
]

REMEMBERED_EVENTS = 64
"""Delivered events a :class:`Reconnection` remembers (their id and a fingerprint of
their content, a few dozen bytes each) to recognise replays and progress."""


def _count(_: object, field: attrs.Attribute[int], value: int) -> None:
    require_int(field.name, value, 0)


def _seconds(_: object, field: attrs.Attribute[float], value: float) -> None:
    require_non_negative(field.name, value, "seconds")


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

    Raises:
        ValidationError: a count that is no int >= 0 (a bool, a float), or seconds that
            are no finite number >= 0 (NaN, an infinity: every wait is bounded).
    """

    max_attempts: int = attrs.field(default=3, validator=_count)
    budget: float = attrs.field(default=60.0, validator=_seconds)
    delay: float = attrs.field(default=1.0, validator=_seconds)
    max_delay: float = attrs.field(default=30.0, validator=_seconds)
    regenerate: int = attrs.field(default=0, validator=_count)

    def backoff(self, attempt: int, server_retry_ms: int | None) -> float:
        """Seconds before reconnection ``attempt`` (0-based): at least the reconnection
        time (the server's ``retry`` if it sent one, else ``delay``); backoff and jitter
        only add to it: the one backoff formula of ttstream (``_retry.backoff_delay``)
        from that time, doubling per attempt, capped at ``max_delay``."""
        base = self.delay if server_retry_ms is None else server_retry_ms / 1000
        return max(base, backoff_delay(attempt, initial=base, cap=max(base, self.max_delay)))


def require_policy(value: ReconnectPolicy) -> ReconnectPolicy:
    """``value`` if it is a :class:`ReconnectPolicy`: the check of every ``reconnect=``
    argument, made where it is given, before any connection.

    Raises:
        ValidationError: anything else (a dict of its fields, a number, ``None``).
    """
    if not isinstance(value, ReconnectPolicy):
        allowed = "a ttstream.ReconnectPolicy, e.g. ReconnectPolicy(max_attempts=5)"
        raise ValidationError("reconnect", value, allowed)
    return value


def stream_policy(value: ReconnectPolicy | None, default: ReconnectPolicy) -> ReconnectPolicy:
    """The policy of one stream: ``value``, the ``reconnect=`` of the call that makes the
    stream (checked by :func:`require_policy` here, at the call, before any request), or
    the client's ``default`` when it is ``None``. Every request method's stream takes its
    policy from here.

    Raises:
        ValidationError: ``value`` is neither ``None`` nor a :class:`ReconnectPolicy`.
    """
    return default if value is None else require_policy(value)


@attrs.frozen(kw_only=True)
class Reconnecting:
    """Yielded by an :class:`~ttstream.EventSource` (and so by an
    :class:`~ttstream.ImageStream`) when it reconnects, so a UI can say so; consumers
    that only look for ``PartialImage`` and ``Completed`` skip it.

    Attributes:
        attempt: the number of this attempt within the current run of failures: 1 for
            the first reconnection since the last event that brought something new (for
            an :class:`~ttstream.ImageStream`, a new preview or image;
            docs/reconnection.md); 0 for a ``restart()``, which does not count.
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
    last_event_id: str = attrs.field(repr=lambda value: repr(redact(value)))
    regenerating: bool
    reason: str = attrs.field(repr=lambda value: repr(redact(value)))


class State(enum.Enum):
    """Where a stream stands between its requests."""

    CONNECTING = "connecting"
    """A request is due now: the first one, a reconnection whose wait is over, or a
    ``restart()``."""
    OPEN = "open"
    """A 2xx ``text/event-stream`` answer's body is being read."""
    WAITING = "waiting"
    """A reconnection is planned: its request is due at :attr:`Reconnection.due_at`."""
    STOPPED = "stopped"
    """The server answered 204 No Content: nothing more is sent (WHATWG)."""
    CLOSED = "closed"
    """Ended by the caller, or no reconnection was left: nothing more is sent."""


class Reconnection:
    """The reconnection rules of one stream, as a state machine with no I/O.

    The driver reports events and the machine answers:

    - :meth:`opened` when a request was answered (2xx stream, or 204);
    - :meth:`deliver` for each event decoded, which says whether to deliver it (``False``
      for a replay);
    - :meth:`broke` when the body ended or broke, or a reconnection's request failed
      before its answer (a network error): a :class:`Reconnecting` notice (the machine
      is then ``WAITING`` until :attr:`due_at`), or ``None`` when no reconnection is
      left (the machine is then ``CLOSED``);
    - :meth:`connecting` once the wait is over; :meth:`request_restart` and
      :meth:`restart` for a caller's ``restart()``; :meth:`close`.

    Rules (docs/reconnection.md):

    - **Attempts and budget count consecutive failures since the last progress**: a
      break or a failed reconnection is one attempt; at most ``policy.max_attempts`` in
      a row, none starting (nor waiting past) ``policy.budget`` seconds after the first
      of them. Progress is a delivered event whose content (type and data) differs from
      the last :data:`REMEMBERED_EVENTS` delivered ones (compared by type, length and
      the first and last characters: a cost that does not grow with the data); it
      resets both, so a proxy that
      cuts a long stream every minute never ends it, while a server that sends the same
      event again on every connection runs out of attempts. With ``confirm_progress``
      a new event resets them only once :meth:`progressed` confirms that it brought
      what the consumer waits for (an :class:`~ttstream.ImageStream`: a preview or an
      image), so a server that ends every connection after some other new event (a
      fresh ``id``, a status) runs out of attempts, with the backoff, instead of being
      reconnected for ever (at once, after ``retry: 0``).
    - **Regeneration**: a request sent again without ``Last-Event-ID`` nor a resume
      target of a stream that is not idempotent (a new, billed generation) happens at
      most ``policy.regenerate`` times per stream, never reset.
    - **The wait** before attempt ``k`` is :meth:`ReconnectPolicy.backoff`: never below
      the server's ``retry`` field.
    - **Replays**: at the start of a resumed body, an event is skipped only if it was
      delivered before: the same id, taken in its own body, and the same content. The
      first other event ends the check, and so does the event that carries the resumed
      id. An id repeated within one body, or one constant id on every event, is never
      taken for a replay on its own.

    Args:
        policy: the attempts, budget, delays and regenerations allowed.
        clock: seconds on a monotonic clock (the driver's event loop clock; a fake one
            in tests).
        idempotent: ``False`` when sending the request again from the start repeats a
            side effect (see ``policy.regenerate``).
        confirm_progress: a new event is progress only once :meth:`progressed` says so
            (the rule above); ``False``: every new event is.
    """

    def __init__(
        self,
        policy: ReconnectPolicy,
        *,
        clock: Callable[[], float],
        idempotent: bool = True,
        confirm_progress: bool = False,
    ) -> None:
        self.policy = policy
        self.idempotent = idempotent
        self.confirm_progress = confirm_progress
        self.state = State.CONNECTING
        self.attempts = 0
        """Consecutive failures since the last progress (the current notice's number)."""
        self.regenerations = 0
        """Requests sent again from the start (never reset)."""
        self.connections = 0
        """2xx stream answers received."""
        self.due_at = 0.0
        """When the planned request is due, on ``clock``."""
        self.restart_requested = False
        """A caller asked for :meth:`restart` (from any task); the driver carries it out."""
        self._clock = clock
        self._failing_since: float | None = None
        self._resumed_id: str | None = None  # the replay check of a resumed body is on
        self._new = False  # the last delivered event was new (for progressed())
        # Of the last delivered events: (hash of the id, fingerprint of the whole content
        # when the id came in the event's own body, else None, a sample's fingerprint).
        self._delivered: deque[tuple[int, Fingerprint | None, Fingerprint]] = deque(
            maxlen=REMEMBERED_EVENTS
        )

    def __repr__(self) -> str:
        return (
            f"<Reconnection {self.state.value} attempts={self.attempts} "
            f"regenerations={self.regenerations} connections={self.connections}>"
        )

    @property
    def remembered(self) -> int:
        """How many delivered events are remembered (at most :data:`REMEMBERED_EVENTS`)."""
        return len(self._delivered)

    def opened(self, *, no_content: bool = False) -> None:
        """A request was answered: a 2xx event stream (``OPEN``) or, with
        ``no_content``, a 204 (``STOPPED``: WHATWG's "stop reconnecting")."""
        if self.state is State.CLOSED:
            return
        if no_content:
            self.state = State.STOPPED
            return
        self.state = State.OPEN
        self.connections += 1

    def deliver(self, sse: ServerSentEvent) -> bool:
        """Whether to deliver ``sse``, decoded from the current body: ``False`` for a
        replay at the start of a resumed body (see the class docstring). A delivered
        event whose content is new resets the attempts and the budget (with
        ``confirm_progress``, once :meth:`progressed` confirms it). Memory: the ids and
        fingerprints of the last :data:`REMEMBERED_EVENTS` delivered events."""
        if self.state is State.CLOSED:
            return False
        id_hash = hash(sse.id)
        # Only an event whose id came in its own body can be a replay: only its whole
        # content is hashed (the Images API sends no ids: nothing is hashed whole there).
        whole = fingerprint(sse) if sse.id and id_in_body(sse) else None
        if self._resumed_id is not None:
            if whole is not None and any(
                seen_id == id_hash and seen == whole for seen_id, seen, _ in self._delivered
            ):
                if sse.id == self._resumed_id:
                    self._resumed_id = None  # the last event of the replay
                return False
            self._resumed_id = None  # a new event: the replay, if any, is over
        sample = fingerprint(sse, whole=False)
        self._new = all(seen != sample for _, _, seen in self._delivered)
        if not self.confirm_progress:
            self.progressed()
        self._delivered.append((id_hash, whole, sample))
        return True

    def progressed(self) -> None:
        """The last delivered event brought what the consumer waits for (with
        ``confirm_progress``: an image stream's preview or image): if its content was
        new, the attempts and the budget start again."""
        if self._new:
            self._new = False
            self.attempts = 0
            self._failing_since = None

    def broke(
        self,
        reason: str,
        *,
        last_event_id: str,
        retry_ms: int | None = None,
        resumable: bool = False,
    ) -> Reconnecting | None:
        """The body ended or broke, or a reconnection's request failed with a network
        error (WHATWG: "re-establish the connection"): the plan for the next request, or
        ``None`` when none is left (the machine is then ``CLOSED``).

        Args:
            reason: what happened, for the notice.
            last_event_id: the ``Last-Event-ID`` the next request would carry.
            retry_ms: the server's ``retry`` field, or ``None``.
            resumable: the protocol resumes elsewhere (a resume target) even without an
                id: no new generation.
        """
        if self.state in (State.CLOSED, State.STOPPED):
            self.state = State.CLOSED
            return None
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        policy = self.policy
        starting_over = not last_event_id and not resumable
        billed = starting_over and not self.idempotent
        delay = policy.backoff(self.attempts, retry_ms)
        if (
            self.attempts >= policy.max_attempts
            or (billed and self.regenerations >= policy.regenerate)
            # a wait that would end past the budget (a server asking for hours): not now
            or now + delay - self._failing_since > policy.budget
        ):
            self.state = State.CLOSED
            return None
        self.attempts += 1
        if billed:
            self.regenerations += 1
        self.state = State.WAITING
        self.due_at = now + delay
        self._resumed_id = last_event_id or None
        return Reconnecting(
            attempt=self.attempts,
            delay=delay,
            last_event_id=last_event_id,
            regenerating=starting_over,
            reason=reason,
        )

    def wait_left(self) -> float:
        """Seconds until the planned request is due (0 when it is due or not waiting)."""
        if self.state is not State.WAITING:
            return 0.0
        return max(0.0, self.due_at - self._clock())

    def connecting(self) -> None:
        """The wait is over: the request is sent now."""
        if self.state is State.WAITING:
            self.state = State.CONNECTING

    def request_restart(self) -> None:
        """A caller's ``restart()`` (callable from another task): the driver drops the
        connection and calls :meth:`restart`."""
        if self.state is not State.CLOSED:
            self.restart_requested = True

    def restart(self, *, last_event_id: str) -> Reconnecting:
        """Carries out a requested restart: a request is due at once, resuming after
        ``last_event_id``. It does not count as an attempt."""
        self.restart_requested = False
        self.state = State.CONNECTING
        self._resumed_id = last_event_id or None
        return Reconnecting(
            attempt=self.attempts,
            delay=0.0,
            last_event_id=last_event_id,
            regenerating=not last_event_id,
            reason="restart() was called",
        )

    def close(self) -> None:
        """The stream ends: nothing more is sent."""
        self.state = State.CLOSED
        self.restart_requested = False
