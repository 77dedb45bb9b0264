"""ttstream: a streaming-first async client for the TTAPI and OpenAI-compatible Images API.

The public surface is re-exported here; ``ttstream.sse``, ``ttstream.events`` and
``ttstream.params`` are public modules for the protocol core (no I/O).
"""

from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    EventTooLargeError,
    IncompleteStreamError,
    MalformedEventError,
    StreamError,
    TTStreamError,
    ValidationError,
)
from .events import Completed, InputTokensDetails, PartialImage, Usage, parse_event
from .sse import ServerSentEvent, SSEDecoder

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Completed",
    "EventTooLargeError",
    "IncompleteStreamError",
    "InputTokensDetails",
    "MalformedEventError",
    "PartialImage",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamError",
    "TTStreamError",
    "Usage",
    "ValidationError",
    "__version__",
    "parse_event",
]
