"""``client.responses``: the Responses API image tool as an :class:`~ttstream.ImageStream`.

``stream()`` sends ``POST {base_url}/responses`` with ``stream: true``; ``resume()`` reads
an existing background response again with ``GET {base_url}/responses/{id}?stream=true
&starting_after=N``. Both give the same :class:`~ttstream.PartialImage` and
:class:`~ttstream.Completed` events as ``generate()`` (``operation="response"``), read
by :class:`~ttstream._responses.ResponsesInterpreter` (docs/responses.md).

Resuming without a second bill: a background response whose stream breaks (a cut, a
clean end too early, a read timeout) is read again from after the last
``sequence_number`` by that ``GET``, under the client's
:class:`~ttstream.ReconnectPolicy` (``max_attempts``, ``budget``, backoff), with a
:class:`~ttstream.Reconnecting` notice (``regenerating=False``, ``last_event_id`` the
sequence number). The ``POST`` is never sent twice. A stream that is not background
cannot be resumed: a cut is :class:`~ttstream.IncompleteStreamError` as for the Images API.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from . import params as _params
from ._eventsource import EventSource, SourceItem
from ._exceptions import APIConnectionError, ValidationError
from ._reconnect import Reconnecting, ReconnectPolicy
from ._request import json_body
from ._responses import Response, ResponsesInterpreter
from .stream import ImageStream

if TYPE_CHECKING:
    from .client import AsyncClient

__all__ = ["ResponseStream", "Responses"]

_NO_RECONNECT = ReconnectPolicy(max_attempts=0)  # the POST is never sent twice
_IMAGE_TOOL = {"type": "image_generation"}

OpenSource = Callable[[bool], EventSource]
"""Opens one connection: the first request (``False``), or a resume (``True``)."""


class ResponseStream(ImageStream):
    """An :class:`~ttstream.ImageStream` of a Responses API stream: the same events, and
    after the end :attr:`response`, the final response without images.

    ``response_id`` and ``last_sequence_number`` are what
    ``client.responses.resume(response_id, starting_after=last_sequence_number)`` needs
    to go on in another process.
    """

    def __init__(
        self, source: _ResumingSource, *, max_body_bytes: int, deadline: float | None
    ) -> None:
        async def start() -> EventSource:
            return source

        super().__init__(
            start,
            source.interpreter,
            operation="response",
            max_body_bytes=max_body_bytes,
            deadline=deadline,
        )
        self._responses = source.interpreter

    @property
    def response(self) -> Response | None:
        """The final response (id, status, output text, usage, output items without
        images) once ``response.completed`` arrived, else ``None``."""
        return self._responses.response

    @property
    def response_id(self) -> str | None:
        """The response's id (``resp_...``) once its first event arrived."""
        return self._responses.response_id

    @property
    def last_sequence_number(self) -> int | None:
        """The ``sequence_number`` of the last event read."""
        return self._responses.last_sequence_number


class _ResumingSource(EventSource):
    """An :class:`EventSource` whose reconnection is a ``GET ...&starting_after=N``.

    It delegates each connection to an inner :class:`EventSource` that never reconnects
    itself (its reconnection would send the ``POST`` again: a new generation), and when
    one breaks before the response completed, opens the next as a resume. It is an
    ``EventSource`` for :class:`~ttstream.ImageStream`; the base class's own state is not
    used (``EventSource.__init__`` is not called), only its interface.
    """

    def __init__(
        self,
        open_source: OpenSource,
        interpreter: ResponsesInterpreter,
        *,
        policy: ReconnectPolicy,
        resumable: bool,
        resuming: bool = False,
    ) -> None:
        self.interpreter = interpreter
        self._open_source = open_source
        self._resume_policy = policy
        self._resumable = resumable
        self._resuming = resuming  # the next connection is a resume
        self._inner: EventSource | None = None
        self._next_delay: float | None = None
        self._resumes = 0
        self._broke_at: float | None = None
        self._ended = False
        self.connections = 0
        self.request_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"<ResponsesSource response_id={self.interpreter.response_id!r} "
            f"last_sequence_number={self.interpreter.last_sequence_number!r}>"
        )

    @property
    def last_event_id(self) -> str:
        """The ``starting_after`` of the next resume: the last ``sequence_number`` read."""
        last = self.interpreter.last_sequence_number
        return "" if last is None else str(last)

    @property
    def retry(self) -> int | None:
        return None  # the Responses API sends no retry field

    @property
    def deadline_at(self) -> float:
        return math.inf  # the ImageStream's deadline bounds the whole stream

    async def __aenter__(self) -> _ResumingSource:
        await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def restart(self) -> None:
        """Drops the connection at the next read and resumes after the last event."""
        self._next_delay = 0.0

    async def aclose(self) -> None:
        self._ended = True
        await self._drop_inner()

    async def _drop_inner(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.aclose()

    async def _connect(self) -> None:
        if self._next_delay is not None:
            delay, self._next_delay = self._next_delay, None
            await self._drop_inner()
            await anyio.sleep(delay)
        inner = self._open_source(self._resuming)
        self._resuming = True  # every later connection resumes
        self._inner = inner
        await inner.__aenter__()
        self.connections += inner.connections
        self.request_id = inner.request_id

    async def __anext__(self) -> SourceItem:
        while True:
            if self._ended:
                raise StopAsyncIteration
            if self._inner is None or self._next_delay is not None:
                await self._connect()
            assert self._inner is not None
            error: APIConnectionError | None = None
            try:
                return await self._inner.__anext__()
            except StopAsyncIteration:
                reason = "the body ended"
            except APIConnectionError as exc:  # a cut or a read timeout
                reason, error = f"the connection broke ({exc})", exc
            notice = self._resume_plan(reason)
            if notice is not None:
                return notice
            if error is not None:
                raise error
            raise StopAsyncIteration

    def _resume_plan(self, reason: str) -> Reconnecting | None:
        """The resume after a break, or ``None`` when none is allowed or needed."""
        interpreter = self.interpreter
        if (
            not self._resumable
            or interpreter.response_id is None
            or interpreter.incomplete() is None
        ):
            return None
        now = anyio.current_time()
        self._broke_at = self._broke_at or now
        policy = self._resume_policy
        if self._resumes >= policy.max_attempts or now - self._broke_at > policy.budget:
            return None
        delay = policy.backoff(self._resumes, None)
        self._resumes += 1
        self._next_delay = delay
        return Reconnecting(
            attempt=self._resumes,
            delay=delay,
            last_event_id=self.last_event_id,
            regenerating=False,
            reason=f"{reason}: {interpreter.incomplete()}",
        )


class Responses:
    """``client.responses``: the Responses API image tool (docs/responses.md)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<Responses of {self._client!r}>"

    def stream(
        self,
        *,
        model: str,
        input: Any,
        tools: Sequence[Mapping[str, Any]] | None = None,
        background: bool = False,
        deadline: float | None = None,
        reconnect: ReconnectPolicy | None = None,
        **params: Any,
    ) -> ResponseStream:
        """Prepares ``POST {base_url}/responses`` with ``stream: true``; returns its
        :class:`ResponseStream`, which sends the request when entered or first iterated.

        ``model`` is the text model (e.g. ``"gpt-5"``), ``input`` a string or the API's
        input items; ``tools`` defaults to ``[{"type": "image_generation"}]``, with the
        tool's options (``partial_images``, ``size``, ``quality``, ``output_format``,
        ``model``...) as the API names them; ``params`` are other body fields
        (``instructions``, ``previous_response_id``...). With ``background=True`` a
        broken stream resumes after its last event, without a new generation.

        Raises:
            ValidationError: at once, for an image tool option its image model does not
                take (:func:`ttstream.params.validate_tool`), or a body field ttstream
                sets itself (``stream``).
        """
        if "stream" in params:
            raise ValidationError("stream", params["stream"], "omitted (always True here)")
        chosen = [dict(tool) for tool in tools] if tools is not None else [dict(_IMAGE_TOOL)]
        for tool in chosen:
            if tool.get("type") == _IMAGE_TOOL["type"]:
                _params.validate_tool(tool)
        body = {"model": model, "input": input, "tools": chosen, **params, "stream": True}
        if background:
            body["background"] = True
        content = json_body(body)
        interpreter = ResponsesInterpreter()

        def open_source(resume: bool) -> EventSource:
            if resume:
                return self._resume_source(interpreter)
            return self._source("POST", f"{self._client.base_url}/responses", content)

        return self._stream(open_source, interpreter, background, deadline, reconnect)

    def resume(
        self,
        response_id: str,
        *,
        starting_after: int | None = None,
        deadline: float | None = None,
        reconnect: ReconnectPolicy | None = None,
    ) -> ResponseStream:
        """Prepares ``GET {base_url}/responses/{response_id}?stream=true&starting_after=N``:
        the events of a background response after ``starting_after`` (all of them when
        ``None``), e.g. from a process that restarted, with no new generation. A break
        resumes again, as for :meth:`stream`.

        Raises:
            ValidationError: ``response_id`` is empty or ``starting_after`` below -1.
        """
        if not isinstance(response_id, str) or not response_id:
            raise ValidationError("response_id", response_id, "a response id such as 'resp_...'")
        if starting_after is not None and (
            not isinstance(starting_after, int) or starting_after < -1
        ):
            raise ValidationError("starting_after", starting_after, "an int >= -1 or None")
        interpreter = ResponsesInterpreter(response_id=response_id, starting_after=starting_after)

        def open_source(resume: bool) -> EventSource:
            return self._resume_source(interpreter)

        return self._stream(open_source, interpreter, True, deadline, reconnect)

    def _stream(
        self,
        open_source: OpenSource,
        interpreter: ResponsesInterpreter,
        resumable: bool,
        deadline: float | None,
        reconnect: ReconnectPolicy | None,
    ) -> ResponseStream:
        client = self._client
        source = _ResumingSource(
            open_source, interpreter, policy=reconnect or client.reconnect, resumable=resumable
        )
        return ResponseStream(
            source,
            max_body_bytes=client.max_event_bytes,
            deadline=client.deadline if deadline is None else deadline,
        )

    def _resume_source(self, interpreter: ResponsesInterpreter) -> EventSource:
        query = {"stream": "true"}
        if interpreter.last_sequence_number is not None:
            query["starting_after"] = str(interpreter.last_sequence_number)
        response_id = urllib.parse.quote(str(interpreter.response_id), safe="")
        url = f"{self._client.base_url}/responses/{response_id}?{urllib.parse.urlencode(query)}"
        return self._source("GET", url, None)

    def _source(self, method: str, url: str, content: bytes | None) -> EventSource:
        from .client import _USER_AGENT  # here: client.py imports this module

        client = self._client
        headers = {**client._auth_headers, "User-Agent": _USER_AGENT}
        if content is not None:
            headers["Content-Type"] = "application/json"
        return EventSource(
            client._http,
            method,
            url,
            headers=headers,
            content=content,
            reconnect=_NO_RECONNECT,
            max_event_bytes=client.max_event_bytes,
            max_retries=client.max_retries,
            timeout=client.timeout,
            idempotent=method == "GET",
        )
