"""The pacing of a :class:`~ttstream.batch.Batch`: requests spaced under two rates, the
pause of the whole batch after an HTTP 429, and the concurrency that halves on a 429 and
grows back by one after each run of successes (docs/batch.md, "Rate limits").

One :class:`Pacing` per batch; it owns the batch's capacity limiter once the batch is
entered. Times are anyio clock seconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import anyio
import attrs

from ._retry import backoff_delay, retry_after

__all__ = ["Pacing"]

_WINDOW = 60.0  # seconds: the "minute" of requests_per_minute and images_per_minute


@attrs.define
class Pacing:
    """The rate and concurrency state of one batch.

    Attributes:
        concurrency: the most streams open at once (>= 1), as configured.
        images_per_minute: pacing by images (``n`` per request), or ``None``.
        requests_per_minute: pacing by requests, or ``None``.
        limit: the concurrency in force now (lowered after a 429, then grown back).
        lowest_limit: the lowest concurrency in force so far.
        pauses: pauses of the whole batch after a 429.
        paused_seconds: seconds paused after 429s (pauses may overlap jobs' own).
        rate_limited: HTTP 429 answers seen.
    """

    concurrency: int
    images_per_minute: float | None
    requests_per_minute: float | None
    limit: int = attrs.field(init=False)
    lowest_limit: int = attrs.field(init=False)
    pauses: int = 0
    paused_seconds: float = 0.0
    rate_limited: int = 0
    limiter: anyio.CapacityLimiter | None = None
    _next_request: float = 0.0
    _next_image: float = 0.0
    _resume_at: float = 0.0
    _successes: int = 0
    # the slots of the last 60 s under images_per_minute: (time, images), oldest first
    _image_log: deque[tuple[float, int]] = attrs.Factory(deque)

    def __attrs_post_init__(self) -> None:
        self.limit = self.lowest_limit = self.concurrency

    def start(self) -> anyio.CapacityLimiter:
        """Makes the capacity limiter (needs a running event loop) and returns it."""
        self.limiter = anyio.CapacityLimiter(self.concurrency)
        return self.limiter

    def on_rate_limited(self, headers: Mapping[str, str]) -> None:
        """Pauses the batch for the server's delay and halves the concurrency, once per
        pause (429s answering requests sent before the pause do not halve it again)."""
        self.rate_limited += 1
        now = anyio.current_time()
        delay = retry_after(headers)
        if delay is None:
            delay = backoff_delay(min(self.pauses, 4))
        until = now + delay
        new_pause = now >= self._resume_at
        self.paused_seconds += max(0.0, until - max(now, self._resume_at))
        self._resume_at = max(self._resume_at, until)
        if new_pause:
            self.pauses += 1
            self._set_limit(max(1, self.limit // 2))

    def _set_limit(self, limit: int) -> None:
        self.limit = limit
        self.lowest_limit = min(self.lowest_limit, limit)
        self._successes = 0
        if self.limiter is not None:
            self.limiter.total_tokens = limit

    def succeeded(self) -> None:
        """Additive increase: one more slot after ``limit`` successes in a row."""
        self._successes += 1
        if self.limit < self.concurrency and self._successes >= self.limit:
            self._set_limit(self.limit + 1)

    async def wait_pause(self) -> None:
        """Returns when no pause is in force."""
        # The end of a pause moves when another 429 arrives: sleep until it, then look again.
        while (left := self._resume_at - anyio.current_time()) > 0:  # noqa: ASYNC110
            await anyio.sleep(left)

    async def pace(self, images: int) -> None:
        """Waits for the pause, then for a request's slot under both rates (``images``:
        the images it asks for). A slot that a pause overtakes is given up and a new one
        taken after the pause: a pause never ends with two paced requests at once."""
        while True:
            await self.wait_pause()
            now = anyio.current_time()
            at = self.claim(now, images)
            if at > now:
                await anyio.sleep(at - now)
            started = anyio.current_time()
            if self._resume_at <= started:
                self._late(at, started, images)
                return
            self._logged(at, images, None)  # overtaken: its images were never asked for

    def _late(self, at: float, started: float, images: int) -> None:
        """Moves the next slots on when the request of the slot at ``at`` starts only at
        ``started`` (a busy event loop): the spacing counts from the real start, and a
        late start never lets the next one follow at once."""
        if started <= at:
            return
        if self.requests_per_minute is not None:
            self._next_request = max(
                self._next_request, started + _WINDOW / self.requests_per_minute
            )
        if self.images_per_minute is not None:
            self._next_image = max(
                self._next_image, started + _WINDOW * images / self.images_per_minute
            )
            self._logged(at, images, started)

    def _logged(self, at: float, images: int, moved: float | None) -> None:
        """Moves the slot ``(at, images)`` of the images' log to ``moved``, or drops it
        (``None``)."""
        log = self._image_log
        for number, (when, count) in enumerate(log):
            if when == at and count == images:
                if moved is None:
                    del log[number]
                else:
                    log[number] = (moved, count)
                return

    def claim(self, now: float, images: int) -> float:
        """Takes the next request slot at or after ``now`` (anyio clock seconds) for a
        request of ``images`` images, and returns its time: ``60 / requests_per_minute``
        after the last slot, ``60 * n / images_per_minute`` after the last request of
        ``n`` images, and late enough that no 60 s window holds more than
        ``images_per_minute`` images (a request of more images than that starts alone in
        its window)."""
        at = now
        if self.requests_per_minute is not None:
            at = max(at, self._next_request)
        if self.images_per_minute is not None:
            at = max(at, self._next_image)
            log = self._image_log
            while log and log[0][0] <= at - _WINDOW:
                log.popleft()
            in_window = sum(count for _, count in log)
            while log and in_window + images > self.images_per_minute:
                start, count = log.popleft()
                in_window -= count
                at = max(at, start + _WINDOW)
            log.append((at, images))
            self._next_image = at + _WINDOW * images / self.images_per_minute
        if self.requests_per_minute is not None:
            self._next_request = at + _WINDOW / self.requests_per_minute
        return at
