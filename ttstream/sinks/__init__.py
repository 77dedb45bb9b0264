"""Sinks: where the events of a stream go (files, websockets, browsers, pipelines)."""

from ._base import Sink
from ._file import FileSink

__all__ = ["FileSink", "Sink"]
