"""ttstream: a streaming-first async client for the TTAPI and OpenAI-compatible Images API.

The public surface is re-exported here; ``ttstream.sse``, ``ttstream.events`` and
``ttstream.params`` are public modules for the protocol core (no I/O).

``import ttstream`` is cheap: the errors are imported with it, everything else (the
client and its HTTP stack, the sinks, the sync client) on first use of its name, e.g.
``ttstream.AsyncClient`` or ``from ttstream import AsyncClient`` (PEP 562). Optional
packages (aiohttp, Pillow, Starlette, coredis, rich) are imported only where they are
used. Type checkers see ordinary imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClaimLostError,
    ClosedError,
    ConflictError,
    DownloadRefusedError,
    EventTooLargeError,
    ImageDecodeError,
    ImageTooLargeError,
    IncompleteStreamError,
    InternalServerError,
    JournalError,
    MalformedEntryError,
    MalformedEventError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    RedisStreamError,
    SendTimeoutError,
    SinkError,
    StreamError,
    TTStreamError,
    UnknownNameError,
    UnprocessableEntityError,
    ValidationError,
)

if TYPE_CHECKING:
    from . import events, params, sinks, sse
    from ._azure import AsyncAzureClient, AzureClient
    from ._event_types import Event, StreamItem
    from ._eventsource import EventSource
    from ._reconnect import Reconnecting, ReconnectPolicy
    from ._responses import Response
    from ._responses_client import ResponseStream
    from ._sync import Client, SyncImageStream, SyncResponses
    from ._transport import http_client
    from ._version import VERSION as __version__
    from .batch import Batch, JobResult, SyncBatch
    from .client import AsyncClient
    from .events import Completed, InputTokensDetails, PartialImage, Usage, parse_event
    from .sse import Comment, ServerSentEvent, SSEDecoder
    from .stream import ImageStream

_LAZY = {
    "AsyncAzureClient": "_azure",
    "AsyncClient": "client",
    "AzureClient": "_azure",
    "Batch": "batch",
    "Client": "_sync",
    "Comment": "sse",
    "Completed": "events",
    "Event": "_event_types",
    "EventSource": "_eventsource",
    "ImageStream": "stream",
    "InputTokensDetails": "events",
    "JobResult": "batch",
    "PartialImage": "events",
    "ReconnectPolicy": "_reconnect",
    "Reconnecting": "_reconnect",
    "Response": "_responses",
    "ResponseStream": "_responses_client",
    "SSEDecoder": "sse",
    "ServerSentEvent": "sse",
    "StreamItem": "_event_types",
    "SyncBatch": "batch",
    "SyncImageStream": "_sync",
    "SyncResponses": "_sync",
    "Usage": "events",
    "http_client": "_transport",
    "parse_event": "events",
    "__version__": "_version",  # read from the package's metadata, once
}
"""Each lazily exported name and the module (under ``ttstream``) that defines it."""
_SUBMODULES = frozenset({"events", "params", "sinks", "sse"})

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncAzureClient",
    "AsyncClient",
    "AuthenticationError",
    "AzureClient",
    "BadRequestError",
    "Batch",
    "ClaimLostError",
    "Client",
    "ClosedError",
    "Comment",
    "Completed",
    "ConflictError",
    "DownloadRefusedError",
    "Event",
    "EventSource",
    "EventTooLargeError",
    "ImageDecodeError",
    "ImageStream",
    "ImageTooLargeError",
    "IncompleteStreamError",
    "InputTokensDetails",
    "InternalServerError",
    "JobResult",
    "JournalError",
    "MalformedEntryError",
    "MalformedEventError",
    "NotFoundError",
    "PartialImage",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitError",
    "ReconnectPolicy",
    "Reconnecting",
    "RedisStreamError",
    "Response",
    "ResponseStream",
    "SSEDecoder",
    "SendTimeoutError",
    "ServerSentEvent",
    "SinkError",
    "StreamError",
    "StreamItem",
    "SyncBatch",
    "SyncImageStream",
    "SyncResponses",
    "TTStreamError",
    "UnknownNameError",
    "UnprocessableEntityError",
    "Usage",
    "ValidationError",
    "__version__",
    "events",
    "http_client",
    "params",
    "parse_event",
    "sinks",
    "sse",
]


def __getattr__(name: str) -> Any:
    """A lazily exported name (or public submodule), imported on first use.

    Not kept in this module's namespace: each use reads the defining module as
    ``sys.modules`` holds it now, so a test harness that unloads and reloads modules
    (pytest's ``pytester``) never gets a class of an earlier load."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, "VERSION" if name == "__version__" else name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
