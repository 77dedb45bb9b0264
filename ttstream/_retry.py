"""When and how long to wait before retrying a request that has not started streaming.

The conventions of the official OpenAI SDKs (docs/reconnection.md, "Retries before the
stream"): connection errors, timeouts, HTTP 408, 409, 429 and >= 500 are retried;
a response header ``x-should-retry: true|false`` forces or vetoes; the delay is
``retry-after-ms``, else ``retry-after`` (seconds, possibly fractional, or an HTTP-date),
honoured when above 0 and up to 60 s (a longer one is not retried at all); otherwise
``min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random())``.
Pure functions: the caller sleeps.
"""

from __future__ import annotations

import datetime
import email.utils
import random
import time
from collections.abc import Callable, Mapping

__all__ = [
    "MAX_RETRY_AFTER",
    "backoff_delay",
    "parse_retry_after",
    "retry_after",
    "should_retry_status",
]

MAX_RETRY_AFTER = 60.0
"""The longest server-requested delay honoured, in seconds (the Node SDK's cap)."""

_RETRIED_STATUSES = frozenset({408, 409, 429})


def should_retry_status(
    status_code: int, headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> bool:
    """Whether an HTTP error response is worth retrying: never when the server asks for
    a longer wait than :data:`MAX_RETRY_AFTER` (the error is the answer, as in openai,
    whatever ``x-should-retry`` says); else as ``x-should-retry`` says; else for 408,
    409, 429 and >= 500."""
    asked = parse_retry_after(headers, now=now)
    if asked is not None and asked > MAX_RETRY_AFTER:
        return False
    veto = headers.get("x-should-retry", "").strip().lower()
    if veto in ("true", "false"):
        return veto == "true"
    return status_code in _RETRIED_STATUSES or status_code >= 500


def retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """The delay in seconds the server asked for, or ``None`` when it asked for none
    usable (absent, unparsable, not above 0, or above :data:`MAX_RETRY_AFTER`): openai
    honours ``0 < delay <= cap`` and backs off otherwise."""
    delay = parse_retry_after(headers, now=now)
    return None if delay is None or not 0 < delay <= MAX_RETRY_AFTER else delay


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """The one parser of a server's requested delay, in seconds: ``retry-after-ms``
    (milliseconds), else ``retry-after`` (seconds, possibly fractional, or an HTTP-date
    counted from ``now()``); ``None`` when absent, unparsable or negative (Azure's
    ``-1``). Not capped: :func:`retry_after` caps it for the retry loop, and
    ``RateLimitError.retry_after`` reports it as sent."""
    delay: float | None = None
    if (millis := headers.get("retry-after-ms")) is not None:
        delay = _float(millis)
        delay = None if delay is None else delay / 1000
    if delay is None and (value := headers.get("retry-after")) is not None:
        delay = _float(value)
        if delay is None:
            date = _http_date(value)
            delay = None if date is None else date - now()
    return None if delay is None or delay < 0 else delay


def backoff_delay(
    attempt: int,
    *,
    initial: float = 0.5,
    cap: float = 8.0,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Capped exponential backoff with up to 25 % jitter below: ``attempt`` is 0-based."""
    return float(min(initial * 2**attempt, cap) * (1 - 0.25 * jitter()))


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def _http_date(text: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000": RFC 5322 says UTC with no further information
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()
