"""ttstream: a streaming-first async client for the TTAPI and OpenAI-compatible Images API.

The public surface is re-exported here; ``ttstream.sse``, ``ttstream.events`` and
``ttstream.params`` are public modules for the protocol core (no I/O).
"""

from . import sinks
from ._eventsource import EventSource
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DownloadRefusedError,
    EventTooLargeError,
    ImageDecodeError,
    ImageTooLargeError,
    IncompleteStreamError,
    JournalError,
    MalformedEventError,
    ProtocolError,
    StreamError,
    TTStreamError,
    ValidationError,
)
from ._reconnect import Reconnecting, ReconnectPolicy
from ._responses import Response
from ._responses_client import ResponseStream
from ._sync import Client, SyncImageStream
from .batch import Batch, JobResult, SyncBatch
from .client import AsyncClient
from .events import Completed, InputTokensDetails, PartialImage, Usage, parse_event
from .sinks import SinkError
from .sse import Comment, ServerSentEvent, SSEDecoder
from .stream import Event, ImageStream, StreamItem

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "Batch",
    "Client",
    "Comment",
    "Completed",
    "DownloadRefusedError",
    "Event",
    "EventSource",
    "EventTooLargeError",
    "ImageDecodeError",
    "ImageStream",
    "ImageTooLargeError",
    "IncompleteStreamError",
    "InputTokensDetails",
    "JobResult",
    "JournalError",
    "MalformedEventError",
    "PartialImage",
    "ProtocolError",
    "ReconnectPolicy",
    "Reconnecting",
    "Response",
    "ResponseStream",
    "SSEDecoder",
    "ServerSentEvent",
    "SinkError",
    "StreamError",
    "StreamItem",
    "SyncBatch",
    "SyncImageStream",
    "TTStreamError",
    "Usage",
    "ValidationError",
    "__version__",
    "parse_event",
    "sinks",
]
