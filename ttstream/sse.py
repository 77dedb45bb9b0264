"""A sans-I/O Server-Sent Events decoder: bytes in, ``ServerSentEvent`` objects out.

It follows the WHATWG HTML standard, section "Server-sent events", 9.2.6 "Interpreting
an event stream" (summarised in ``docs/sse.md``):

- the stream is UTF-8 whatever the declared charset; invalid bytes become U+FFFD and
  one leading byte order mark is stripped;
- lines end in CRLF, LF or a lone CR; a CR that ends one chunk ends the line at once
  and an LF that opens the next chunk is then skipped;
- a blank line dispatches the event, unless its data buffer is empty; the last event ID
  persists across events; an ``id`` containing NUL is ignored; ``retry`` is taken only
  when it is ASCII digits;
- at the end of the body a pending event without its blank line is discarded.

Cost is linear in the bytes fed, whatever the chunking: each byte is scanned for line
ends once, a line split across chunks is gathered in one growing ``bytearray``, and a
line that arrives whole inside a chunk is decoded straight from a ``memoryview`` of it.
A data line longer than 64 KiB is decoded in 64 KiB pieces, and its event keeps them
until ``data`` is first read (:func:`data_pieces`): ``parse_event`` copies the image's
base64 straight out of the pieces, so the event is not copied whole once more.

The decoder knows nothing of what the data means, and decodes no image unless asked. A
:class:`LineHook` may take over the first data line of an event while its bytes arrive
(the Images layer installs one, :class:`ttstream.events.ImageLineHook`, that decodes an
image's base64 on arrival; ``docs/fast.md``): the event then holds what the hook made
(:attr:`ServerSentEvent.decoded`), and whatever the hook gives back stays text, exactly
as the plain path decodes it.

:class:`~ttstream.EventSource` (the I/O layer on top) is ``ttstream.EventSource``; this
module never imports it. The names it held in earlier releases and that moved up
(:data:`MOVED`) raise an ``AttributeError`` that names their new home.
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

import attrs

from ._checks import require_int
from ._exceptions import EventTooLargeError
from ._json import loads
from ._secrets import redact

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "MOVED",
    "Comment",
    "Decoded",
    "LineDecoder",
    "LineHook",
    "SSEDecoder",
    "ServerSentEvent",
    "data_pieces",
    "fingerprint",
    "id_in_body",
]

MOVED = {
    "EventSource": "ttstream.EventSource",
    "IMAGE_KEYS": "ttstream.events.IMAGE_KEYS",
    "DecodedData": "ttstream.events.DecodedData",
    "decoded_data": "ttstream.events.decoded_data",
}
"""Names of earlier releases that moved to the layers above (the connection, the Images
API), each to its new path: the decoder imports neither layer (docs/design.md)."""


def __getattr__(name: str) -> NoReturn:
    """Raises:
    AttributeError: always; for a name of :data:`MOVED`, naming its new home (``from
        ttstream.sse import X`` turns it into Python's plain ``ImportError``)."""
    if name in MOVED:
        raise AttributeError(f"ttstream.sse.{name} moved: import {MOVED[name]} instead")
    raise AttributeError(f"module 'ttstream.sse' has no attribute {name!r}")


DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024
"""The default limit on one event's size: 64 MiB, far above a 4096x4096 PNG in base64."""

_BOM = b"\xef\xbb\xbf"
_MAX_RETRY_MS = 10**15
_DECODE_BATCH = 64 * 1024
_REPR_DATA_CHARS = 80


@attrs.frozen
class Comment:
    """A comment line of the stream (a line that starts with ``:``), without the colon
    and one leading space: servers send them as keep-alives (WHATWG ignores them; a UI
    can show them as "still working"). Only :meth:`SSEDecoder.feed_all` returns them."""

    text: str = attrs.field(repr=lambda text: repr(redact(text)))


class Decoded(Protocol):
    """What a :class:`LineHook` makes of a data line: the line's text can be rebuilt."""

    def text(self) -> str:
        """The line's value as it arrived."""
        ...

    def __len__(self) -> int:
        """The length of :meth:`text`, without building it."""
        ...

    def crc32(self, sample: int = 0) -> int:
        """A CRC-32 of what the line says, equal for equal lines however they arrived
        (:func:`fingerprint`); ``sample > 0``: of its ends only, a cost that does not
        grow with the line."""
        ...


Fallback = tuple[str, bytes]
"""What a line decoder gives back on a doubt: the text so far, and bytes still to decode
as UTF-8 (the plain path's work from there)."""


class LineDecoder(Protocol):
    """Takes over one data line's value while its bytes arrive (see :class:`LineHook`).
    ``data[start:end]`` is a piece of the value; a :data:`Fallback` gives it back."""

    def feed(self, data: bytes | bytearray, start: int, end: int) -> Fallback | None:
        """Takes a piece of the value; a :data:`Fallback` hands the line back."""
        ...

    def take_run(self, data: bytes) -> bool:
        """Takes a whole chunk when it cannot end the line (no CR, LF or quote in it);
        ``False`` when it would not, for the decoder to look at it."""
        ...

    def end(self, data: bytes | bytearray, start: int, end: int) -> Decoded | Fallback:
        """Takes the last piece of the value: what the line is, or a :data:`Fallback`."""
        ...


class LineHook(Protocol):
    """A fast path for the first data line of an event (``SSEDecoder(line_hook=...)``):
    ``start()`` is asked for a line decoder when a data line arrives split across chunks,
    or when ``wants(value)`` says yes to a whole one."""

    def wants(self, value: memoryview) -> bool:
        """Whether a whole data line's value is worth the fast path."""
        ...

    def start(self) -> LineDecoder:
        """A decoder for one line."""
        ...


class ServerSentEvent:
    """One dispatched event: its ``event`` type (``"message"`` by default), ``data`` (the
    data lines joined with LF), ``id`` (the last event ID when it was dispatched) and
    ``retry`` (milliseconds, or ``None``), as the WHATWG model defines them. The same
    shape as httpx-sse's class of that name, without its dependency on httpx.

    What :class:`SSEDecoder` knows beyond that is in explicit fields, keyword-only:

    - ``id_in_body``: whether an ``id`` field was taken in the body of the event, at or
      before it (``False``: its id was inherited from an earlier body, or seeded); a
      replay after a resume carries its ids in its own body. ``True`` by default.
    - ``pieces``: the data as strings whose concatenation is ``data``, when a line longer
      than 64 KiB arrived in pieces: ``data`` joins them on first use, and
      :func:`ttstream.parse_event` copies the image's base64 straight out of them.
    - ``decoded``: what a :class:`LineHook` made of the event's one data line (for the
      image fast path, a :class:`ttstream.events.DecodedData`): ``data`` is then
      rebuilt on every read (for an image, its base64 encoded again).

    The ``repr`` shows the length of long data instead of printing megabytes of base64
    (a fault of httpx-sse's own repr), and never a key a server echoed.
    """

    __slots__ = ("_data", "_decoded", "_event", "_id", "_id_in_body", "_pieces", "_retry")

    def __init__(
        self,
        event: str | None = None,
        data: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        *,
        id_in_body: bool = True,
        pieces: Sequence[str] | None = None,
        decoded: Decoded | None = None,
    ) -> None:
        self._event = event or "message"  # an empty type is "message" (WHATWG dispatch)
        self._data = data or ""
        self._id = id or ""
        self._retry = retry
        self._id_in_body = id_in_body
        self._pieces = None if pieces is None else list(pieces)
        self._decoded = decoded

    @property
    def event(self) -> str:
        return self._event

    @property
    def data(self) -> str:
        if self._decoded is not None:
            return self._decoded.text()
        if self._pieces is not None:
            self._data, self._pieces = "".join(self._pieces), None
        return self._data

    @property
    def id(self) -> str:
        return self._id

    @property
    def retry(self) -> int | None:
        return self._retry

    @property
    def id_in_body(self) -> bool:
        """Whether the event's body carried an ``id`` field (see the class docstring)."""
        return self._id_in_body

    @property
    def pieces(self) -> Sequence[str]:
        """The data as strings whose concatenation is ``data``: the pieces it arrived in
        while not joined yet, else ``(data,)``."""
        return self._pieces if self._pieces is not None else (self.data,)

    @property
    def decoded(self) -> Decoded | None:
        """What a :class:`LineHook` made of the data, or ``None`` for plain text."""
        return self._decoded

    def json(self) -> Any:
        """``data`` parsed as JSON, nested at most 128 levels.

        Raises:
            ValueError: not JSON, or nested deeper (``json.JSONDecodeError``).
        """
        return loads(self.data)

    def __repr__(self) -> str:
        if self._decoded is not None:
            data = f"<{len(self._decoded)} chars, decoded>"
        else:
            pieces = self.pieces
            size = sum(map(len, pieces))
            data = repr(pieces[0]) if size <= _REPR_DATA_CHARS else f"<{size} chars>"
        fields = [f"event={self.event!r}", f"data={data}"]
        if self.id:
            fields.append(f"id={self.id!r}")
        if self.retry is not None:
            fields.append(f"retry={self.retry!r}")
        # Server text: a server may echo the key in an id, a type or short data.
        return redact(f"ServerSentEvent({', '.join(fields)})")


def id_in_body(sse: ServerSentEvent) -> bool:
    """``sse.id_in_body`` (see :class:`ServerSentEvent`)."""
    return sse.id_in_body


def fingerprint(sse: ServerSentEvent, *, whole: bool = True) -> tuple[str, int, int]:
    """What ``sse`` says (its type and data, not its id), in a few bytes: the type, the
    data's length and a CRC-32, the same however the data arrived (in pieces, or decoded
    by a line hook: then the hook's own :meth:`Decoded.crc32`, which for the image fast
    path covers the image bytes and the other members, never encoded back to text).

    ``whole=True``: the CRC covers all the data (one pass over it; its cost per MB is in
    ``docs/fast.md``): equal events give
    equal values, two different events of the same type and length collide with odds of
    2**-32 (a server gains nothing from a collision: it decides the data anyway).
    ``whole=False``: only the first and last :data:`SAMPLE_CHARS` characters, a cost
    that does not grow with the data: for telling that something changed, not that two
    events are the same."""
    decoded = sse.decoded
    if decoded is not None:
        return sse.event, len(decoded), decoded.crc32(0 if whole else SAMPLE_CHARS)
    pieces = sse.pieces
    size = sum(map(len, pieces))
    if not whole and size > 2 * SAMPLE_CHARS:
        pieces = (_first_chars(pieces, SAMPLE_CHARS), _last_chars(pieces, SAMPLE_CHARS))
    crc = 0
    for piece in pieces:
        crc = zlib.crc32(piece.encode("utf-8", "surrogatepass"), crc)
    return sse.event, size, crc


SAMPLE_CHARS = 4096
"""Characters (or bytes) at each end of the data that ``fingerprint(whole=False)`` reads."""


def _first_chars(pieces: Sequence[str], count: int) -> str:
    taken: list[str] = []
    for piece in pieces:
        taken.append(piece[:count])
        count -= len(taken[-1])
        if not count:
            break
    return "".join(taken)


def _last_chars(pieces: Sequence[str], count: int) -> str:
    taken: list[str] = []
    for piece in reversed(pieces):
        taken.append(piece[-count:] if count < len(piece) else piece)
        count -= len(taken[-1])
        if not count:
            break
    return "".join(reversed(taken))


def data_pieces(sse: ServerSentEvent) -> Sequence[str]:
    """``sse.pieces``: strings whose concatenation is ``sse.data`` (see
    :class:`ServerSentEvent`)."""
    return sse.pieces


@attrs.define
class _SplitLine:
    """The line in progress when a chunk ends inside it. It is held as bytes (``raw``)
    until it is known to be a data line (its first 6 bytes); from then on its value is
    decoded chunk by chunk into ``value`` and joined once at the end of the line, unless
    it is on the hook's fast path (``hooked``). ``size``: its bytes so far, in either
    form."""

    utf8: codecs.IncrementalDecoder
    raw: bytearray = attrs.Factory(bytearray)
    value: list[str] | None = None
    hooked: LineDecoder | None = None
    size: int = 0

    def reset(self) -> None:
        self.raw = bytearray()
        self.value = None
        self.hooked = None
        self.size = 0
        self.utf8.reset()


@attrs.define
class _EventIds:
    """WHATWG's "last event ID" (``last``) and "last event ID buffer" (``buffer``), and
    whether an ``id`` field was taken in this body (``in_body``)."""

    last: str = ""
    buffer: str = ""
    in_body: bool = False


class SSEDecoder:
    """Decodes an ``text/event-stream`` body fed in chunks of any size.

    ``feed(data)`` returns the events that the chunk completed; ``close()`` marks the
    end of the body. After ``close()`` the decoder is ready for the next body of the
    same stream (a reconnection): ``last_event_id`` and ``retry`` are kept, everything
    else starts afresh, including the stripping of a leading BOM.

    Attributes:
        last_event_id: the last event ID: the value of the last ``id`` field, taken at
            the blank line that ends its event (``""`` until then); the value to send
            as ``Last-Event-ID`` when reconnecting.
        retry: the reconnection time in milliseconds the server asked for with a
            ``retry`` field, or ``None``.
        max_event_bytes: the limit on one event, in bytes: the field lines of the event
            being assembled plus the line in progress (a comment line too). Crossing it raises
            :class:`~ttstream.EventTooLargeError` before more than the limit is held.

        line_hook: a fast path for the first data line of each event (a
            :class:`LineHook`), or ``None``. The events are the plain path's whatever
            the hook does: it either makes the line's :attr:`ServerSentEvent.decoded`
            value or gives the line back as text.

    The decoder is generic: with no ``line_hook`` every event stays text. The image fast
    path is the Images layer's hook: ``SSEDecoder(line_hook=ttstream.events.ImageLineHook())``,
    or :func:`ttstream.events.image_decoder` (``docs/fast.md``).

    Raises:
        ValidationError: ``max_event_bytes`` not an int >= 1.

    Each event's ``retry`` is the value of a ``retry`` field within that event's own
    lines, else ``None``; ``id`` is the last event ID at dispatch.
    """

    def __init__(
        self,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        *,
        line_hook: LineHook | None = None,
    ) -> None:
        self.max_event_bytes = require_int("max_event_bytes", max_event_bytes, 1, "bytes")
        self.line_hook = line_hook
        self._ids = _EventIds()
        self._comments = False  # set while feed_all() runs
        self.retry: int | None = None
        self._failure: EventTooLargeError | None = None
        self._split = _SplitLine(codecs.getincrementaldecoder("utf-8")("replace"))
        self._start_body()

    @property
    def last_event_id(self) -> str:
        """The last event ID (see the class docstring). Assigning it seeds the decoder,
        e.g. with the ``Last-Event-ID`` a stream resumes from: it holds until the server
        sends an ``id`` field and is the id of the events dispatched before that."""
        return self._ids.last

    @last_event_id.setter
    def last_event_id(self, value: str) -> None:
        self._ids.last = self._ids.buffer = value

    def _start_body(self) -> None:
        # The id of an event that never reached its blank line is forgotten.
        self._ids.buffer = self._ids.last
        self._ids.in_body = False
        self._head: bytes | None = b""  # bytes seen while a leading BOM may be incomplete
        self._skip_lf = False  # the previous chunk ended in CR
        self._start_line()
        self._start_event()

    def _start_line(self) -> None:
        self._split.reset()

    def _start_event(self) -> None:
        # A split line stays in its pieces; a line of the fast path is decoded data.
        self._data: list[str | list[str] | Decoded] = []
        self._event_type = ""
        self._event_retry: int | None = None
        self._event_size = 0  # bytes of the field lines of the event being assembled

    def __repr__(self) -> str:
        return (
            f"<SSEDecoder last_event_id={self.last_event_id!r} retry={self.retry!r} "
            f"buffered={self._event_size + self._split.size} bytes>"
        )

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Decodes one chunk of the body; returns the events it completed, in order.

        Raises:
            EventTooLargeError: an event outgrew ``max_event_bytes``. The decoder then
                holds nothing and raises the same error on every later call. When the
                chunk completed events before the oversized one, this call returns them
                and the next call (``feed``, :meth:`close` or :meth:`raise_failure`)
                raises.
        """
        return self._feed(data)  # type: ignore[return-value]  # no Comment without feed_all

    def raise_failure(self) -> None:
        """Raises the error of a failed decoder now, with no data: a chunk that completed
        events before an oversized one returned them and held the error back (see
        :meth:`feed`). Does nothing when the decoder has not failed.

        Raises:
            EventTooLargeError: the decoder failed.
        """
        if self._failure is not None:
            raise self._failure

    def feed_all(self, data: bytes) -> list[ServerSentEvent | Comment]:
        """Like :meth:`feed`, with the comment lines the chunk completed as
        :class:`Comment` items, in stream order among the events."""
        self._comments = True
        try:
            return self._feed(data)
        finally:
            self._comments = False

    def _feed(self, data: bytes) -> list[ServerSentEvent | Comment]:
        self.raise_failure()
        if self._head is not None:
            data = self._strip_bom(data)
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 0x0A:
                data = data[1:]
        split = self._split
        hooked = split.hooked
        size = self._event_size + split.size + len(data)
        if hooked is not None and size <= self.max_event_bytes and hooked.take_run(data):
            split.size += len(data)  # all base64: no CR, LF or quote to look for
            return []
        if b"\r" in data:
            # Normalise CRLF and lone CR to LF. A CR at the very end ends its line now;
            # remember it, so that an LF opening the next chunk is skipped.
            self._skip_lf = data[-1] == 0x0D
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

        view = memoryview(data)
        end = data.find(b"\n")
        if end < 0:
            self._extend_line(view, 0)
            return []
        events: list[ServerSentEvent | Comment] = []
        try:
            if split.size:
                self._end_split_line(view, end, events)
            else:
                self._take_line(view, 0, end, end, events)
            start = end + 1
            while (end := data.find(b"\n", start)) >= 0:
                self._take_line(view, start, end, end - start, events)
                start = end + 1
            if start < len(data):
                self._extend_line(view, start)
        except EventTooLargeError:
            if not events:
                raise
            # The events completed before the oversized one are delivered; the decoder
            # is failed, so the next call (feed or close) raises the error.
        return events

    def close(self) -> list[ServerSentEvent]:
        """Marks the end of the body. A pending event that lacks its blank line is
        discarded (WHATWG: "any pending data must be discarded"), so this returns ``[]``;
        it exists so that callers treat the end of a body explicitly.

        Raises:
            EventTooLargeError: the decoder failed (see :meth:`feed`).
        """
        self.raise_failure()
        self._start_body()
        return []

    def _strip_bom(self, data: bytes) -> bytes:
        """Strips one leading BOM, which may itself arrive split across chunks."""
        assert self._head is not None
        head = self._head + data
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._head = head
            return b""
        self._head = None
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _extend_line(self, view: memoryview, start: int) -> None:
        """Adds ``view[start:]``, a piece of a line whose end has not arrived yet: the
        hot path inside a multi-megabyte data line. On the fast path it goes to the
        image's decoder; else pieces of a data value are decoded as soon as 64 KiB have
        gathered (large pieces at once), so the line is never held twice in bytes.
        """
        split = self._split
        part = view[start:]
        size = self._event_size + split.size + len(part)
        if size > self.max_event_bytes:
            self._fail(size)
        split.size += len(part)
        if split.hooked is not None:
            self._feed_hooked(view.obj, start, len(view))
            return
        line = split.raw
        if split.value is not None and not line and len(part) >= _DECODE_BATCH:
            split.value.append(split.utf8.decode(part))
            return
        line += part
        if split.value is None:
            if len(line) < 6 or line[:5] != b"data:":
                return
            split.value = []
            del line[: 6 if line[5] == 0x20 else 5]
            if self.line_hook is not None and not self._data:
                split.hooked = self.line_hook.start()
                split.raw = bytearray()
                self._feed_hooked(line, 0, len(line))
                return
        if len(line) >= _DECODE_BATCH:
            split.value.append(split.utf8.decode(line))
            split.raw = bytearray()

    def _feed_hooked(self, data: Any, start: int, end: int) -> None:
        """Feeds ``data[start:end]`` to the hook's fast path; when it gives the line
        back, goes on as the plain path from there."""
        split = self._split
        assert split.hooked is not None
        assert split.value is not None
        fallback = split.hooked.feed(data, start, end)
        if fallback is not None:
            split.hooked = None
            text, raw = fallback
            split.value.append(text)
            split.value.append(split.utf8.decode(raw))

    def _end_split_line(
        self, view: memoryview, end: int, events: list[ServerSentEvent | Comment]
    ) -> None:
        """Completes the line in progress with ``view[:end]``, its final piece."""
        split = self._split
        last = view[:end]
        size = split.size + len(last)
        if split.hooked is not None:
            if self._event_size + size > self.max_event_bytes:
                self._fail(self._event_size + size)
            self._event_size += size
            self._data.append(self._end_hooked(split.hooked, view.obj, 0, end))
            self._start_line()
            return
        if split.value is None:
            split.raw += last
            with memoryview(split.raw) as line:
                self._take_line(line, 0, len(line), size, events)
        elif self._event_size + size > self.max_event_bytes:
            self._fail(self._event_size + size)
        else:
            if split.raw:
                split.raw += last
                split.value.append(split.utf8.decode(split.raw, final=True))
            else:
                split.value.append(split.utf8.decode(last, final=True))
            self._event_size += size
            self._data.append(split.value[0] if len(split.value) == 1 else split.value)
        self._start_line()

    def _fail(self, size: int) -> None:
        self._failure = EventTooLargeError(limit=self.max_event_bytes, size=size)
        self._start_line()
        self._start_event()
        raise self._failure

    def _end_hooked(self, hooked: LineDecoder, data: Any, start: int, end: int) -> str | Decoded:
        """The value of a line of the fast path, ended by ``data[start:end]``: what the
        hook made of it, or the text the plain path would have given."""
        result = hooked.end(data, start, end)
        if not isinstance(result, tuple):
            return result
        text, raw = result
        return text + str(raw, "utf-8", "replace") if raw else text

    def _dispatch(self) -> ServerSentEvent:
        """The event assembled so far. Lines of data join with LF; when one of them is
        still in pieces, the event keeps them all as ``pieces``; one line the hook made
        something of is the event's ``decoded`` value."""
        event, id, retry = self._event_type, self.last_event_id, self._event_retry
        in_body = self._ids.in_body
        if len(self._data) == 1 and not isinstance(self._data[0], str | list):
            return ServerSentEvent(
                event, None, id, retry, id_in_body=in_body, decoded=self._data[0]
            )
        pieces: list[str] = []
        split = False
        for line in self._data:
            if pieces:
                pieces.append("\n")
            if isinstance(line, str):
                pieces.append(line)
            elif isinstance(line, list):
                pieces += line
                split = True
            else:
                pieces.append(line.text())
        if split:
            return ServerSentEvent(event, None, id, retry, id_in_body=in_body, pieces=pieces)
        data = pieces[0] if len(pieces) == 1 else "".join(pieces)
        return ServerSentEvent(event, data, id, retry, id_in_body=in_body)

    def _take_line(
        self,
        view: memoryview,
        start: int,
        end: int,
        size: int,
        events: list[ServerSentEvent | Comment],
    ) -> None:
        """Interprets one complete line, ``view[start:end]`` (without its line end), of
        ``size`` bytes in all (its earlier pieces included)."""
        line = view[start:end]
        if not line:
            # WHATWG, "dispatch the event", step 1: the last event ID becomes the buffer's
            # value at each blank line, so an event cut off before its blank line never
            # moves it (a reconnection then resumes before that event, not after it).
            ids = self._ids
            ids.last = ids.buffer
            if self._data:
                events.append(self._dispatch())
            self._start_event()
            return
        size += self._event_size
        if size > self.max_event_bytes:  # a comment too: split, it was held as it came
            self._fail(size)
        if line[0] == 0x3A:  # ":" starts a comment
            if self._comments:
                text = str(line[1:], "utf-8", "replace")
                events.append(Comment(text[1:] if text.startswith(" ") else text))
            return
        self._event_size = size
        if line[:5].tobytes() == b"data:":  # the hot path: decode the value in place, once
            start += 6 if line[5:6].tobytes() == b" " else 5
            raw = view[start:end]
            hook = self.line_hook
            if hook is not None and not self._data and hook.wants(raw):
                self._data.append(self._end_hooked(hook.start(), view.obj, start, end))
            else:
                self._data.append(str(raw, "utf-8", "replace"))
            return
        name, colon, value = str(line, "utf-8", "replace").partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self._ids.buffer = value
                self._ids.in_body = True
        elif name == "retry" and value.isascii() and value.isdigit():
            # Capped: a reconnection time of 10**15 ms is already 31,000 years, and a
            # server's 5,000 digits must not reach int() (ValueError past 4,300).
            digits = value.lstrip("0") or "0"
            retry = int(digits) if len(digits) <= 15 else _MAX_RETRY_MS
            self.retry = self._event_retry = min(retry, _MAX_RETRY_MS)
