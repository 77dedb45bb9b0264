"""A sans-I/O Server-Sent Events decoder: bytes in, ``ServerSentEvent`` objects out.

It follows the WHATWG HTML standard, section "Server-sent events", 9.2.6 "Interpreting
an event stream" (summarised in docs/sse.md):

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
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
from httpx_sse import ServerSentEvent

from ._exceptions import EventTooLargeError

if TYPE_CHECKING:
    from ._eventsource import EventSource

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "Comment",
    "EventSource",
    "SSEDecoder",
    "ServerSentEvent",
    "data_pieces",
]

DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024
"""The default limit on one event's size: 64 MiB, far above a 4096x4096 PNG in base64."""

_BOM = b"\xef\xbb\xbf"
_DECODE_BATCH = 64 * 1024
_REPR_DATA_CHARS = 80


@attrs.frozen
class Comment:
    """A comment line of the stream (a line that starts with ``:``), without the colon
    and one leading space: servers send them as keep-alives (WHATWG ignores them; a UI
    can show them as "still working"). Only :meth:`SSEDecoder.feed_all` returns them."""

    text: str


class _Event(ServerSentEvent):
    """httpx-sse's ``ServerSentEvent``, with a ``repr`` that shows the length of long
    data instead of printing megabytes of base64 (a fault of httpx-sse's own repr)."""

    _id_in_body = False  # see id_in_body()

    def __repr__(self) -> str:
        pieces = data_pieces(self)
        size = sum(map(len, pieces))
        data = repr(pieces[0]) if size <= _REPR_DATA_CHARS else f"<{size} chars>"
        fields = [f"event={self.event!r}", f"data={data}"]
        if self.id:
            fields.append(f"id={self.id!r}")
        if self.retry is not None:
            fields.append(f"retry={self.retry!r}")
        return f"ServerSentEvent({', '.join(fields)})"


class _PiecewiseEvent(_Event):
    """An event whose data, holding a line longer than 64 KiB, is kept in the pieces it
    was decoded in, and joined on first use of ``data``.

    :func:`ttstream.parse_event` reads the pieces (see :func:`data_pieces`) and copies
    out only the ``b64_json`` string, so a multi-megabyte event is not copied whole once
    more, into fresh memory, only to be sliced.
    """

    def __init__(self, event: str, pieces: list[str], id: str, retry: int | None) -> None:
        super().__init__(event=event, id=id, retry=retry)
        self._pieces: list[str] | None = pieces
        self._joined = ""

    @property
    def data(self) -> str:
        if self._pieces is not None:
            self._joined, self._pieces = "".join(self._pieces), None
        return self._joined


def id_in_body(sse: ServerSentEvent) -> bool:
    """Whether an ``id`` field was taken in the body of ``sse``, at or before it: else its
    id was inherited from an earlier body or seeded (``True`` for events the decoder did
    not make). A replay after a resume carries its ids in its own body."""
    return getattr(sse, "_id_in_body", True) is True


def data_pieces(sse: ServerSentEvent) -> Sequence[str]:
    """The data of ``sse`` as strings whose concatenation is ``sse.data``: the pieces
    of an event from :class:`SSEDecoder` not joined yet, else just ``(sse.data,)``."""
    if isinstance(sse, _PiecewiseEvent) and sse._pieces is not None:
        return sse._pieces
    return (sse.data,)


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
            being assembled plus the line in progress. Crossing it raises
            :class:`~ttstream.EventTooLargeError` before more than the limit is held.

    Each event's ``retry`` is the value of a ``retry`` field within that event's own
    lines, else ``None``; ``id`` is the last event ID at dispatch.
    """

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes <= 0:
            raise ValueError(f"max_event_bytes must be a positive int, got {max_event_bytes!r}")
        self.max_event_bytes = max_event_bytes
        self._last_event_id = ""
        self._comments = False  # set while feed_all() runs
        self.retry: int | None = None
        self._failure: EventTooLargeError | None = None
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._start_body()

    @property
    def last_event_id(self) -> str:
        """The last event ID (see the class docstring). Assigning it seeds the decoder,
        e.g. with the ``Last-Event-ID`` a stream resumes from: it holds until the server
        sends an ``id`` field and is the id of the events dispatched before that."""
        return self._last_event_id

    @last_event_id.setter
    def last_event_id(self, value: str) -> None:
        self._last_event_id = self._id_buffer = value

    def _start_body(self) -> None:
        # The id of an event that never reached its blank line is forgotten.
        self._id_buffer = self._last_event_id
        self._id_field = False  # an id field was taken in this body
        self._head: bytes | None = b""  # bytes seen while a leading BOM may be incomplete
        self._skip_lf = False  # the previous chunk ended in CR
        self._start_line()
        self._start_event()

    def _start_line(self) -> None:
        # A line split across chunks is held as bytes until it is known to be a data line
        # (its first 6 bytes); from then on its value is decoded chunk by chunk into
        # ``_value`` and joined once at the end of the line.
        self._line = bytearray()
        self._value: list[str] | None = None
        self._line_size = 0  # bytes of the line in progress, in either form
        self._utf8.reset()

    def _start_event(self) -> None:
        self._data: list[str | list[str]] = []  # a split line stays in its pieces
        self._event_type = ""
        self._event_retry: int | None = None
        self._event_size = 0  # bytes of the field lines of the event being assembled

    def __repr__(self) -> str:
        return (
            f"<SSEDecoder last_event_id={self.last_event_id!r} retry={self.retry!r} "
            f"buffered={self._event_size + self._line_size} bytes>"
        )

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Decodes one chunk of the body; returns the events it completed, in order.

        Raises:
            EventTooLargeError: an event outgrew ``max_event_bytes``. The decoder then
                holds nothing and raises the same error on every later call.
        """
        return self._feed(data)  # type: ignore[return-value]  # no Comment without feed_all

    def feed_all(self, data: bytes) -> list[ServerSentEvent | Comment]:
        """Like :meth:`feed`, with the comment lines the chunk completed as
        :class:`Comment` items, in stream order among the events."""
        self._comments = True
        try:
            return self._feed(data)
        finally:
            self._comments = False

    def _feed(self, data: bytes) -> list[ServerSentEvent | Comment]:
        if self._failure is not None:
            raise self._failure
        if self._head is not None:
            data = self._strip_bom(data)
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 0x0A:
                data = data[1:]
        if b"\r" in data:
            # Normalise CRLF and lone CR to LF. A CR at the very end ends its line now;
            # remember it, so that an LF opening the next chunk is skipped.
            self._skip_lf = data[-1] == 0x0D
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

        end = data.find(b"\n")
        if end < 0:
            self._extend_line(data)
            return []
        events: list[ServerSentEvent | Comment] = []
        view = memoryview(data)
        first = view[:end]
        if self._line_size:
            self._end_split_line(first, events)
        else:
            self._take_line(first, end, events)
        start = end + 1
        while (end := data.find(b"\n", start)) >= 0:
            line = view[start:end]
            self._take_line(line, len(line), events)
            start = end + 1
        if start < len(data):
            self._extend_line(view[start:])
        return events

    def close(self) -> list[ServerSentEvent]:
        """Marks the end of the body. A pending event that lacks its blank line is
        discarded (WHATWG: "any pending data must be discarded"), so this returns ``[]``;
        it exists so that callers treat the end of a body explicitly.
        """
        if self._failure is not None:
            raise self._failure
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

    def _extend_line(self, part: bytes | memoryview) -> None:
        """Adds a piece of a line whose end has not arrived yet: the hot path inside a
        multi-megabyte data line. Pieces of a data value are decoded as soon as 64 KiB
        have gathered (large pieces at once), so the line is never held twice in bytes.
        """
        size = self._event_size + self._line_size + len(part)
        if size > self.max_event_bytes:
            self._fail(size)
        self._line_size += len(part)
        line = self._line
        if self._value is not None and not line and len(part) >= _DECODE_BATCH:
            self._value.append(self._utf8.decode(part))
            return
        line += part
        if self._value is None:
            if len(line) < 6 or line[:5] != b"data:":
                return
            self._value = []
            del line[: 6 if line[5] == 0x20 else 5]
        if len(line) >= _DECODE_BATCH:
            self._value.append(self._utf8.decode(line))
            self._line = bytearray()

    def _end_split_line(self, last: memoryview, events: list[ServerSentEvent | Comment]) -> None:
        """Completes the line in progress with ``last``, its final piece."""
        size = self._line_size + len(last)
        if self._value is None:
            self._line += last
            with memoryview(self._line) as line:
                self._take_line(line, size, events)
        elif self._event_size + size > self.max_event_bytes:
            self._fail(self._event_size + size)
        else:
            if self._line:
                self._line += last
                self._value.append(self._utf8.decode(self._line, final=True))
            else:
                self._value.append(self._utf8.decode(last, final=True))
            self._event_size += size
            self._data.append(self._value[0] if len(self._value) == 1 else self._value)
        self._start_line()

    def _fail(self, size: int) -> None:
        self._failure = EventTooLargeError(limit=self.max_event_bytes, size=size)
        self._start_line()
        self._start_event()
        raise self._failure

    def _dispatch(self) -> _Event:
        """The event assembled so far. Lines of data join with LF; when one of them is
        still in pieces, the event keeps them all as pieces (a :class:`_PiecewiseEvent`)."""
        event, id, retry = self._event_type, self.last_event_id, self._event_retry
        pieces: list[str] = []
        split = False
        for line in self._data:
            if pieces:
                pieces.append("\n")
            if isinstance(line, str):
                pieces.append(line)
            else:
                pieces += line
                split = True
        if split:
            return _PiecewiseEvent(event, pieces, id, retry)
        data = pieces[0] if len(pieces) == 1 else "".join(pieces)
        return _Event(event=event, data=data, id=id, retry=retry)

    def _take_line(
        self, line: memoryview, size: int, events: list[ServerSentEvent | Comment]
    ) -> None:
        """Interprets one complete line (without its line end) of ``size`` bytes."""
        if not line:
            # WHATWG, "dispatch the event", step 1: the last event ID becomes the buffer's
            # value at each blank line, so an event cut off before its blank line never
            # moves it (a reconnection then resumes before that event, not after it).
            self._last_event_id = self._id_buffer
            if self._data:
                event = self._dispatch()
                if self._id_field:
                    event._id_in_body = True
                events.append(event)
            self._start_event()
            return
        if line[0] == 0x3A:  # ":" starts a comment
            if self._comments:
                text = str(line[1:], "utf-8", "replace")
                events.append(Comment(text[1:] if text.startswith(" ") else text))
            return
        size += self._event_size
        if size > self.max_event_bytes:
            self._fail(size)
        self._event_size = size
        if line[:5].tobytes() == b"data:":  # the hot path: decode the value in place, once
            start = 6 if line[5:6].tobytes() == b" " else 5
            self._data.append(str(line[start:], "utf-8", "replace"))
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
                self._id_buffer = value
                self._id_field = True
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = self._event_retry = int(value)


def __getattr__(name: str) -> object:
    # ``ttstream.sse.EventSource``: the I/O layer on top of the decoder, imported lazily
    # because it imports this module.
    if name == "EventSource":
        from ._eventsource import EventSource

        return EventSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
