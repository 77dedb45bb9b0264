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

import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, Unpack

import httpx2

from . import params as _params
from ._bounds import CLIENT_TIMEOUT, ClientTimeout, stream_timeout
from ._delegate import Delegated
from ._eventsource import EventSource
from ._exceptions import ValidationError
from ._headers import HeaderValues, QueryValues, RequestExtras, merge_headers
from ._imagehook import image_shape
from ._options import StreamOptionsButTimeout
from ._otel import generation
from ._reconnect import ReconnectPolicy, stream_policy
from ._request import json_body, merge_extra_body
from ._responses import Response, ResponsesInterpreter
from ._version import USER_AGENT
from .params import ImageGenerationTool, ResponsesParameters
from .stream import ImageStream

__all__ = ["APIClient", "ResponseStream", "Responses"]


class APIClient(Protocol):
    """What ``client.responses`` needs of its client (an :class:`~ttstream.AsyncClient`
    is one): where to send, how to authenticate, and the limits of its streams."""

    def endpoint_url(self, path: str, query: Mapping[str, str] | None = None) -> str: ...
    async def auth_headers(self, path: str) -> Mapping[str, str]: ...
    def request_extras(self, extra_headers: object, extra_query: object) -> RequestExtras: ...
    @property
    def base_url(self) -> str: ...
    @property
    def http_client(self) -> httpx2.AsyncClient: ...
    @property
    def timeout(self) -> httpx2.Timeout: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def max_event_bytes(self) -> int: ...
    @property
    def reconnect(self) -> ReconnectPolicy: ...
    @property
    def deadline(self) -> float | None: ...


_IMAGE_TOOL = {"type": "image_generation"}


def _check_request(model: object, input: object, tools: object, background: object) -> None:
    """The types of ``responses.stream``'s own arguments, before anything is sent.

    Raises:
        ValidationError: the first of them that is of the wrong type.
    """
    if not isinstance(model, str) or not model:
        raise ValidationError("model", model, "a non-empty text model name such as 'gpt-5'")
    if not isinstance(input, str) and not _mappings(input):
        raise ValidationError("input", input, "a string, or a list of the API's input items")
    if tools is not None and not _mappings(tools):
        example = "[{'type': 'image_generation', 'partial_images': 2}]"
        raise ValidationError("tools", tools, f"None or a list of tool objects such as {example}")
    if background is not None and not isinstance(background, bool):
        raise ValidationError("background", background, "True, False or None (left out)")


def _mappings(value: object) -> bool:
    """Whether ``value`` is a sequence (not a string) of mappings."""
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and all(isinstance(item, Mapping) for item in value)
    )


class ResponseStream(ImageStream):
    """An :class:`~ttstream.ImageStream` of a Responses API stream: the same events, and
    after the end :attr:`response`, the final response without images.

    ``response_id`` and ``last_sequence_number`` are what
    ``client.responses.resume(response_id, starting_after=last_sequence_number)`` needs
    to go on in another process.
    """

    def __init__(
        self,
        start: Callable[[bool], Awaitable[EventSource]],
        interpreter: ResponsesInterpreter,
        *,
        max_body_bytes: int,
        deadline: float | None,
    ) -> None:
        super().__init__(
            start,
            interpreter,
            operation="response",
            max_body_bytes=max_body_bytes,
            deadline=deadline,
        )

    # The interpreter the base class holds (``_interpreter``) is this stream's
    # ResponsesInterpreter: these read it, with no reference of their own.
    response: Delegated[Response | None] = Delegated("_interpreter")
    """The final response (id, status, output text, usage, output items without
    images) once ``response.completed`` arrived, else ``None``."""
    response_id: Delegated[str | None] = Delegated("_interpreter")
    """The response's id (``resp_...``) once its first event arrived."""
    last_sequence_number: Delegated[int | None] = Delegated("_interpreter")
    """The ``sequence_number`` of the last event read."""


class Responses:
    """``client.responses``: the Responses API image tool (docs/responses.md)."""

    def __init__(self, client: APIClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<Responses of {self._client!r}>"

    @_params.keywords(ResponsesParameters)
    def stream(
        self,
        *,
        model: str,
        input: str | Sequence[Mapping[str, Any]],
        tools: Sequence[ImageGenerationTool | Mapping[str, Any]] | None = None,
        background: bool | None = False,
        deadline: float | None = None,
        reconnect: ReconnectPolicy | None = None,
        timeout: float | httpx2.Timeout | ClientTimeout = CLIENT_TIMEOUT,
        extra_headers: HeaderValues | None = None,
        extra_query: QueryValues | None = None,
        extra_body: Mapping[str, object] | None = None,
        **params: Unpack[ResponsesParameters],
    ) -> ResponseStream:
        """Prepares ``POST {base_url}/responses`` with ``stream: true``; returns its
        :class:`ResponseStream`, which sends the request when entered or first iterated.

        ``model`` is the text model (e.g. ``"gpt-5"``), ``input`` a string or the API's
        input items; ``tools`` defaults to ``[{"type": "image_generation"}]``, with the
        tool's options (``partial_images``, ``size``, ``quality``, ``output_format``,
        ``model``...) as the API names them (:class:`ttstream.params.ImageGenerationTool`);
        ``params`` are the other body fields, each a keyword of its own
        (:class:`ttstream.params.ResponsesParameters`: ``instructions``,
        ``previous_response_id``...; ``None`` leaves one out), and ``extra_body`` is
        merged into the top level of the JSON body as it is. With ``background=True`` a
        broken stream resumes after its last event, without a new generation; ``False``
        and ``None`` leave the field out. ``extra_headers`` and ``extra_query`` go with
        the ``POST`` and every resume, over the client's ``default_headers`` and
        ``default_query`` (a header or query parameter given as ``None`` is not sent).
        ``deadline``, ``reconnect`` and ``timeout`` override the client's for this
        stream (``timeout``: seconds for every phase, a finite number > 0, or an
        ``httpx2.Timeout``, for the ``POST`` and every retry and resume; ``None`` is
        refused), as for ``AsyncClient.generate``.

        Raises:
            TypeError: a keyword that is no body field.
            ValidationError: at once, for an image tool option its image model does not
                take (:func:`ttstream.params.validate_tool`), or a body field ttstream
                sets itself (``stream``), or a ``model``, ``input``, ``tools``,
                ``background``, ``extra_headers`` or ``extra_query`` of the wrong type, or
                a ``timeout`` that is neither a finite number of seconds > 0 nor an
                ``httpx2.Timeout``.
        """
        if params.get("stream") not in (None, True):
            raise ValidationError("stream", params["stream"], "omitted (always True here)")
        _check_request(model, input, tools, background)
        request_timeout = stream_timeout(timeout, self._client.timeout)
        extras = self._client.request_extras(extra_headers, extra_query)
        chosen = [dict(tool) for tool in tools] if tools is not None else [dict(_IMAGE_TOOL)]
        url = self._client.endpoint_url("responses", extras.query)
        shape = None
        for tool in chosen:
            if tool.get("type") == _IMAGE_TOOL["type"]:
                _params.validate_tool(tool)
                shape = image_shape(url, tool)
        given = {name: value for name, value in params.items() if value is not None}
        body: dict[str, object] = {"model": model, "input": input, "tools": chosen, **given}
        body["stream"] = True
        if background:
            body["background"] = True
        merge_extra_body(body, extra_body)
        interpreter = ResponsesInterpreter()
        return self._stream(
            "POST",
            url,
            json_body(body),
            interpreter,
            background is True,
            shape,
            extras,
            request_timeout,
            deadline=deadline,
            reconnect=reconnect,
        )

    @_params.keywords(StreamOptionsButTimeout)
    def resume(
        self,
        response_id: str,
        *,
        starting_after: int | None = None,
        timeout: float | httpx2.Timeout | ClientTimeout = CLIENT_TIMEOUT,
        **options: Unpack[StreamOptionsButTimeout],
    ) -> ResponseStream:
        """Prepares ``GET {base_url}/responses/{response_id}?stream=true&starting_after=N``:
        the events of a background response after ``starting_after`` (all of them when
        ``None``), e.g. from a process that restarted, with no new generation. A break
        resumes again, as for :meth:`stream`, with the same ``extra_headers`` and
        ``extra_query``, and the same ``timeout`` (as for :meth:`stream`).

        Raises:
            ValidationError: ``response_id`` is empty, ``starting_after`` below -1,
                ``extra_headers`` / ``extra_query`` of the wrong type, or a bad
                ``timeout`` (as for :meth:`stream`).
        """
        if not isinstance(response_id, str) or not response_id:
            raise ValidationError("response_id", response_id, "a response id such as 'resp_...'")
        if starting_after is not None and (
            not isinstance(starting_after, int)
            or isinstance(starting_after, bool)
            or starting_after < -1
        ):
            raise ValidationError("starting_after", starting_after, "an int >= -1 or None")
        request_timeout = stream_timeout(timeout, self._client.timeout)
        extras = self._client.request_extras(
            options.pop("extra_headers", None), options.pop("extra_query", None)
        )
        interpreter = ResponsesInterpreter(response_id=response_id, starting_after=starting_after)
        url = self._resume_url(interpreter, extras.query)
        return self._stream(
            "GET", url, None, interpreter, True, None, extras, request_timeout, **options
        )

    def _stream(
        self,
        method: str,
        url: str,
        content: bytes | None,
        interpreter: ResponsesInterpreter,
        resumable: bool,
        shape: tuple[str, ...] | None,
        extras: RequestExtras,
        timeout: httpx2.Timeout,
        **options: Unpack[StreamOptionsButTimeout],
    ) -> ResponseStream:
        """The stream of one request, with the caller's ``extras`` (headers and query;
        ``url`` has the query already) and ``timeout`` (checked at the call). A break of
        a background response resumes with ``GET ...&starting_after=<last
        sequence_number>`` (EventSource's ``resume`` hook), with the same headers and
        query: never the first request again, which would be a new generation.
        ``shape``: the :func:`~ttstream._imagehook.image_shape` of its image tool (``None``
        when unknown: a resume)."""
        client = self._client
        deadline = options.get("deadline")
        policy = stream_policy(options.get("reconnect"), client.reconnect)

        def resume() -> tuple[str, str] | None:
            if resumable and interpreter.response_id is not None:
                return "GET", self._resume_url(interpreter, extras.query)
            return None

        async def start(decode_images: bool) -> EventSource:
            own = {**(await client.auth_headers("responses")), "User-Agent": USER_AGENT}
            if content is not None:
                own["Content-Type"] = "application/json"
            headers = merge_headers(own, extras.headers)
            return EventSource(
                client.http_client,
                method,
                url,
                headers=headers,
                content=content,
                reconnect=policy,
                max_event_bytes=client.max_event_bytes,
                max_retries=client.max_retries,
                timeout=timeout,
                idempotent=method == "GET",
                confirm_progress=True,  # a new preview or image is progress
                resume=resume,
                decode_images=decode_images,
                image_shape=shape,
            )

        stream = ResponseStream(
            start,
            interpreter,
            max_body_bytes=client.max_event_bytes,
            deadline=client.deadline if deadline is None else deadline,
        )
        stream.telemetry = generation("response", None, client.base_url)
        return stream

    def _resume_url(self, interpreter: ResponsesInterpreter, extra: Mapping[str, str]) -> str:
        """The resume ``GET`` after the last event read, with the caller's query
        ``extra`` (its own ``stream`` and ``starting_after`` win)."""
        query = {**extra, "stream": "true"}
        if interpreter.last_sequence_number is not None:
            query["starting_after"] = str(interpreter.last_sequence_number)
        response_id = urllib.parse.quote(str(interpreter.response_id), safe="")
        return self._client.endpoint_url(f"responses/{response_id}", query)
