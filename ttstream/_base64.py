"""Base64 for images: one strict decoder, one encoder, two interchangeable backends.

ttstream's rule for an image's base64 (RFC 4648 section 4, the standard alphabet, padded,
no line breaks) is the one ``binascii.a2b_base64`` gives with a length check: the text's
length is a multiple of 4, every character is in the alphabet, and ``=`` appears only as
the padding of the last quantum. Non-zero bits under the padding (``QR==``) are accepted,
as binascii accepts them.

With ``pybase64`` installed (``pip install 'ttstream[speedups]'``), its SIMD decoder and
encoder are used; otherwise ``binascii``. Results and errors are identical: a text either
backend refuses is judged, and its error worded, by the binascii path alone, so the
message of a :class:`Base64Error` never depends on which backend is installed.
See ``docs/fast.md``.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

from ._exceptions import UnknownNameError

__all__ = [
    "ACCELERATED",
    "BACKENDS",
    "Base64Error",
    "Codec",
    "codec",
    "decode_on_arrival",
    "decoded_length",
    "set_backend",
]


class Base64Error(ValueError):
    """A text that is not canonical base64; ``str()`` says why."""


def decoded_length(b64: str | bytes) -> int:
    """The number of bytes canonical base64 ``b64`` decodes to, from its length and
    padding alone (no decoding)."""
    tail = b64[-2:]
    padding = (2 if tail in ("==", b"==") else 1) if tail[-1:] in ("=", b"=") else 0
    return len(b64) // 4 * 3 - padding


def _binascii_encode(data: Any) -> bytes:
    return binascii.b2a_base64(data, newline=False)


class Codec:
    """One backend: ``decode_run`` for aligned runs of the alphabet, ``decode`` and
    ``encode`` for whole texts.

    Attributes:
        name: ``"pybase64"`` or ``"binascii"``.
    """

    def __init__(
        self,
        name: str,
        decode: Callable[[Any], bytes],
        encode: Callable[[Any], bytes],
        encode_text: Callable[[Any], str] | None = None,
    ) -> None:
        self.name = name
        self._decode = decode
        self._encode = encode
        self._encode_text = encode_text or (lambda data: encode(data).decode("ascii"))

    def __repr__(self) -> str:
        return f"<base64 codec {self.name}>"

    def decode_run(self, run: bytes | bytearray | memoryview, *, last: bool) -> bytes | None:
        """The bytes of ``run``, a piece of base64 whose length is a multiple of 4;
        ``None`` when it is not canonical: a character outside the alphabet, padding
        anywhere but at the end of the ``last`` run, or (in the last run) non-zero bits
        under the padding, whose text would not come back by encoding the bytes.

        O(1) on top of the C decoder: a skipped or refused character always shows as an
        error or a shorter output than the length implies.
        """
        padding = 0
        if last and run[-1:] == b"=":
            padding = 2 if run[-2:-1] == b"=" else 1
            if _VALUES[run[-1 - padding]] & (0x0F if padding == 2 else 0x03):
                return None
        try:
            out = self._decode(run)
        except (binascii.Error, ValueError):
            return None
        return out if len(out) == len(run) // 4 * 3 - padding else None

    def decode(self, b64: str) -> bytes:
        """Decodes canonical base64 text.

        Raises:
            Base64Error: ``b64`` is not canonical base64 (the message names why).
        """
        if len(b64) % 4 == 0 and b64.isascii():
            try:
                out = self._decode(b64)
            except (binascii.Error, ValueError):
                pass
            else:
                if len(out) == decoded_length(b64):
                    return out
        # The reference judges: the same verdict and words for every backend.
        return _reference_decode(b64)

    def encode(self, data: bytes | memoryview) -> bytes:
        """The base64 of ``data`` as ASCII bytes (no line break)."""
        return self._encode(data)

    def encode_text(self, data: bytes) -> str:
        """The base64 of ``data`` as a str (with pybase64, written straight into the
        str: one allocation instead of two)."""
        return self._encode_text(data)


def _reference_decode(b64: str) -> bytes:
    """The binascii path, which alone words the errors."""
    if len(b64) % 4:
        raise Base64Error(f"length {len(b64)} is not a multiple of 4")
    try:
        image = binascii.a2b_base64(b64)
    except (binascii.Error, ValueError) as exc:
        raise Base64Error(str(exc)) from None
    if len(image) != decoded_length(b64):
        raise Base64Error("it holds characters outside the base64 alphabet")
    return image


_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_VALUES = bytes(_ALPHABET.index(b) if b in _ALPHABET else 0xFF for b in range(256))
BINASCII = Codec("binascii", binascii.a2b_base64, _binascii_encode)


def _pybase64() -> Codec | None:
    try:
        import pybase64
    except ImportError:
        return None

    def decode(data: Any) -> bytes:
        return pybase64.b64decode(data, validate=True)

    return Codec("pybase64", decode, pybase64.b64encode, pybase64.b64encode_as_string)


_FAST = _pybase64()
BACKENDS: dict[str, Codec] = {"binascii": BINASCII}
if _FAST is not None:
    BACKENDS["pybase64"] = _FAST
"""The backends importable here, by name."""
ACCELERATED = _FAST is not None
"""Whether pybase64 is installed: decoding eagerly then costs a few percent of a stream."""
_current = _FAST or BINASCII


def decode_on_arrival(*, relays_base64: bool) -> bool:
    """The decoder mode (``EventSource(decode_images=...)``) for a stream whose consumer
    forwards the base64 text (``relays_base64``, e.g. only :class:`~ttstream.sinks.SSERelay`
    reads it) or uses the image bytes: decode on arrival unless the consumer relays
    base64 and pybase64 is missing, where a decode plus a re-encode would cost 3 to 4
    times keeping the text (``docs/fast.md``, "Choosing the mode per stream")."""
    return ACCELERATED or not relays_base64


def codec() -> Codec:
    """The backend in use: pybase64 when installed, else binascii."""
    return _current


def set_backend(name: str) -> Codec:
    """Selects the backend by name (``"pybase64"`` or ``"binascii"``) and answers the
    previous one; for tests and benchmarks that compare the two in one process.

    Raises:
        UnknownNameError: that backend is not installed (a ``ValidationError``, also a
            ``KeyError``).
    """
    global _current
    if name not in BACKENDS:
        raise UnknownNameError("name", name, "one of " + ", ".join(map(repr, BACKENDS)))
    previous, _current = _current, BACKENDS[name]
    return previous
