"""The entry codec: a stream item as the fields of one Redis stream entry, and back.

Every entry has a ``type`` field and the :data:`MARKER` field (its generation's id);
images carry the image file as the binary ``image`` field, and the other metadata are
fields of their own (numbers in decimal, ``usage`` and ``extra`` as JSON), every text
through the one redaction (``ttstream._secrets``). The last entry of a generation is a
:class:`Terminal`: ``type`` ``end`` (``images``: how many final images), or ``error``
(``error``: the exception's type name, ``message``: its message, shortened and
redacted). The layout is specified in ``docs/redis.md`` ("Entries"); this module does no
I/O.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from .._browser.items import public_message
from .._event_types import StreamItem
from .._exceptions import short_repr
from .._json import loads
from .._reconnect import Reconnecting
from .._secrets import redact
from ..events import Completed, InlineImage, InputTokensDetails, PartialImage, Usage, image_of
from ._errors import MalformedEntryError

__all__ = [
    "MARKER",
    "EntryId",
    "Terminal",
    "decode_entry",
    "encode_item",
    "encode_terminal",
    "format_id",
    "generation_of",
    "is_terminal",
    "new_generation",
    "parse_id",
]

EntryId = tuple[int, int]
"""A Redis stream entry id ``<milliseconds>-<sequence>`` as a pair of ints (ordered)."""

MARKER = "ttstream"
"""The field every entry ttstream writes carries: the id of its generation (a random
token, the claim's under ``start_once``). A relay serves no entry without it, and a
``Last-Event-ID`` of another generation restarts a viewer (``docs/redis.md``)."""

_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX_ID_PART = 2**64 - 1  # each part of a stream entry id is an unsigned 64-bit integer


def parse_id(text: str | bytes) -> EntryId | None:
    """``"1700000000000-3"`` as ``(1700000000000, 3)``; ``None`` for anything else,
    including parts past 64 bits, which Redis never issues and refuses in commands."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    match = _ID.fullmatch(text.strip())
    if match is None:
        return None
    entry_id = (int(match[1]), int(match[2]))
    return entry_id if max(entry_id) <= _MAX_ID_PART else None


def format_id(entry_id: EntryId) -> str:
    """``(1700000000000, 3)`` as ``"1700000000000-3"``."""
    return f"{entry_id[0]}-{entry_id[1]}"


# The entry codec. Field values are bytes on the wire; these are the fields that are not
# plain text, by how they parse.
_IMAGE_TEXT = ("size", "quality", "background", "output_format")
_COMPLETED_TEXT = ("url", "revised_prompt", "safety_identifier")


@attrs.frozen(kw_only=True)
class Terminal:
    """The last entry of a generation: ``outcome`` ``"end"`` (``images`` final images
    were written) or ``"error"`` (``error``: the exception's type name, ``message``)."""

    outcome: Literal["end", "error"]
    images: int = 0
    error: str = ""
    message: str = ""

    def payload(self) -> tuple[str, dict[str, Any]]:
        """The SSE event name and JSON object a relay sends for it (``SSERelay``'s end
        and error events: ``{"type": "end", "images": n}``, ``{"type": "error",
        "message": ...}``)."""
        if self.outcome == "end":
            return "end", {"type": "end", "images": self.images}
        return "error", {"type": "error", "message": self.message}


def encode_item(item: StreamItem) -> dict[str, str | bytes]:
    """The fields of the entry for ``item`` (``docs/redis.md``, "Entries")."""
    if isinstance(item, Reconnecting):
        return _redacted(
            {
                "type": "reconnecting",
                "attempt": str(item.attempt),
                "delay": repr(float(item.delay)),
                "last_event_id": item.last_event_id,
                "regenerating": "1" if item.regenerating else "0",
                "reason": item.reason,
            }
        )
    fields: dict[str, str | bytes] = {
        "type": "partial_image" if isinstance(item, PartialImage) else "completed",
        "operation": item.operation,
    }
    if isinstance(item, PartialImage):
        fields["index"] = str(item.index)
    names = _IMAGE_TEXT + (_COMPLETED_TEXT if isinstance(item, Completed) else ())
    for name in (*names, "created_at", "sequence_number"):
        value = getattr(item, name)
        if value is not None:
            fields[name] = str(value)
    if isinstance(item, Completed) and item.usage is not None:
        fields["usage"] = json.dumps(attrs.asdict(item.usage), separators=(",", ":"))
    if item.extra:
        fields["extra"] = json.dumps(dict(item.extra), separators=(",", ":"))
    if image_of(item) is not None:  # not item.b64_json: that would encode the image
        fields["image"] = item.image_bytes
    return _redacted(fields)


def _redacted(fields: dict[str, str | bytes]) -> dict[str, str | bytes]:
    """Every text field through the one redaction (``ttstream._secrets``): what a server
    echoed (a key in ``extra``, ``revised_prompt``, a ``Last-Event-ID``, a transport's
    error text) is stored without it (:func:`_stored`). The image's bytes are left as
    they are."""
    return {name: _stored(v) if isinstance(v, str) else v for name, v in fields.items()}


_TEXT_ERRORS = "surrogatepass"
"""How text fields are decoded, and encoded when they must be: UTF-8, except that a
lone surrogate (JSON's ``"\\ud800"`` decodes to one, and a server may send it in any
field) is kept as its three bytes, so the round trip stays exact and a relay's frame is
SSERelay's (``strict_json`` escapes it)."""


def _stored(text: str) -> str | bytes:
    """``text`` redacted, as a field value: the str itself, or its bytes
    (:data:`_TEXT_ERRORS`) when it holds a lone surrogate, which the client cannot
    encode (the write would fail, and every entry queued after it)."""
    text = redact(text)
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", _TEXT_ERRORS)
    return text


def encode_terminal(terminal: Terminal) -> dict[str, str | bytes]:
    """The fields of a terminal entry."""
    if terminal.outcome == "end":
        return {"type": "end", "images": str(terminal.images)}
    return _redacted({"type": "error", "error": terminal.error, "message": terminal.message})


class _Entry:
    """Typed access to the fields of one entry; errors name the entry and the field."""

    def __init__(self, entry_id: str, fields: Mapping[Any, Any]) -> None:
        self.entry_id = entry_id
        self.fields: dict[str, bytes] = {}
        for name, value in fields.items():
            if not isinstance(name, bytes) or not isinstance(value, bytes):
                raise MalformedEntryError(
                    f"entry {entry_id}: fields must be bytes; the coredis client must be "
                    "made with decode_responses=False"
                )
            self.fields[name.decode("latin-1")] = value

    def malformed(self, name: str, reason: str) -> MalformedEntryError:
        shown = short_repr(self.fields.get(name), 60)
        return MalformedEntryError(f"entry {self.entry_id}: field {name!r} {reason}, got {shown}")

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.fields.get(name)
        if value is None:
            if required:
                raise self.malformed(name, "is required")
            return None
        try:
            return value.decode("utf-8", _TEXT_ERRORS)
        except UnicodeDecodeError:
            raise self.malformed(name, "is not UTF-8") from None

    def number(self, name: str, *, required: bool = False) -> int | None:
        text = self.text(name, required=required)
        if text is None:
            return None
        if not re.fullmatch(r"-?[0-9]{1,30}", text):
            raise self.malformed(name, "is not a decimal integer")
        return int(text)

    def json(self, name: str) -> dict[str, Any] | None:
        text = self.text(name)
        if text is None:
            return None
        try:
            value = loads(text)
        except ValueError:
            raise self.malformed(name, "is not JSON (or is nested too deeply)") from None
        if not isinstance(value, dict):
            raise self.malformed(name, "is not a JSON object")
        return value


def _usage(entry: _Entry) -> Usage | None:
    usage = entry.json("usage")
    if usage is None:
        return None
    try:
        details = usage.pop("input_tokens_details", None)
        return Usage(
            **usage,
            input_tokens_details=None if details is None else InputTokensDetails(**details),
        )
    except TypeError:
        raise entry.malformed("usage", "does not hold Usage's fields") from None


def decode_entry(entry_id: str, fields: Mapping[Any, Any]) -> StreamItem | Terminal:
    """The item (or terminal) an entry written by :class:`~ttstream.redis.RedisStreamSink`
    stands for (the layout: ``docs/redis.md``, "Entries").

    Images come back with ``b64_json`` re-encoded from the ``image`` field; a terminal
    ``error``'s ``message`` through ``ttstream._browser.items.public_message`` (redacted,
    at most 500 characters), whoever wrote the entry.

    Raises:
        MalformedEntryError: the entry is not one of ours (see the class).
    """
    entry = _Entry(entry_id, fields)
    kind = entry.text("type", required=True)
    if kind == "end":
        return Terminal(outcome="end", images=entry.number("images", required=True) or 0)
    if kind == "error":
        # What browsers are told: whoever wrote the entry, through the one rule of
        # RedisStreamSink.fail (redacted, at most MAX_MESSAGE_CHARS).
        return Terminal(
            outcome="error",
            error=entry.text("error") or "",
            message=public_message(entry.text("message") or "the generation failed"),
        )
    if kind == "reconnecting":
        delay = entry.text("delay", required=True) or ""
        try:
            seconds = float(delay)
        except ValueError:
            raise entry.malformed("delay", "is not a number") from None
        return Reconnecting(
            attempt=entry.number("attempt", required=True) or 0,
            delay=seconds,
            last_event_id=entry.text("last_event_id") or "",
            regenerating=entry.text("regenerating") == "1",
            reason=entry.text("reason") or "",
        )
    if kind not in ("partial_image", "completed"):
        raise entry.malformed("type", "is not a ttstream entry type")
    image = entry.fields.get("image")
    common: dict[str, Any] = {
        # The bytes as they are: no base64 text is made unless someone asks for it (the
        # relay's frame encodes it once, spliced).
        "b64_json": None if image is None else InlineImage(data=image),
        "operation": entry.text("operation", required=True),
        "created_at": entry.number("created_at"),
        "sequence_number": entry.number("sequence_number"),
        "extra": entry.json("extra") or {},
        **{name: entry.text(name) for name in _IMAGE_TEXT},
    }
    if kind == "partial_image":
        return PartialImage(index=entry.number("index", required=True) or 0, **common)
    return Completed(
        usage=_usage(entry),
        url=entry.text("url"),
        revised_prompt=entry.text("revised_prompt"),
        safety_identifier=entry.text("safety_identifier"),
        **common,
    )


def generation_of(fields: Mapping[Any, Any]) -> bytes | None:
    """The :data:`MARKER` field of an entry's raw fields: its generation's id; ``None``
    for an entry ttstream did not write."""
    value = fields.get(MARKER.encode())
    return value if isinstance(value, bytes) and value else None


def new_generation() -> str:
    """A fresh generation id (16 hex digits)."""
    return secrets.token_hex(8)


def is_terminal(fields: Mapping[Any, Any]) -> bool:
    """Whether the raw fields of an entry are those of a terminal entry."""
    kind = fields.get(b"type", fields.get("type"))
    return kind in (b"end", b"error", "end", "error")
