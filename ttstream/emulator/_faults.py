"""Fault injection: the ways an Images API answer goes wrong, chosen per request.

A request selects faults with the header ``X-Emulator-Fault: <spec>``, or, when it has
no such header, with the query parameter ``?fault=<spec>``. The grammar::

    spec  = item *( ";" item )       ; empty items are skipped
    item  = name [ "=" value ]       ; names are case-insensitive, whitespace is trimmed

An unknown name, a missing or malformed value, a name given twice or two endings at
once is answered with 400 and the error JSON (``param`` ``"X-Emulator-Fault"``, code
``invalid_fault``). The faults (docs/emulator.md, "Faults", says what a client sees):

How the stream ends (at most one of these; they act at the first completed event):
    ``drop-mid-event``       abort the connection halfway through the completed event
    ``drop-between-events``  abort the connection after the last preview
    ``end-early``            end the body cleanly after the last preview
    ``error-nested``         send ``event: error`` with the nested error JSON, then end
    ``error-flat``           the same with the flat error JSON
Rewrites of the completed event:
    ``malformed-json``       its data is not valid JSON (the closing brace is missing)
    ``invalid-base64``       its ``b64_json`` holds characters outside base64
    ``oversized=<bytes>``    an extra preview event before it, whose data is that long
Noise and hostile bodies:
    ``heartbeat-data``       a ``data: : PING`` event (no ``event`` field) after every
                             event, as some gateways send heartbeats
    ``bomb=<bytes>``         the body is a decompression bomb: ``Content-Encoding: gzip,
                             gzip`` over one event's data line of that many bytes
Timing:
    ``stall=<seconds>``      pause that long after the first event
    ``drip[=<seconds>]``     write the body one byte at a time, pausing after each byte
Before the stream:
    ``status=<code>``        answer with this HTTP error status (400-599) and the error JSON
    ``resume-status=<code>`` answer a resume (``GET /v1/responses/{id}``) only with this
                             status and the error JSON; the ``POST`` is served
    ``retry-after=<text>``   with that ``retry-after`` header (seconds or an HTTP date)
    ``retry-after-ms=<ms>``  with that ``retry-after-ms`` header
    ``wrong-content-type``   answer a stream request 200 with ``application/json``
    ``echo-headers``         answer with an error (``status=<code>``, else 400) whose
                             message echoes the request headers, the key included
Shape of the stream (not faults: ``times`` does not switch them off):
    ``pad=<bytes>``          a ``"padding"`` field of that many ``x`` in every image event
    ``ids``                  number the events (``id: 1``, ``id: 2``, ...; the extra
                             events of ``oversized`` and ``error-*`` too), start the body
                             with ``retry: <ms>`` and resume after ``Last-Event-ID`` (a
                             number; anything else is answered with 400)
    ``retry=<ms>``           that reconnection time (default 50; needs ``ids``)
    ``azure``                on ``POST /v1/responses``: Azure's shape (no
                             ``image_generation_call.completed``, the done image item's
                             status ``generating``, ``content_filters`` on text events)
Control:
    ``drop-after=<k>``       abort the connection right after event ``k`` (1-based),
                             only on a request without ``Last-Event-ID``
    ``times=<n>``            only the first ``n`` requests carrying this exact spec string
                             get the faults; later ones are served normally
    ``key=<text>``           no effect; makes a spec string unique (``times`` counts per
                             exact spec string)

Faults that shape a stream act on ``stream: true`` answers only; ``status`` acts on every
``POST`` route. An abort (``drop-*``) raises :class:`EmulatedDisconnect` inside the
streaming body: uvicorn then closes the connection without finishing the chunked body,
so the client sees a broken connection, not a clean end.

Observability: :class:`StreamStats` (``app.state.stream_stats``, also
``EmulatorServer.stream_stats``) counts the requests per spec string, the bytes each
stream body has yielded so far, the streams open now and the images generated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import re
import threading
import zlib
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, Literal

import anyio
import anyio.lowlevel
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .._checks import require_non_negative
from ._answers import encode_frame, encode_json
from ._errors import EmulatorError

__all__ = [
    "DEFAULT_WAIT_CLOSED",
    "FAULT_HEADER",
    "FAULT_QUERY",
    "EmulatedDisconnect",
    "FaultSpec",
    "FaultSpecError",
    "StreamRecord",
    "StreamStats",
    "faults_for",
    "quiet_emulated_disconnects",
    "stream_response",
]

FAULT_HEADER = "X-Emulator-Fault"
FAULT_QUERY = "fault"
DEFAULT_RETRY_MS = 50
"""The ``retry:`` field sent with ``ids`` when no ``retry=<ms>`` is given."""
DEFAULT_WAIT_CLOSED = 10.0
"""Seconds :meth:`StreamStats.wait_closed` waits by default."""

Ending = Literal["drop-mid-event", "drop-between-events", "end-early", "error-nested", "error-flat"]
ENDINGS: tuple[Ending, ...] = (
    "drop-mid-event",
    "drop-between-events",
    "end-early",
    "error-nested",
    "error-flat",
)

# Sizes a fault may ask for: enough for any test, never a memory bomb for the emulator.
_MAX_PAD = 16 * 1024 * 1024  # added to every image event
_MAX_OVERSIZED = 64 * 1024 * 1024  # one event
_MAX_BOMB = 1024 * 1024 * 1024  # decoded bytes; compressed as it is sent, never held
_MAX_ID_DIGITS = 18  # a Last-Event-ID beyond this is not an event number
_MAX_SECONDS = 3600.0
_MAX_COUNT = 10**9
_CHUNK = 64 * 1024  # the body is written in pieces of at most this many bytes
_DIGITS = re.compile(r"[0-9]+")
_HEADER_TEXT = re.compile(r"[\x20-\x7e]+")  # printable ASCII: safe in a response header
_ERROR_CODE = "emulated_failure"


class FaultSpecError(ValueError):
    """A fault spec that cannot be read; the message names the item at fault."""


class EmulatedDisconnect(Exception):
    """Raised inside a streaming body to abort its connection (``drop-*`` faults).

    uvicorn answers an exception after the response started by closing the connection
    without the end of the chunked body; :func:`quiet_emulated_disconnects` keeps it
    from logging that as an application error.
    """


def _required(name: str, value: str | None) -> str:
    if not value:
        raise FaultSpecError(f"fault {name!r} needs a value: {name}=<value>")
    return value


def _flag(name: str, value: str | None) -> bool:
    if value is not None:
        raise FaultSpecError(f"fault {name!r} takes no value, got {name}={value}")
    return True


def _ending(name: str, value: str | None) -> str:
    _flag(name, value)
    return name


def _integer(low: int, high: int) -> Callable[[str, str | None], int]:
    def parse(name: str, value: str | None) -> int:
        text = _required(name, value)
        if not _DIGITS.fullmatch(text) or not low <= int(text) <= high:
            raise FaultSpecError(f"fault {name}={text} needs a whole number from {low} to {high}")
        return int(text)

    return parse


def _seconds(name: str, value: str | None) -> float:
    text = _required(name, value)
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= _MAX_SECONDS:  # also refuses nan
        raise FaultSpecError(f"fault {name}={text} needs seconds from 0 to {_MAX_SECONDS:g}")
    return seconds


def _optional_seconds(name: str, value: str | None) -> float:
    return 0.0 if value is None else _seconds(name, value)


def _header_value(name: str, value: str | None) -> str:
    text = _required(name, value)
    if not _HEADER_TEXT.fullmatch(text):
        raise FaultSpecError(f"fault {name!r} needs printable ASCII, got {text!r}")
    return text


def _text(name: str, value: str | None) -> str:
    return value or ""


_Parse = Callable[[str, str | None], object]

# name -> (field of FaultSpec, parser of the value)
_RULES: Mapping[str, tuple[str, _Parse]] = {
    **dict.fromkeys(ENDINGS, ("ending", _ending)),
    "malformed-json": ("malformed_json", _flag),
    "invalid-base64": ("invalid_base64", _flag),
    "oversized": ("oversized", _integer(1, _MAX_OVERSIZED)),
    "heartbeat-data": ("heartbeat_data", _flag),
    "bomb": ("bomb", _integer(1, _MAX_BOMB)),
    "echo-headers": ("echo_headers", _flag),
    "stall": ("stall", _seconds),
    "drip": ("drip", _optional_seconds),
    "status": ("status", _integer(400, 599)),
    "resume-status": ("resume_status", _integer(400, 599)),
    "retry-after": ("retry_after", _header_value),
    "retry-after-ms": ("retry_after_ms", _header_value),
    "wrong-content-type": ("wrong_content_type", _flag),
    "pad": ("pad", _integer(1, _MAX_PAD)),
    "ids": ("ids", _flag),
    "azure": ("azure", _flag),
    "retry": ("retry", _integer(0, 3_600_000)),
    "drop-after": ("drop_after", _integer(0, _MAX_COUNT)),
    "times": ("times", _integer(0, _MAX_COUNT)),
    "key": ("key", _text),
}


@dataclasses.dataclass(frozen=True)
class FaultSpec:
    """The faults of one request, read from its spec string by :meth:`parse`.

    ``spec`` is the string as sent (``times`` counts per exact string); the other
    fields are the items, ``None`` or ``False`` when absent; ``ending`` is the one item
    of :data:`ENDINGS` given, if any. Sizes are in bytes, pauses in seconds, ``retry``
    in milliseconds.
    """

    spec: str = ""
    ending: Ending | None = None
    malformed_json: bool = False
    invalid_base64: bool = False
    oversized: int | None = None
    heartbeat_data: bool = False
    bomb: int | None = None
    echo_headers: bool = False
    stall: float | None = None
    drip: float | None = None
    status: int | None = None
    resume_status: int | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    wrong_content_type: bool = False
    pad: int | None = None
    ids: bool = False
    azure: bool = False
    retry: int | None = None
    drop_after: int | None = None
    times: int | None = None
    key: str | None = None

    @classmethod
    def parse(cls, spec: str) -> FaultSpec:
        """Reads ``name[=value]`` items separated by ``;``.

        Raises:
            FaultSpecError: an unknown name, a missing, extra or malformed value, a name
                given twice, two endings, or an item that needs another (``retry`` needs
                ``ids``; ``retry-after`` and ``retry-after-ms`` need ``status`` or
                ``resume-status``).
        """
        fields: dict[str, Any] = {}
        seen: set[str] = set()
        for raw in spec.split(";"):
            item = raw.strip()
            if not item:
                continue
            name_text, has_value, value_text = item.partition("=")
            name = name_text.strip().lower()
            rule = _RULES.get(name)
            if rule is None:
                known = ", ".join(_RULES)
                raise FaultSpecError(f"unknown fault {item!r}; known faults: {known}")
            if name in seen:
                raise FaultSpecError(f"fault {name!r} is given twice")
            seen.add(name)
            field, parse = rule
            if field in fields:  # the endings share one field
                raise FaultSpecError(
                    f"faults {fields[field]!r} and {name!r} both end the stream: give one"
                )
            fields[field] = parse(name, value_text.strip() if has_value else None)
        if "retry" in fields and "ids" not in fields:
            raise FaultSpecError("fault 'retry' needs 'ids' (the retry field comes with ids)")
        for needs_status in ("retry_after", "retry_after_ms"):
            if needs_status in fields and not {"status", "resume_status"} & fields.keys():
                name = needs_status.replace("_", "-")
                raise FaultSpecError(f"fault {name!r} needs 'status=<code>' or 'resume-status'")
        return cls(spec=spec, **fields)

    @property
    def reconnection_ms(self) -> int:
        """The ``retry:`` field sent with ``ids``, in milliseconds."""
        return DEFAULT_RETRY_MS if self.retry is None else self.retry

    def shape_only(self) -> FaultSpec:
        """This spec without its faults: what a request gets once ``times`` is used up
        (``pad``, ``ids``, ``azure`` and ``retry`` shape the stream and stay)."""
        return FaultSpec(
            spec=self.spec,
            pad=self.pad,
            ids=self.ids,
            azure=self.azure,
            retry=self.retry,
            times=self.times,
            key=self.key,
        )

    def status_error(
        self, request_headers: Mapping[str, str] | None = None, *, resume: bool = False
    ) -> EmulatorError | None:
        """The error answer of ``status=<code>`` (or ``echo-headers``: 400 by default;
        with ``resume``, for a resume request, ``resume-status=<code>`` alone), or
        ``None`` without one; with ``echo-headers`` its message quotes
        ``request_headers``, as a careless gateway does."""
        code = self.resume_status if resume else self.status
        if code is None and (resume or not self.echo_headers):
            return None
        status = 400 if code is None else code
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["retry-after"] = self.retry_after
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = self.retry_after_ms
        message = f"The emulator answers HTTP {status} as {FAULT_HEADER} asked."
        if self.echo_headers:
            pairs = (request_headers or {}).items()
            echoed = "; ".join(f"{name}: {value}" for name, value in pairs)
            message += f" Your request headers were: {echoed}"
        return EmulatorError(
            message,
            status=status,
            code="rate_limit_exceeded" if status == 429 else _ERROR_CODE,
            type="server_error" if status >= 500 else "invalid_request_error",
            headers=headers,
        )


NO_FAULTS = FaultSpec()


@dataclasses.dataclass(frozen=True)
class StreamRecord:
    """One stream body as :class:`StreamStats` saw it: the ``x-request-id`` of its
    answer, its fault spec string (``""`` without one), the bytes yielded to the server
    so far (written, or waiting for the socket to drain), in how many writes (pieces of
    at most 64 KiB; one byte each with ``drip``), and whether it is still open."""

    request_id: str
    fault: str
    bytes_sent: int = 0
    writes: int = 0
    open: bool = True


class StreamStats:
    """Counters of the emulator's streams, safe to read from any thread.

    A stream counts as open from the first read of its body until the body is closed,
    whatever ended it (its end, an abort, the client going away). The records of the
    last ``keep`` streams and the request counts of the last ``keep`` spec strings are
    kept.

    A client sees the end of a stream before the emulator has closed it (the client
    stops reading at the final event; the emulator's thread closes the body a moment
    later), so ``open_streams`` read right after a stream may still be 1:
    :meth:`wait_closed` waits for the emulator to catch up.
    """

    def __init__(self, keep: int = 4096) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep!r}")
        self.keep = keep
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._streams: OrderedDict[str, StreamRecord] = OrderedDict()
        self._requests: OrderedDict[str, int] = OrderedDict()
        self._open = 0
        self._in_flight = 0
        self._generations = 0

    @property
    def open_streams(self) -> int:
        """Stream bodies open now; 0 when no stream is in progress."""
        with self._lock:
            return self._open

    @property
    def requests_in_flight(self) -> int:
        """HTTP requests the emulator is answering now (streams included): counted from
        the moment the app receives a request until its answer is complete or
        abandoned."""
        with self._lock:
            return self._in_flight

    def wait_closed(self, timeout: float = DEFAULT_WAIT_CLOSED) -> None:
        """Blocks the calling thread until the emulator answers no request and has no
        stream open: every stream a client opened has been closed on the emulator's
        side too (its record says ``open=False``, ``open_streams`` is 0). Returns at
        once when nothing is open. ``timeout`` is in seconds.

        Call it from a test's thread, never from the emulator's own event loop. In async
        code, ``await EmulatorServer.wait_closed(timeout)`` waits without blocking the
        loop.

        Raises:
            TimeoutError: something was still open after ``timeout`` seconds; the
                message says how many streams and requests.
            ValidationError: ``timeout`` is no finite number of seconds >= 0 (``None``
                and an infinity too: the wait is bounded); a ``ValueError``.
        """
        require_non_negative("timeout", timeout, "seconds")
        with self._changed:
            idle = self._changed.wait_for(lambda: self._open == 0 and self._in_flight == 0, timeout)
            if not idle:
                raise TimeoutError(
                    f"the emulator still had {self._open} stream(s) open and "
                    f"{self._in_flight} request(s) in flight after {timeout:g} s"
                )

    def request_started(self) -> None:
        """Counts one more request in flight (the app calls it as a request arrives)."""
        with self._lock:
            self._in_flight += 1

    def request_ended(self) -> None:
        """Counts one request fewer in flight (the app calls it once the answer is done)."""
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    @property
    def generations(self) -> int:
        """Images generated so far (``n`` per Images API request, one per Responses API
        image): a resumed stream generates none."""
        with self._lock:
            return self._generations

    def count_generation(self, images: int = 1) -> None:
        """Counts ``images`` more generated images."""
        with self._lock:
            self._generations += images

    def stream(self, request_id: str) -> StreamRecord | None:
        """The record of the stream answered with this ``x-request-id``, or ``None``."""
        with self._lock:
            return self._streams.get(request_id)

    def requests(self, spec: str) -> int:
        """How many requests carried exactly this fault spec string."""
        with self._lock:
            return self._requests.get(spec, 0)

    def count_request(self, spec: str) -> int:
        """Counts one more request with ``spec``; returns its count, this one included."""
        with self._lock:
            count = self._requests.pop(spec, 0) + 1
            self._requests[spec] = count
            while len(self._requests) > self.keep:
                self._requests.popitem(last=False)
            return count

    def _opened(self, request_id: str, fault: str) -> None:
        with self._lock:
            self._open += 1
            self._streams[request_id] = StreamRecord(request_id, fault)
            while len(self._streams) > self.keep:
                self._streams.popitem(last=False)

    def _sent(self, request_id: str, size: int) -> None:
        with self._lock:
            record = self._streams.get(request_id)
            if record is not None:
                self._streams[request_id] = dataclasses.replace(
                    record, bytes_sent=record.bytes_sent + size, writes=record.writes + 1
                )

    def _closed(self, request_id: str) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify_all()
            record = self._streams.get(request_id)
            if record is not None:
                self._streams[request_id] = dataclasses.replace(record, open=False)


def faults_for(request: Request, stats: StreamStats) -> FaultSpec:
    """The faults a request asked for; counts it under its spec string.

    Raises:
        EmulatorError: 400 for a spec that cannot be read; the ``status`` answer when the
            request has one of its ``times`` left.
    """
    spec = request.headers.get(FAULT_HEADER)
    if spec is None:
        spec = request.query_params.get(FAULT_QUERY)
    if spec is None:
        return NO_FAULTS
    try:
        faults = FaultSpec.parse(spec)
    except FaultSpecError as exc:
        raise EmulatorError(
            f"Invalid {FAULT_HEADER} (or ?{FAULT_QUERY}=): {exc}.",
            param=FAULT_HEADER,
            code="invalid_fault",
        ) from None
    count = stats.count_request(spec)
    if faults.times is not None and count > faults.times:
        return faults.shape_only()
    error = faults.status_error(request.headers)
    if error is not None:
        raise error
    return faults


def _resume_point(request: Request, faults: FaultSpec) -> int | None:
    """The ``Last-Event-ID`` to resume after (``ids`` only), or ``None``."""
    if not faults.ids:
        return None
    value = request.headers.get("last-event-id")
    if value is None or not value.strip():
        return None
    if not _DIGITS.fullmatch(value.strip()) or len(value.strip()) > _MAX_ID_DIGITS:
        raise EmulatorError(
            f"Last-Event-ID must be an event number this emulator sent, got {value!r}.",
            param="Last-Event-ID",
            code="invalid_last_event_id",
        )
    return int(value)


@dataclasses.dataclass
class _Out:
    """One event to send: its SSE event name, its data line, and whether only its first
    half goes out before the connection is aborted."""

    event: str
    data: str
    cut: bool = False


class _Plan:
    """What each event of the clean stream becomes under ``faults``."""

    def __init__(self, faults: FaultSpec) -> None:
        self.faults = faults
        self.previews = 0
        self.completed_seen = False
        self.end: Literal["abort", "end"] | None = None

    def outputs(self, event: dict[str, Any]) -> list[_Out]:
        faults = self.faults
        if faults.pad is not None:
            event = {**event, "padding": "x" * faults.pad}
        kind = str(event["type"])
        if not kind.endswith(".completed"):
            self.previews += 1
            return [_Out(kind, encode_json(event))]
        if self.completed_seen:
            return [_Out(kind, encode_json(event))]
        self.completed_seen = True
        outputs: list[_Out] = []
        if faults.oversized is not None:
            outputs.append(self._oversized(event, faults.oversized))
        if faults.ending in ("drop-between-events", "end-early"):
            self.end = "abort" if faults.ending == "drop-between-events" else "end"
            return outputs
        if faults.ending in ("error-nested", "error-flat"):
            self.end = "end"
            return [*outputs, _Out("error", encode_json(_error_event(faults.ending)))]
        if faults.invalid_base64:
            b64 = str(event["b64_json"])
            event = {**event, "b64_json": f"{b64[:8]}*not~base64!{b64[8:]}"}
        data = encode_json(event)
        if faults.malformed_json:
            data = data[:-1]  # the closing brace: truncated JSON, as a cut proxy sends it
        return [*outputs, _Out(kind, data, cut=faults.ending == "drop-mid-event")]

    def _oversized(self, completed: dict[str, Any], size: int) -> _Out:
        """A preview of the final image whose data is ``size`` bytes (or its natural size
        when that is larger), padded with a ``"padding"`` field."""
        kind = str(completed["type"]).replace(".completed", ".partial_image")
        event = {key: value for key, value in completed.items() if key != "usage"}
        event.update(type=kind, partial_image_index=self.previews, padding="")
        base = len(encode_json(event).encode())
        event["padding"] = "x" * max(0, size - base)
        return _Out(kind, encode_json(event))


_HEARTBEAT = b"data: : PING\n\n"  # a gateway's heartbeat, sent as data


async def _bomb(size: int) -> AsyncGenerator[bytes, None]:
    """``Content-Encoding: gzip, gzip`` of one event whose data line is ``size`` bytes
    of ``x`` (never ended): compressed as it is sent, so the emulator holds little."""
    inner = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    outer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    yield outer.compress(inner.compress(b"event: image_generation.partial_image\ndata: "))
    block = b"x" * (1024 * 1024)
    for start in range(0, size, len(block)):
        piece = outer.compress(inner.compress(block[: size - start]))
        if piece:
            yield piece
        await anyio.lowlevel.checkpoint()  # compressing is work: let other requests run
    yield outer.compress(inner.flush()) + outer.flush()


def _error_event(ending: str) -> dict[str, Any]:
    message = f"The emulator failed this stream as {FAULT_HEADER} asked ({ending})."
    if ending == "error-nested":
        error = {"type": "server_error", "code": _ERROR_CODE, "message": message, "param": None}
        return {"type": "error", "error": error}
    return {"type": "error", "code": _ERROR_CODE, "message": message, "param": None}


async def _faulty_frames(
    events: AsyncGenerator[dict[str, Any], None],
    faults: FaultSpec,
    resume_after: int | None,
) -> AsyncGenerator[bytes, None]:
    """The encoded frames of ``events`` with ``faults`` applied; events are numbered from
    1 (extra events included), and with ``resume_after`` those up to it are skipped."""
    plan = _Plan(faults)
    number = 0
    stalled = False
    async with contextlib.aclosing(events):
        if faults.ids:
            yield f"retry: {faults.reconnection_ms}\n\n".encode()
        async for event in events:
            for out in plan.outputs(event):
                number += 1
                if resume_after is not None and number <= resume_after:
                    continue
                frame = encode_frame(out.event, out.data, id=number if faults.ids else None)
                if out.cut:
                    yield frame[: len(frame) // 2]
                    raise EmulatedDisconnect("drop-mid-event")
                yield frame
                if faults.heartbeat_data:
                    yield _HEARTBEAT
                if faults.drop_after == number and resume_after is None:
                    raise EmulatedDisconnect(f"drop-after={number}")
                if faults.stall is not None and not stalled:
                    stalled = True
                    await anyio.sleep(faults.stall)
            if plan.end == "abort":
                raise EmulatedDisconnect(str(faults.ending))
            if plan.end == "end":
                return


async def tracked(
    frames: AsyncGenerator[bytes, None],
    *,
    stats: StreamStats,
    request_id: str,
    fault: str,
    drip: float | None,
) -> AsyncGenerator[bytes, None]:
    """Yields ``frames`` in pieces of at most 64 KiB (one byte with ``drip``, each piece
    followed by a pause of ``drip`` seconds), counting them in ``stats``; the stream
    counts as open until this generator is closed."""
    step = 1 if drip is not None else _CHUNK
    stats._opened(request_id, fault)
    try:
        async with contextlib.aclosing(frames):
            async for frame in frames:
                for start in range(0, len(frame), step):
                    piece = frame[start : start + step]
                    stats._sent(request_id, len(piece))
                    yield piece
                    # Sending does not suspend while the socket takes the bytes: let the
                    # loop run between pieces, so a client gone away is noticed before
                    # more is written to its closed socket.
                    await anyio.sleep(drip or 0)
    finally:
        stats._closed(request_id)


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` answer whose body generator is closed as soon as the
    answer ends, however it ends (Starlette leaves a generator cancelled at a ``yield``
    to the garbage collector)."""

    def __init__(
        self, body: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", **(headers or {})},
        )
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._body.aclose()


def stream_response(
    events: AsyncGenerator[dict[str, Any], None],
    faults: FaultSpec,
    *,
    request: Request,
    request_id: str,
    stats: StreamStats,
) -> StreamingResponse:
    """The streaming answer of ``events`` under ``faults``, counted in ``stats`` under
    ``request_id``.

    Raises:
        EmulatorError: 400 for a ``Last-Event-ID`` that is not an event number (``ids``).
    """
    resume_after = _resume_point(request, faults)
    headers: dict[str, str] = {}
    if faults.bomb is not None:
        frames = _bomb(faults.bomb)
        headers["content-encoding"] = "gzip, gzip"
    else:
        frames = _faulty_frames(events, faults, resume_after)
    body = tracked(frames, stats=stats, request_id=request_id, fault=faults.spec, drip=faults.drip)
    return EventStreamResponse(body, headers)


def _only_emulated(exc: BaseException | None) -> bool:
    inner = getattr(exc, "exceptions", None)  # an exception group (3.11+ or the backport)
    if isinstance(inner, tuple) and inner:
        return all(_only_emulated(one) for one in inner)
    return isinstance(exc, EmulatedDisconnect)


class _DropEmulatedDisconnects(logging.Filter):
    """Drops uvicorn's "Exception in ASGI application" record of an emulated abort."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _only_emulated(record.exc_info[1]))


_FILTER = _DropEmulatedDisconnects()


def quiet_emulated_disconnects() -> None:
    """Keeps uvicorn from logging an abort the client asked for as an application error
    (a filter on the ``uvicorn.error`` logger that drops only those records)."""
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
