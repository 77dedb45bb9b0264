"""Sinks: where the events of a stream go (files, websockets, browsers, pipelines).

``await pump(stream, *sinks, policy="block")`` feeds one stream to many sinks. A live
preview in a few lines::

    async with ttstream.AsyncClient() as client:
        stream = client.generate("a lighthouse", partial_images=3)
        await ttstream.sinks.pump(stream, ttstream.sinks.FileSink("out"))

Across processes, ``RedisStreamSink`` writes a generation to a Redis stream and
``RedisRelay`` serves it to browsers from any worker (``pip install 'ttstream[redis]'``).
"""

from .._exceptions import ClaimLostError, MalformedEntryError, RedisStreamError, SinkError
from ._base import Sink
from ._callback import CallbackSink, ObjectStreamSink, PillowSink, to_pil
from ._file import FileSink
from ._pump import Policy, pump
from ._redis import RedisStreamSink
from ._redis_relay import RedisRelay
from ._relay import SSERelay
from ._sse_frames import BROWSER_MODULE
from ._viewers import sign_viewer_token, verify_viewer_token
from ._websocket import MAX_FRAME_BYTES, WebSocketSink, serve_generations

__all__ = [
    "BROWSER_MODULE",
    "MAX_FRAME_BYTES",
    "CallbackSink",
    "ClaimLostError",
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
