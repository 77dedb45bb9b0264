"""ttstream: a streaming-first async client for the TTAPI and OpenAI-compatible Images API.

The public surface is re-exported here; ``ttstream.sse``, ``ttstream.events`` and
``ttstream.params`` are public modules for the protocol core (no I/O).
"""

from . import sinks
from ._azure import AsyncAzureClient, AzureClient
from ._eventsource import EventSource
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
    SinkError,
    StreamError,
    TTStreamError,
    UnknownNameError,
    UnprocessableEntityError,
    ValidationError,
)
from ._reconnect import Reconnecting, ReconnectPolicy
from ._responses import Response
from ._responses_client import ResponseStream
from ._sync import Client, SyncImageStream
from .batch import Batch, JobResult, SyncBatch
from .client import AsyncClient
from .events import Completed, InputTokensDetails, PartialImage, Usage, parse_event
from .sse import Comment, ServerSentEvent, SSEDecoder
from .stream import Event, ImageStream, StreamItem

__version__ = "0.1.0"

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
    "ServerSentEvent",
    "SinkError",
    "StreamError",
    "StreamItem",
    "SyncBatch",
    "SyncImageStream",
    "TTStreamError",
    "UnknownNameError",
    "UnprocessableEntityError",
    "Usage",
    "ValidationError",
    "__version__",
    "parse_event",
    "sinks",
]
