"""Interpreters: the meaning of one stream's events, with no I/O.

An :class:`~ttstream.ImageStream` reads ``ServerSentEvent`` objects from an
:class:`~ttstream.EventSource` and hands each to its interpreter, which turns it into
a typed image event (or nothing) and says when the stream is finished. One interpreter
per protocol: :class:`ImagesInterpreter` for the Images API's ``image_generation.*`` /
``image_edit.*`` events (docs/sse.md, "The Images API stream").
"""

from __future__ import annotations

from typing import Protocol

from .events import Completed, PartialImage, parse_event
from .sse import ServerSentEvent

__all__ = ["ImagesInterpreter", "Interpreter"]


class Interpreter(Protocol):
    """What an :class:`~ttstream.ImageStream` needs of a protocol."""

    def handle(self, sse: ServerSentEvent) -> PartialImage | Completed | None:
        """The image event ``sse`` carries, or ``None`` (an event with no image).

        Raises:
            StreamError: an error event, or an event that says the stream failed.
            MalformedEventError: an event that breaks the protocol.
        """
        ...

    @property
    def done(self) -> bool:
        """Whether the stream is finished: the stream then ends and closes its response,
        whatever the server sends after."""
        ...

    def incomplete(self) -> str | None:
        """Why an end of the stream now would be a failure, worded to follow "the body
        ended" (``"after 0 of 1 completed image(s)"``), or ``None`` when it would not."""
        ...

    def restart(self) -> None:
        """The request is being sent again from the start (a new generation): every
        image is expected again."""
        ...


class ImagesInterpreter:
    """The Images API stream: previews, then ``expected_images`` completed images.

    A completed event beyond the expected ones never arrives at the consumer: the
    stream is done at the last expected one.
    """

    def __init__(self, *, expected_images: int) -> None:
        self.expected_images = expected_images
        self.completed = 0

    def handle(self, sse: ServerSentEvent) -> PartialImage | Completed | None:
        if self.done:
            return None
        event = parse_event(sse)
        if isinstance(event, Completed):
            self.completed += 1
        return event

    @property
    def done(self) -> bool:
        return self.completed >= self.expected_images

    def incomplete(self) -> str | None:
        if self.done:
            return None
        return f"after {self.completed} of {self.expected_images} completed image(s)"

    def restart(self) -> None:
        self.completed = 0
