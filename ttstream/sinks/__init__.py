"""Sinks: where the events of a stream go (files, websockets, browsers, pipelines).

``await pump(stream, *sinks, policy="block")`` feeds one stream to many sinks. A live
preview in a few lines::

    async with ttstream.AsyncClient() as client:
        stream = client.generate("a lighthouse", partial_images=3)
        await ttstream.sinks.pump(stream, ttstream.sinks.FileSink("out"))

Across processes, ``RedisStreamSink`` writes a generation to a Redis stream and
``RedisRelay`` serves it to browsers from any worker (``pip install 'ttstream[redis]'``);
both live in :mod:`ttstream.redis` and are re-exported here, with ``RedisStreamError``,
``ClaimLostError`` and ``MalformedEntryError``.
"""

from .._browser.frames import BROWSER_MODULE
from .._browser.viewers import sign_viewer_token, verify_viewer_token
from .._sink import Base64ForwardingSink, FailureAwareSink, Sink
from ..redis import (
    ClaimLostError,
    MalformedEntryError,
    RedisRelay,
    RedisStreamError,
    RedisStreamSink,
)
from ._callback import CallbackSink, ObjectStreamSink, PillowSink, to_pil
from ._file import FileSink
from ._pump import Policy, SinkError, pump
from ._relay import SSERelay
from ._websocket import MAX_FRAME_BYTES, WebSocketSink, serve_generations

__all__ = [
    "BROWSER_MODULE",
    "MAX_FRAME_BYTES",
    "Base64ForwardingSink",
    "CallbackSink",
    "ClaimLostError",
    "FailureAwareSink",
    "FileSink",
    "MalformedEntryError",
    "ObjectStreamSink",
    "PillowSink",
    "Policy",
    "RedisRelay",
    "RedisStreamError",
    "RedisStreamSink",
    "SSERelay",
    "Sink",
    "SinkError",
    "WebSocketSink",
    "pump",
    "serve_generations",
    "sign_viewer_token",
    "to_pil",
    "verify_viewer_token",
]
