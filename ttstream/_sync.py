"""``ttstream.Client``: the synchronous client, for scripts.

It runs an :class:`~ttstream.AsyncClient` in an event loop of its own, in a background
thread (anyio's blocking portal, ``anyio.from_thread.start_blocking_portal``), and hands
each call over to it: there is no second implementation of requests, retries, parsing or
reconnection, and the events are the same objects.

Every blocking wait is a wait on the loop thread's result. When the calling thread is
interrupted while it waits (Ctrl-C raises ``KeyboardInterrupt`` there), the call in the
loop is cancelled and has finished before the exception goes on, so leaving ``with``
then closes the response without racing it.
"""

from __future__ import annotations

import decimal
import functools
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx2
from anyio.from_thread import BlockingPortal, start_blocking_portal

from . import params as _params
from ._event_types import StreamItem
from ._exceptions import ClosedError
from ._otel import Generation
from ._reconnect import ReconnectPolicy
from ._request import ImageInput
from ._responses import Response
from ._responses_client import ResponseStream
from .batch import SyncBatch
from .client import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_RECONNECT,
    DEFAULT_TIMEOUT,
    AsyncClient,
    Auth,
    deprecated_timeout,
)
from .events import Completed, PartialImage
from .params import (
    EditParameters,
    GenerationParameters,
    ImageGenerationTool,
    ResponsesParameters,
)
from .sse import DEFAULT_MAX_EVENT_BYTES
from .stream import ImageStream

__all__ = ["Client", "SyncImageStream", "SyncResponses"]

_T = TypeVar("_T")


class _Loop:
    """A blocking portal and the calls made through it."""

    def __init__(self, backend: str, backend_options: dict[str, Any] | None) -> None:
        self._manager = start_blocking_portal(backend, backend_options)
        self._portal: BlockingPortal = self._manager.__enter__()
        self._stopped = False

    @property
    def portal(self) -> BlockingPortal:
        """The running portal.

        Raises:
            ClosedError: the client was closed (also a ``RuntimeError``).
        """
        if self._stopped:
            raise ClosedError("the client is closed: make a new ttstream.Client")
        return self._portal

    def call(self, func: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Runs ``await func(*args)`` in the loop thread and returns its result.

        If this thread is interrupted while waiting (``KeyboardInterrupt``), the call is
        cancelled and awaited before the exception propagates.
        """
        finished = threading.Event()

        async def run() -> _T:
            try:
                return await func(*args)
            finally:
                finished.set()

        future = self.portal.start_task_soon(run)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()  # anyio cancels the task's scope in the loop thread
                finished.wait()
            raise

    def stop(self) -> None:
        self._stopped = True
        self._manager.__exit__(None, None, None)


def _shut_down(loop: _Loop, client: AsyncClient) -> None:
    try:
        loop.call(client.aclose)
    finally:
        loop.stop()


class SyncImageStream:
    """One generation or edit: a context manager and an iterator of the events of
    :class:`~ttstream.ImageStream` (``PartialImage``, ``Completed``, ``Reconnecting``).

    The request is sent when the stream is entered or first iterated. Leaving ``with``
    (normally, by ``break``, by an exception or by ``KeyboardInterrupt``) closes the
    response; so does :meth:`close`. Errors are the same as the async stream's.
    """

    def __init__(self, client: Client, loop: _Loop, stream: ImageStream) -> None:
        self._client = client  # keeps the client, and its loop, alive while in use
        self._loop = loop
        self._stream = stream

    def __repr__(self) -> str:
        return f"<SyncImageStream request_id={self.request_id!r}>"

    @property
    def request_id(self) -> str | None:
        """The ``x-request-id`` of the answer, once the stream is open."""
        return self._stream.request_id

    @property
    def started(self) -> bool:
        """Whether the request was sent (or the stream ended), as ``ImageStream.started``."""
        return self._stream.started

    @property
    def last_partial(self) -> PartialImage | None:
        """The last preview delivered, or ``None`` (as ``ImageStream.last_partial``)."""
        return self._stream.last_partial

    @property
    def decode_images(self) -> bool | None:
        """Whether images are decoded while they arrive, as ``ImageStream.decode_images``
        (docs/fast.md); set it before the stream starts."""
        return self._stream.decode_images

    @decode_images.setter
    def decode_images(self, value: bool | None) -> None:
        self._stream.decode_images = value

    @property
    def model(self) -> str | None:
        """The model asked for, as ``ImageStream.model``."""
        return self._stream.model

    @property
    def cost(self) -> decimal.Decimal | None:
        """The estimated price in US dollars of the images delivered so far, as
        ``ImageStream.cost`` (docs/batch.md, "Cost")."""
        return self._stream.cost

    @property
    def telemetry(self) -> Generation | None:
        """The OpenTelemetry span of this generation, as ``ImageStream.telemetry``
        (docs/observability.md)."""
        return self._stream.telemetry

    @property
    def response(self) -> Response | None:
        """For ``client.responses`` streams: the final response without images, once it
        arrived (as ``ResponseStream.response``); else ``None``."""
        return self._stream.response if isinstance(self._stream, ResponseStream) else None

    @property
    def response_id(self) -> str | None:
        """For ``client.responses`` streams: the response's id (``resp_...``) once its
        first event arrived (as ``ResponseStream.response_id``); else ``None``."""
        return self._stream.response_id if isinstance(self._stream, ResponseStream) else None

    @property
    def last_sequence_number(self) -> int | None:
        """For ``client.responses`` streams: the ``sequence_number`` of the last event
        read (as ``ResponseStream.last_sequence_number``), what
        ``client.responses.resume(response_id, starting_after=...)`` takes; else ``None``."""
        stream = self._stream
        return stream.last_sequence_number if isinstance(stream, ResponseStream) else None

    def __enter__(self) -> SyncImageStream:
        self._loop.call(self._stream.__aenter__)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamItem]:
        return self

    def __next__(self) -> StreamItem:
        try:
            return self._loop.call(self._stream.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """Closes the response; does nothing if it is closed already."""
        self._loop.call(self._stream.aclose)


class Client:
    """The synchronous client: ``with ttstream.Client() as client``.

    Takes the arguments of :class:`~ttstream.AsyncClient` (``api_key``, ``base_url``,
    ``auth``, ``timeout``, ``max_retries``, ``http_client``, ``max_event_bytes``,
    ``reconnect``, ``deadline``: see there), plus ``backend`` (``"asyncio"`` or
    ``"trio"``) and ``backend_options`` for the event loop that runs them in a background
    thread (anyio's ``start_blocking_portal``). ``generate`` and ``edit`` take the same
    arguments as the async methods and return a :class:`SyncImageStream`::

        with ttstream.Client() as client:
            with client.generate("a lighthouse", partial_images=2) as stream:
                for event in stream:
                    ...

    Use one client from one thread at a time. :meth:`close` (or leaving ``with``) closes
    the HTTP client and stops the loop thread; a client never closed is closed when it
    is garbage-collected or the interpreter exits. An ``http_client`` passed in is not
    closed (as with ``AsyncClient``); from synchronous code, create it with
    ``limits=httpx2.Limits(max_keepalive_connections=0)`` so that it keeps no connection
    open between requests.

    Raises:
        ValidationError: as ``AsyncClient`` (no key, a bad option), at construction.
    """

    async_client_class: type[AsyncClient] = AsyncClient
    """The async client this facade runs (``AzureClient``: ``AsyncAzureClient``)."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        auth: Auth = "auto",
        timeout: float | httpx2.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        http_client: httpx2.AsyncClient | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        reconnect: ReconnectPolicy = DEFAULT_RECONNECT,
        deadline: float | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        backend: str = "asyncio",
        backend_options: dict[str, Any] | None = None,
    ) -> None:
        make = functools.partial(
            AsyncClient,
            api_key,
            base_url=base_url,
            auth=auth,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
            max_connections=max_connections,
            max_event_bytes=max_event_bytes,
            reconnect=reconnect,
            deadline=deadline,
        )
        self._start(make, backend, backend_options)

    def _start(
        self,
        make: Callable[[], AsyncClient],
        backend: str,
        backend_options: dict[str, Any] | None,
    ) -> None:
        """Starts the loop thread and makes the async client there with ``make`` (a
        subclass's ``__init__`` passes its own, e.g. an Azure client's)."""
        self._loop = _Loop(backend, backend_options)
        try:
            self._async = self._loop.portal.call(make)
        except BaseException:
            self._loop.stop()
            raise
        # Also run when the client is garbage-collected or the interpreter exits without
        # close(): a loop thread left running would hang the interpreter's shutdown.
        self._finalizer = weakref.finalize(self, _shut_down, self._loop, self._async)

    @property
    def responses(self) -> SyncResponses:
        """The Responses API image tool, as ``AsyncClient.responses``. It keeps this
        client alive while it is in use (``Client(...).responses.stream(...)`` works on
        a client kept nowhere else)."""
        return SyncResponses(self)

    @property
    def base_url(self) -> str:
        """The API root requests go to, as ``AsyncClient.base_url``."""
        return self._async.base_url

    def __repr__(self) -> str:
        return f"<Client base_url={self._async.base_url!r} auth={self._async.auth!r}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the HTTP client (if this client created it) and stops the loop
        thread; streams still open are closed with it. Idempotent."""
        self._finalizer()

    @_params.keywords(GenerationParameters)
    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        deadline: float | None = None,
        reconnect: ReconnectPolicy | None = None,
        extra_body: Mapping[str, object] | None = None,
        **params: Unpack[GenerationParameters],
    ) -> SyncImageStream:
        """As :meth:`AsyncClient.generate`; raises ``TypeError`` for a keyword that is no
        parameter and ``ValidationError`` at once."""
        make = functools.partial(
            self._async.generate,
            prompt,
            model=model,
            deadline=deadline,
            reconnect=reconnect,
            extra_body=extra_body,
            **params,
        )
        return self._wrap(make)

    @_params.keywords(EditParameters)
    def edit(
        self,
        prompt: str,
        *,
        images: ImageInput | Sequence[ImageInput],
        mask: ImageInput | None = None,
        model: str | None = None,
        deadline: float | None = None,
        reconnect: ReconnectPolicy | None = None,
        extra_body: Mapping[str, object] | None = None,
        **params: Unpack[EditParameters],
    ) -> SyncImageStream:
        """As :meth:`AsyncClient.edit`; raises ``TypeError`` for a keyword that is no
        parameter and ``ValidationError`` at once for what can be checked without reading
        files."""
        make = functools.partial(
            self._async.edit,
            prompt,
            images=images,
            mask=mask,
            model=model,
            deadline=deadline,
            reconnect=reconnect,
            extra_body=extra_body,
            **params,
        )
        return self._wrap(make)

    def batch(self, **options: Any) -> SyncBatch:
        """As :meth:`AsyncClient.batch`; iterate the results with ``for`` (docs/batch.md)."""
        return SyncBatch(self, self._loop.portal, self._async.batch(**options))

    def fetch_image(
        self,
        event: Completed,
        *,
        deadline: float | None = None,
        url_filter: Callable[[str], bool] | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """As :meth:`AsyncClient.fetch_image` (``deadline=``, ``url_filter=``;
        ``timeout=`` is deprecated): the image bytes of ``event``, downloaded from
        ``event.url`` for a URL result."""
        deadline = deprecated_timeout(timeout, deadline, stacklevel=3)
        make = functools.partial(
            self._async.fetch_image, event, deadline=deadline, url_filter=url_filter
        )
        return self._loop.call(make)

    def _wrap(self, make: Callable[[], ImageStream]) -> SyncImageStream:
        return SyncImageStream(self, self._loop, self._loop.portal.call(make))


class SyncResponses:
    """``Client.responses``: ``stream()`` and ``resume()`` take the arguments of
    ``AsyncClient.responses`` and return a :class:`SyncImageStream` (with ``.response``,
    ``response_id`` and ``last_sequence_number``).

    It holds its :class:`Client` (the client does not hold it: no reference cycle, so
    the client's finalizer runs as soon as both are dropped), so the client stays open
    while its ``responses`` or one of their streams is in use."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<SyncResponses of {self._client!r}>"

    @_params.keywords(ResponsesParameters)
    def stream(
        self,
        *,
        model: str,
        input: str | Sequence[Mapping[str, Any]],
        tools: Sequence[ImageGenerationTool | Mapping[str, Any]] | None = None,
        background: bool = False,
        deadline: float | None = None,
        reconnect: ReconnectPolicy | None = None,
        extra_body: Mapping[str, object] | None = None,
        **params: Unpack[ResponsesParameters],
    ) -> SyncImageStream:
        """As ``AsyncClient.responses.stream``; raises ``TypeError`` for a keyword that is
        no body field and ``ValidationError`` at once."""
        client = self._client
        make = functools.partial(
            client._async.responses.stream,
            model=model,
            input=input,
            tools=tools,
            background=background,
            deadline=deadline,
            reconnect=reconnect,
            extra_body=extra_body,
            **params,
        )
        return client._wrap(make)

    def resume(
        self,
        response_id: str,
        *,
        starting_after: int | None = None,
        deadline: float | None = None,
        reconnect: ReconnectPolicy | None = None,
    ) -> SyncImageStream:
        """As ``AsyncClient.responses.resume``."""
        client = self._client
        make = functools.partial(
            client._async.responses.resume,
            response_id,
            starting_after=starting_after,
            deadline=deadline,
            reconnect=reconnect,
        )
        return client._wrap(make)
