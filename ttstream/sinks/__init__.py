"""Sinks: where the events of a stream go (files, websockets, browsers, pipelines).

``await pump(stream, *sinks, policy="block")`` feeds one stream to many sinks. A live
preview in a few lines::

    async with ttstream.AsyncClient() as client:
        stream = client.generate("a lighthouse", partial_images=3)
        await ttstream.sinks.pump(stream, ttstream.sinks.FileSink("out"))
"""

from ._base import Sink
from ._callback import CallbackSink, ObjectStreamSink, PillowSink, to_pil
from ._file import FileSink
from ._pump import Policy, SinkError, pump
from ._relay import SSERelay
from ._websocket import WebSocketSink

__all__ = [
    "CallbackSink",
    "FileSink",
    "ObjectStreamSink",
    "PillowSink",
    "Policy",
    "SSERelay",
    "Sink",
    "SinkError",
    "WebSocketSink",
    "pump",
    "to_pil",
]
