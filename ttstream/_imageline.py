"""The fast path of one ``data:`` line that holds an image: its base64 is decoded while
the line's bytes arrive, instead of being held as text, escape-checked and decoded after
the event ends (``docs/fast.md``).

The line must be a JSON object; once the members before the image's key (one of
``keys``, e.g. ``"b64_json"``) are parsed by json's own scanner, the bytes of the string
value are decoded in runs whose length is a multiple of 4 (0 to 3 bytes carried to the
next run) by a strict decoder that refuses every byte outside the base64 alphabet, so
every byte it takes is one json.loads would take verbatim (no backslash, no control
character, ASCII). After the closing quote, the rest of the object is parsed at the end
of the line.

Any doubt (an escape, a non-ASCII byte, padding before the end, non-zero bits under the
padding, a key that appears twice, a head that is not plain JSON, no closing quote, text
after the object) gives the line back as text, exactly as the plain path would have
decoded it: every byte taken was ASCII, so its character is itself, the UTF-8 decoder of
the plain path resumes cleanly after it, and the decoded bytes encode back to the very
text they came from.
"""

from __future__ import annotations

import io
import json
import re
import zlib
from collections.abc import Callable
from typing import Any

from ._base64 import Codec
from ._json import too_deep

__all__ = ["HEAD_LIMIT", "DecodedData", "ImageLine", "skip_whitespace"]

HEAD_LIMIT = 64 * 1024
"""Bytes of a line before its image string after which the fast path gives up on it."""

_DECODER = json.JSONDecoder()
# json's own string scanner (the C one when built), as json.loads runs it: strict.
scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON whitespace, as json.decoder skips it
_NUMBER_GOES_ON = frozenset("0123456789.eE+-")
_MORE = object()  # the head may parse once more bytes arrive


def skip_whitespace(text: str, i: int) -> int:
    """The index of the first character at or after ``i`` that is not JSON whitespace."""
    match = _WHITESPACE.match(text, i)
    return i if match is None else match.end()


class DecodedData:
    """The data of an event whose image string was decoded on arrival.

    Attributes:
        members: the event's JSON object, as ``json.loads`` of the data gives it (same
            values, same key order), except ``members[key]``: the decoded bytes.
        key: the member that held the base64 (``"b64_json"``, ``"partial_image_b64"``).
        image: the decoded bytes, as canonical base64 decoding of the string gives them.
    """

    __slots__ = ("_codec", "_head", "_tail", "image", "key", "members")

    def __init__(
        self, head: str, key: str, image: bytes, tail: str, members: dict[str, Any], codec: Codec
    ) -> None:
        self._head, self._tail, self._codec = head, tail, codec
        self.key, self.image, self.members = key, image, members

    def text(self) -> str:
        """The data as it arrived, rebuilt: the base64 is encoded again (one pass over
        the image, a new string of the data's size on every call)."""
        return self._head + self._codec.encode_text(self.image) + self._tail

    def __len__(self) -> int:
        """The length of :meth:`text`, computed without building it."""
        return len(self._head) + (len(self.image) + 2) // 3 * 4 + len(self._tail)

    def crc32(self, sample: int = 0) -> int:
        """A CRC-32 of the key, the other members and the image bytes (never encoded back
        to text), for ``ttstream.sse.fingerprint``; ``sample > 0``: of the image's first
        and last ``sample`` bytes only."""
        others = {key: value for key, value in self.members.items() if key != self.key}
        head = f"{self.key}\0{others!r}".encode("utf-8", "surrogatepass")
        image = self.image
        if sample and len(image) > 2 * sample:
            image = image[:sample] + image[-sample:]
        return zlib.crc32(image, zlib.crc32(head))


Fallback = tuple[str, bytes]
"""What the line gives back on a doubt: its text so far, and bytes still to decode as
UTF-8 (the plain path's work from there)."""


class ImageLine:
    """One data line on the fast path: feed its value's bytes as they arrive, then
    :meth:`end` it. ``feed`` answers ``None`` while the fast path holds, or a
    :data:`Fallback` once it gave up; after that the line is no longer fed.
    ``on_end`` is called with the image's size when :meth:`end` gives
    :class:`DecodedData` (``ttstream._imagehook`` sizes the next lines' buffers with it)."""

    __slots__ = (
        "_carry",
        "_codec",
        "_found",
        "_head",
        "_hint",
        "_hint_at",
        "_keys",
        "_on_end",
        "_out",
        "_room",
        "_scan_at",
        "_tail",
    )

    def __init__(
        self,
        keys: tuple[str, ...],
        codec: Codec,
        size_hint: int = 0,
        on_end: Callable[[int], None] | None = None,
        hint_at: int = 0,
    ) -> None:
        """``size_hint``: the decoded size expected (the previous image's of the stream,
        whose previews and final share a size, or of an earlier stream of the same
        request shape), or 0: the image's buffer is made that large once and filled in
        place (see :meth:`_make_room`), once the image holds ``hint_at`` bytes."""
        self._keys = keys
        self._codec = codec
        self._head = bytearray()  # the line's bytes until its image string is found
        self._scan_at = 1  # parse the head again once it holds this many bytes
        self._found: tuple[dict[str, Any], str, str] | None = None  # members, key, head text
        # The decoded image: written in place, taken without a copy (``_take``); ``_room``
        # is the size of its buffer, made ``_hint`` large by the first ``take_run`` that
        # needs room (when that is enough), else grown by half at a time (``_write``).
        self._out = io.BytesIO()
        self._room = 0
        self._hint = size_hint
        self._hint_at = hint_at
        self._on_end = on_end
        self._carry = b""  # 0 to 3 bytes of base64 waiting for their quantum
        self._tail: bytearray | None = None  # the bytes from the closing quote on

    def feed(self, data: bytes | bytearray, start: int, end: int) -> Fallback | None:
        """Takes ``data[start:end]``, the next bytes of the value."""
        if self._tail is not None:
            self._tail += memoryview(data)[start:end]
            return None
        if self._found is None:
            return self._feed_head(data, start, end)
        return self._feed_value(data, start, end)

    def take_run(self, data: bytes) -> bool:
        """Decodes all of ``data`` as the inside of the image string, when it is: then
        it holds no quote and no line end, and the caller need not search it for them
        (the strict decoder has checked every byte). Answers ``False``, having taken
        nothing, when ``data`` is anything else (its end, a doubt, padding)."""
        if self._found is None or self._tail is not None:
            return False
        carry = self._carry
        fill = -len(carry) % 4
        stop = len(data) - (len(data) - fill) % 4
        if stop - fill < 4:
            return False
        left = data[stop:]
        if left and (b'"' in left or b"\n" in left or b"\r" in left):
            return False
        decode = self._codec.decode_run
        first = decode(carry + data[:fill], last=False) if carry else b""
        if first is None:
            return False
        with memoryview(data) as view:
            run = decode(view[fill:stop], last=False)
        if run is None:
            return False
        out = self._out
        end = out.tell() + len(first) + len(run)
        if end > self._room:
            out = self._make_room(end)
        if first:
            out.write(first)
        out.write(run)
        self._carry = left
        return True

    def end(self, data: bytes | bytearray, start: int, end: int) -> DecodedData | Fallback:
        """Takes the last bytes of the value; answers the decoded data, or the line as a
        :data:`Fallback` when the fast path cannot vouch for it."""
        if self._found is None:
            self._scan_at = 0  # scan what there is, however little
        fallback = self.feed(data, start, end)
        if fallback is not None:
            return fallback
        if self._found is None:
            return "", bytes(self._head)
        if self._tail is None:  # no closing quote: the plain path decides
            return self._fallback(self._carry)
        members, key, head = self._found
        tail = self._tail.decode("utf-8", "replace")
        # The line is done and keeps nothing of it: the image must not outlive the
        # consumer's event because something still holds the line.
        self._found = self._tail = None
        image = self._take()
        if not _parse_tail(tail, key, members):
            return head + self._codec.encode_text(image) + tail, b""
        members[key] = image
        if self._on_end is not None:
            self._on_end(len(image))
        return DecodedData(head, key, image, tail, members, self._codec)

    def _feed_head(self, data: bytes | bytearray, start: int, end: int) -> Fallback | None:
        head = self._head
        head += memoryview(data)[start:end]
        if len(head) < self._scan_at:
            return None
        found = _scan_head(head[:HEAD_LIMIT].decode("latin-1"), self._keys)
        if found is _MORE and len(head) <= HEAD_LIMIT:
            self._scan_at = 2 * len(head)
            return None
        if not isinstance(found, tuple):
            self._head = bytearray()
            return "", bytes(head)
        members, key, value_start = found
        self._found = (members, key, head[:value_start].decode("ascii"))
        self._head = bytearray()
        members[key] = None  # holds the key's place in the object's order
        return self._feed_value(head, value_start, len(head))

    def _feed_value(self, data: bytes | bytearray, start: int, end: int) -> Fallback | None:
        quote = data.find(b'"', start, end)
        final = quote >= 0  # the string ends in this part
        stop = quote if final else end
        carry = self._carry
        decode = self._codec.decode_run
        pieces = []
        i = start
        if carry:
            fill = max(0, min(4 - len(carry), stop - start))
            quantum = carry + bytes(data[start : start + fill])
            i = start + fill
            if len(quantum) != 4 or (not final and i == stop and quantum.endswith(b"=")):
                if final or len(quantum) > 4:
                    return self._fallback(carry, data, start, end)
                self._carry = quantum  # short, or maybe the padded last quantum
                return None
            out = decode(quantum, last=final and i == stop)
            if out is None:
                return self._fallback(carry, data, start, end)
            pieces.append(out)
        length = stop - i
        if final and length % 4:
            return self._fallback(carry, data, start, end)
        aligned = stop - length % 4
        if not final and aligned > i and data[aligned - 1] == 0x3D:
            aligned -= 4  # "=": the padding of the last quantum, or an error; wait and see
        if aligned > i:
            with memoryview(data) as view:
                out = decode(view[i:aligned], last=final)
            if out is None:
                return self._fallback(carry, data, start, end)
            pieces.append(out)
        for piece in pieces:
            self._write(piece)
        self._carry = bytes(data[aligned:stop])
        if final:
            self._tail = bytearray(memoryview(data)[quote:end])
        return None

    def _write(self, piece: bytes) -> None:
        """Appends decoded bytes to the image, in place. A buffer without room left is
        grown by half at least (:meth:`_grow`), not by ``io.BytesIO``'s own eighth: a
        block of megabytes can seldom be extended in place, so each growth is a copy,
        about eight of the whole image with eighths and two with halves; joining the
        pieces once at the end instead would hold the image twice at its end."""
        out = self._out
        end = out.tell() + len(piece)
        if end > self._room:
            self._grow(end)
        out.write(piece)

    def _grow(self, end: int) -> None:
        """Makes the buffer at least ``end`` bytes large, and half as large again as it
        was (the bytes past what was written are zeroed, as a write past the end of an
        ``io.BytesIO`` zeroes them; ``_take`` cuts them off)."""
        room = max(end, self._room * 3 // 2)
        out = self._out
        at = out.tell()
        out.seek(room - 1)
        out.write(b"\0")
        out.seek(at)
        self._room = room

    def _make_room(self, end: int) -> io.BytesIO:
        """Makes the buffer at least ``end`` bytes large, for :meth:`take_run`, and
        answers it: ``size_hint`` large once it holds ``hint_at`` bytes, when that is
        room enough (zeroed by ``calloc``, the bytes written so far copied over), else
        grown by half (:meth:`_grow`), as it is from then on. The hint is taken only for
        a chunk that lies wholly inside the string, so never for the chunk that began
        it, which may also have ended the event before: until the consumer takes that
        event, the one before it may still be alive."""
        if self._hint < end:
            self._hint = 0  # none, or the image outgrew it
        if not self._hint or end < self._hint_at:
            self._grow(end)
        else:
            hint, self._hint = self._hint, 0
            written = self._take()
            self._out, self._room = io.BytesIO(bytes(hint)), hint
            self._out.write(written)
        return self._out

    def _take(self) -> bytes:
        """The image decoded so far. The buffer is cut to what was written and becomes
        the ``bytes`` without a copy (``io.BytesIO.getvalue`` shares a buffer it alone
        holds, cut to size in place); the line then starts an empty buffer."""
        out = self._out
        out.truncate(out.tell())
        self._out, self._room = io.BytesIO(), 0
        return out.getvalue()

    def _fallback(
        self, carry: bytes, data: bytes | bytearray = b"", start: int = 0, end: int = 0
    ) -> Fallback:
        """The line as text so far, and the raw bytes not taken: the carried ones and
        ``data[start:end]``."""
        assert self._found is not None
        text = self._found[2] + self._codec.encode_text(self._take())
        return text, carry + bytes(memoryview(data)[start:end])


def _scan_head(text: str, keys: tuple[str, ...]) -> tuple[dict[str, Any], str, int] | object:
    """Parses the members of the object ``text`` begins, up to the first of ``keys``
    whose value is a string: answers the members before it, the key and the index after
    the string's opening quote; :data:`_MORE` when ``text`` may be cut short; ``None``
    when the fast path cannot vouch for the head (json.loads must decide)."""
    n = len(text)
    i = skip_whitespace(text, 0)
    if i >= n:
        return _MORE
    if text[i] != "{":
        return None
    members: dict[str, Any] = {}
    i = skip_whitespace(text, i + 1)
    while True:
        if i >= n:
            return _MORE
        if text[i] != '"':
            return None
        try:
            key, i = scanstring(text, i + 1)
        except ValueError:
            return _MORE
        i = skip_whitespace(text, i)
        if i >= n:
            return _MORE
        if text[i] != ":":
            return None
        i = skip_whitespace(text, i + 1)
        if i >= n:
            return _MORE
        if key in keys:
            if text[i] != '"' or key in members or not text[:i].isascii():
                return None
            return members, key, i + 1
        if text[i] in "[{" and too_deep(text, i, within=1) is not None:
            return None  # nested too deeply: json.loads of the whole data refuses it
        try:
            value, i = _DECODER.raw_decode(text, i)
        except ValueError:
            return _MORE
        after = skip_whitespace(text, i)
        if after >= n or (after == i and text[i] in _NUMBER_GOES_ON):
            return _MORE  # a number may go on in the next bytes
        members[key] = value
        if text[after] != ",":
            return None
        i = skip_whitespace(text, after + 1)


def _parse_tail(tail: str, key: str, members: dict[str, Any]) -> bool:
    """Adds the members after the image string (``tail`` starts at its closing quote)
    to ``members``; False when json.loads would not give the same object.

    The members after the comma are parsed as one object by json's own decoder (``{`` in
    place of the comma): the same values, a later duplicate replacing an earlier one in
    its place, as json.loads of the whole data gives them."""
    if too_deep(tail, 1, within=1) is not None:  # after the image string's closing quote
        return False
    i = skip_whitespace(tail, 1)
    if tail.startswith("}", i):
        return skip_whitespace(tail, i + 1) == len(tail)
    if not tail.startswith(",", i) or not tail.startswith('"', skip_whitespace(tail, i + 1)):
        return False  # "," then a member's name, or json.loads refuses the data
    rest = "{" + tail[i + 1 :]
    try:
        after, end = _DECODER.raw_decode(rest)
    except ValueError:
        return False
    if skip_whitespace(rest, end) != len(rest):
        return False  # text after the object
    if key in after:
        return False  # the image's key again: json.loads keeps the later value
    members.update(after)
    return True
