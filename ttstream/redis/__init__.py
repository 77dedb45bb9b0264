"""Everything Redis, in one place: a generation written to a Redis stream, served to
browsers from any worker, started once per job (``pip install 'ttstream[redis]'``).

- :class:`RedisStreamSink` appends every item of a stream to a Redis stream;
- :class:`RedisRelay` serves that stream to browsers as Server-Sent Events, from any
  worker, with resumption;
- :func:`start_once` runs one generation per job across workers, fenced by its claim
  (:func:`claim_key` names the claim);
- the entry codec: :func:`decode_entry` (an entry back into the item it stands for),
  :func:`encode_item`, :func:`encode_terminal`, :class:`Terminal`, :data:`MARKER`,
  :func:`parse_id` and :func:`format_id` (entry ids);
- the errors: :class:`RedisStreamError` (a command failed or timed out),
  :class:`ClaimLostError` (a fenced write refused), :class:`MalformedEntryError`.

The keys, the entry layout, fencing and outages are described in ``docs/redis.md``.
The package's modules: ``_sink`` (the sink), ``_relay`` (the relay), ``_claims``
(``start_once``), ``_codec`` (entries, no I/O), ``_commands`` (bounded and fenced Redis
commands), ``_errors``. ``ttstream.sinks.RedisStreamSink``, ``ttstream.sinks.RedisRelay``
(and the errors there) and ``ttstream.relay.start_once`` are the same objects.
``coredis`` is imported only when a Redis command runs. Each name is imported on first
use, so ``ttstream.redis._codec`` (no I/O) loads neither anyio nor coredis. This package
imports nothing of :mod:`ttstream.sinks` (``docs/design.md``, "Layers").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._claims import start_once
    from ._codec import (
        MARKER,
        Terminal,
        decode_entry,
        encode_item,
        encode_terminal,
        format_id,
        parse_id,
    )
    from ._commands import claim_key
    from ._errors import ClaimLostError, MalformedEntryError, RedisStreamError
    from ._relay import RedisRelay
    from ._sink import RedisStreamSink

_LAZY = {
    "MARKER": "_codec",
    "ClaimLostError": "_errors",
    "MalformedEntryError": "_errors",
    "RedisRelay": "_relay",
    "RedisStreamError": "_errors",
    "RedisStreamSink": "_sink",
    "Terminal": "_codec",
    "claim_key": "_commands",
    "decode_entry": "_codec",
    "encode_item": "_codec",
    "encode_terminal": "_codec",
    "format_id": "_codec",
    "parse_id": "_codec",
    "start_once": "_claims",
}
"""Each exported name and the module (under ``ttstream.redis``) that defines it."""

__all__ = [
    "MARKER",
    "ClaimLostError",
    "MalformedEntryError",
    "RedisRelay",
    "RedisStreamError",
    "RedisStreamSink",
    "Terminal",
    "claim_key",
    "decode_entry",
    "encode_item",
    "encode_terminal",
    "format_id",
    "parse_id",
    "start_once",
]


def __getattr__(name: str) -> Any:
    """An exported name, imported from its module on first use (not kept here: each use
    reads the module as ``sys.modules`` holds it now)."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
