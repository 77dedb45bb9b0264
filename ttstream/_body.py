"""Bounded decoding of response bodies: no read decodes to more than a set number of bytes.

httpx decodes each network read of a compressed body whole, before its caller sees a
byte: a 1.8 KB ``Content-Encoding: gzip, gzip`` body then becomes gigabytes in one
``aiter_bytes()`` step. Here the raw bytes (``response.aiter_raw()``) go through
``zlib.decompressobj().decompress(data, max_length)``, so each decoded piece is at most
``read_limit`` bytes and the next piece is decoded only when the caller asks for it
(docs/hostile-servers.md, "Compressed bodies").

Content-Encoding rules (RFC 9110, section 8.4):

- ``identity`` (or no header), ``gzip`` (several members in a row are one body, as RFC
  1952 allows) and ``deflate`` (zlib-wrapped, or raw as some servers send it) are
  decoded;
- anything else, ``br`` and ``zstd`` included, and stacked codings (``gzip, gzip``) are
  refused with :class:`~ttstream.ProtocolError`: ttstream asks for ``gzip, deflate``
  only (:data:`ACCEPT_ENCODING`), and neither ``brotli`` nor ``zstandard`` offers a
  bounded decoder on every Python ttstream supports;
- a body that is not the coding it claims is :class:`~ttstream.ProtocolError` too; one
  that ends before its coded data does (a gzip trailer and its CRC missing) is cut
  short, as a connection closed early is (``httpx2.RemoteProtocolError``).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import AsyncGenerator, Iterator

import httpx2

from ._checks import require_int
from ._exceptions import EventTooLargeError, ProtocolError

__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_READ_LIMIT",
    "Inflater",
    "aiter_bounded",
    "read_body",
    "read_prefix",
]

ACCEPT_ENCODING = "gzip, deflate"
"""The ``Accept-Encoding`` ttstream sends: the codings it decodes within bounds."""
DEFAULT_READ_LIMIT = 64 * 1024
"""Bytes of decoded body per piece: about one network read of an uncompressed body."""

_DECODED = ("gzip", "deflate")
_ALLOWED = "no Content-Encoding, 'identity', 'gzip' or 'deflate' (one coding)"


class Inflater:
    """One ``gzip`` or ``deflate`` coding, decoded in pieces of at most ``limit`` bytes.

    ``deflate`` is zlib-wrapped (RFC 1950) or, as some servers send it, raw (RFC 1951):
    the first two bytes tell which (a zlib header is method 8 and a multiple of 31).
    """

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._started = False  # a byte of the body arrived
        self._head = b""  # deflate: the first bytes, until the two that tell the kind
        self._zlib: zlib._Decompress | None = (
            zlib.decompressobj(zlib.MAX_WBITS | 16) if coding == "gzip" else None
        )

    def _start(self, data: bytes) -> bytes:
        """Starts the deflate decompressor once two bytes arrived; the bytes to decode."""
        self._head += data
        if len(self._head) < 2:
            return b""
        first, second = self._head[0], self._head[1]
        zlib_wrapped = first & 0x0F == 8 and (first * 256 + second) % 31 == 0
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        data, self._head = self._head, b""
        return data

    def end(self) -> None:
        """The body ended: it must end where its coding does (a gzip member's trailer,
        with its CRC, or the end of the deflate stream), or be empty.

        Raises:
            httpx2.RemoteProtocolError: the coded data stops before its end: a body cut
                short, as a connection closed early is (callers map it with
                ``ttstream._connect.connection_error``: :class:`~ttstream.ProtocolError`;
                an event stream reconnects first).
        """
        if self._started and (self._zlib is None or not self._zlib.eof):
            raise httpx2.RemoteProtocolError(
                f"the body claims Content-Encoding {self.coding!r} but ends before the end "
                f"of its {self.coding} data (truncated)"
            )

    def decode(self, data: bytes, limit: int) -> Iterator[bytes]:
        self._started = self._started or bool(data)
        if self._zlib is None:
            data = self._start(data)
            if self._zlib is None:
                return
        while True:
            if self._zlib.eof:
                # The end of one gzip member; another may follow (RFC 1952, 2.2). Zero
                # bytes of padding after the end are tolerated, anything else refused.
                data = data.lstrip(b"\0")
                if not data:
                    return
                if self.coding != "gzip":
                    raise ProtocolError(f"bytes follow the end of the {self.coding} body")
                self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
            try:
                piece = self._zlib.decompress(data, limit)
            except zlib.error as exc:
                raise ProtocolError(
                    f"the body claims Content-Encoding {self.coding!r} but does not decode "
                    f"as {self.coding} ({exc})"
                ) from exc
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
            if piece:
                yield piece
            # A full piece may leave output inside zlib although every input byte was
            # taken: ask again until a piece comes back short.
            if not data and len(piece) < limit:
                return


def _coding(response: httpx2.Response) -> str | None:
    """The one content coding to undo, or ``None`` for an identity body.

    Raises:
        ProtocolError: stacked or unknown codings.
    """
    values = response.headers.get_list("content-encoding", split_commas=True)
    codings = [v.strip().lower() for v in values if v.strip().lower() not in ("", "identity")]
    if len(codings) > 1:
        raise ProtocolError(
            f"the body has stacked Content-Encoding {', '.join(codings)!r}; allowed: {_ALLOWED}"
        )
    if codings and codings[0] not in _DECODED:
        raise ProtocolError(f"the body has Content-Encoding {codings[0]!r}; allowed: {_ALLOWED}")
    return codings[0] if codings else None


async def aiter_bounded(
    response: httpx2.Response, *, read_limit: int = DEFAULT_READ_LIMIT
) -> AsyncGenerator[bytes, None]:
    """The decoded body of ``response`` (opened with ``stream=True``): a compressed
    body in pieces of at most ``read_limit`` bytes, the next piece decoded only when asked
    for; an uncompressed one in its network reads as they come (each already held whole,
    their size set by the transport: 256 KiB for the client ttstream creates). Memory
    holds at most one network read and one piece at a time.

    For event streams: the SSE decoder fed from these pieces enforces the per-event cap.

    Raises:
        ProtocolError: stacked or unknown ``Content-Encoding``, or a body that does not
            decode as its coding (checked before the first byte is read for the first).
        httpx2.TransportError: the connection failed while reading (as ``aiter_raw``),
            or the body ended before its coded data did (``RemoteProtocolError``).
        ValidationError: ``read_limit`` not an int >= 1.
    """
    require_int("read_limit", read_limit, 1, "bytes")
    if response.is_stream_consumed:  # built with its content (httpx2.Response(content=...))
        content = response.content
        for start in range(0, len(content), read_limit):
            yield content[start : start + read_limit]
        return
    coding = _coding(response)
    inflater = None if coding is None else Inflater(coding)
    # Closed on every way out (an early aclose() of this generator included), never
    # left to the garbage collector (trio warns of each one it finalizes).
    async with contextlib.aclosing(response.aiter_raw()) as raws:
        async for raw in raws:
            if inflater is None:
                yield raw  # as read: already in memory, so cutting it would bound nothing
            else:
                for piece in inflater.decode(raw, read_limit):
                    yield piece
    if inflater is not None:
        inflater.end()


async def read_prefix(response: httpx2.Response, *, limit: int) -> tuple[bytearray, bool]:
    """At most the first ``limit`` decoded bytes of the body, and whether more followed;
    reading stops there, so at most ``limit`` bytes plus one piece are ever held.

    Raises:
        ProtocolError, httpx2.TransportError: as :func:`aiter_bounded`.
    """
    body = bytearray()
    pieces = aiter_bounded(response, read_limit=min(DEFAULT_READ_LIMIT, limit + 1))
    try:
        async for piece in pieces:
            room = limit - len(body)
            if len(piece) > room:
                body += piece[:room]
                return body, True
            body += piece
    finally:
        await pieces.aclose()
    return body, False


async def read_body(response: httpx2.Response, *, limit: int) -> bytes:
    """The whole decoded body of ``response``, refused once it passes ``limit`` bytes:
    until then memory holds at most ``limit`` plus one network read or decoded piece
    (and a copy of a body within the limit, as it is returned).

    For non-streaming answers and downloads (``fetch_image``).

    Raises:
        EventTooLargeError: the decoded body is longer than ``limit``.
        ProtocolError, httpx2.TransportError: as :func:`aiter_bounded`.
    """
    body, more = await read_prefix(response, limit=limit)
    if more:
        del body
        raise EventTooLargeError(limit=limit, size=limit + 1)
    return bytes(body)
