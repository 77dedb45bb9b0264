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
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Self, TypedDict, TypeVar, Unpack

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._delegate import Delegated, Settable
from ._event_types import StreamItem
from ._exceptions import ClosedError, ValidationError
from ._options import EditOptions, GenerateOptions, ResponseStreamOptions, ResumeOptions
from ._otel import Generation
from ._resource import Resource
from ._responses import Response
from ._responses_client import Responses
from ._secrets import redact
from ._signature import forwards_to
from .batch import Batch, BatchOptions, SyncBatch
from .client import AsyncClient, ClientOptions, CopyOptions, deprecated_timeout
from .events import Completed, PartialImage
from .stream import ImageStream

__all__ = ["Client", "LoopOptions", "SyncClientOptions", "SyncImageStream", "SyncResponses"]

_T = TypeVar("_T")


class LoopOptions(TypedDict, total=False):
    """The keywords of a sync client's event loop: ``backend`` (``"asyncio"``, the
    default, or ``"trio"``) and ``backend_options`` (anyio's ``start_blocking_portal``)."""

    backend: str
    backend_options: dict[str, Any] | None


class SyncClientOptions(ClientOptions, LoopOptions, total=False):
    """Every keyword of :class:`Client`: :class:`~ttstream.AsyncClient`'s and the loop's."""


_BACKENDS = ("asyncio", "trio")


class _Loop:
    """A blocking portal and the calls made through it."""

    def __init__(
        self, backend: str = "asyncio", backend_options: dict[str, Any] | None = None
    ) -> None:
        if backend not in _BACKENDS:  # anyio raised a bare LookupError
            raise ValidationError("backend", backend, "'asyncio' or 'trio'")
        self._manager = start_blocking_portal(backend, backend_options)
        self._portal: BlockingPortal = self._manager.__enter__()
        self._stopped = False
        self.thread_id: int = self._portal.call(threading.get_ident)
        """The loop thread's ``threading.get_ident()``."""

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
    """Closes ``client`` and stops ``loop`` (the client's finalizer). Run by the garbage
    collector in the loop thread itself, which cannot wait for its own loop, it hands
    the work to a thread of its own."""
    if threading.get_ident() == loop.thread_id:
        threading.Thread(target=_shut_down, args=(loop, client), daemon=True).start()
        return
    try:
        loop.call(client.aclose)
    finally:
        loop.stop()


def _keep(client: Client) -> None:
    """A copy's finalizer (:meth:`Client.with_options`): it closes nothing, which the
    original owns; until it runs, it holds the original ``client`` alive."""


class SyncImageStream(Resource):
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
        return redact(f"<SyncImageStream request_id={self.request_id!r}>")  # server text

    request_id: Delegated[str | None] = Delegated("_stream")
    """The ``x-request-id`` of the answer, once the stream is open."""
    started: Delegated[bool] = Delegated("_stream")
    """Whether the request was sent (or the stream ended), as ``ImageStream.started``."""
    last_partial: Delegated[PartialImage | None] = Delegated("_stream")
    """The last preview delivered, or ``None`` (as ``ImageStream.last_partial``)."""
    decode_images: Settable[bool | None] = Settable("_stream")
    """Whether images are decoded while they arrive, as ``ImageStream.decode_images``
    (docs/fast.md); set it before the stream starts."""
    model: Delegated[str | None] = Delegated("_stream")
    """The model asked for, as ``ImageStream.model``."""
    cost: Delegated[decimal.Decimal | None] = Delegated("_stream")
    """The estimated price in US dollars of the images delivered so far, as
    ``ImageStream.cost`` (docs/batch.md, "Cost")."""
    telemetry: Delegated[Generation | None] = Delegated("_stream")
    """The OpenTelemetry span of this generation, as ``ImageStream.telemetry``
    (docs/observability.md)."""
    response: Delegated[Response | None] = Delegated("_stream", default=None)
    """For ``client.responses`` streams: the final response without images, once it
    arrived (as ``ResponseStream.response``); else ``None``."""
    response_id: Delegated[str | None] = Delegated("_stream", default=None)
    """For ``client.responses`` streams: the response's id (``resp_...``) once its
    first event arrived (as ``ResponseStream.response_id``); else ``None``."""
    last_sequence_number: Delegated[int | None] = Delegated("_stream", default=None)
    """For ``client.responses`` streams: the ``sequence_number`` of the last event
    read (as ``ResponseStream.last_sequence_number``), what
    ``client.responses.resume(response_id, starting_after=...)`` takes; else ``None``."""

    def __enter__(self) -> Self:
        self._loop.call(self._stream.__aenter__)
        return self

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


class Client(Resource):
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
        ValidationError: as ``AsyncClient`` (no key, a bad option), or a ``backend``
            other than ``"asyncio"`` and ``"trio"``, at construction.
    """

    async_client_class: type[AsyncClient] = AsyncClient
    """The async client this facade runs (``AzureClient``: ``AsyncAzureClient``)."""

    @forwards_to(AsyncClient.__init__, _Loop.__init__, options=SyncClientOptions)
    def __init__(self, api_key: str | None = None, **options: Unpack[SyncClientOptions]) -> None:
        self._start(AsyncClient, api_key, options)

    def _start(
        self,
        client_class: Callable[..., AsyncClient],
        api_key: str | None,
        options: Mapping[str, Any],
    ) -> None:
        """Starts the loop thread with the :class:`LoopOptions` of ``options`` and makes
        ``client_class(api_key, **other_options)`` there."""
        loop = {name: options[name] for name in LoopOptions.__optional_keys__ & options.keys()}
        make = functools.partial(
            client_class, api_key, **{n: v for n, v in options.items() if n not in loop}
        )
        self._loop = _Loop(**loop)
        try:
            self._async = self._loop.portal.call(make)
        except BaseException:
            self._loop.stop()
            raise
        # Also run when the client is garbage-collected or the interpreter exits without
        # close(): a loop thread left running would hang the interpreter's shutdown.
        self._finalizer: Callable[[], object] = weakref.finalize(
            self, _shut_down, self._loop, self._async
        )

    @forwards_to(AsyncClient.with_options, options=CopyOptions)
    def with_options(self, **overrides: Unpack[CopyOptions]) -> Self:
        """A new client with this one's settings but those given, as
        :meth:`AsyncClient.with_options` (also named ``copy``; the same keywords, merge
        rules and errors). The copy runs on this client's event loop thread and shares
        its HTTP client and connection pool: closing the copy closes neither, and it
        keeps this client alive while in use; closing this client stops both (the copy
        then raises ``ClosedError``)."""
        return self._copy(overrides)

    copy = with_options

    def _copy(self, overrides: Mapping[str, Any]) -> Self:
        made = self._loop.portal.call(functools.partial(self._async.with_options, **overrides))
        copy = object.__new__(type(self))
        copy._loop = self._loop
        copy._async = made
        # Holds this client (and so its loop) until the copy is closed or collected.
        copy._finalizer = weakref.finalize(copy, _keep, self)
        return copy

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

    def close(self) -> None:
        """Closes the HTTP client (if this client created it) and stops the loop
        thread; streams still open are closed with it. Idempotent."""
        self._finalizer()

    @forwards_to(AsyncClient.generate, options=GenerateOptions)
    def generate(self, prompt: str, **options: Unpack[GenerateOptions]) -> SyncImageStream:
        """As :meth:`AsyncClient.generate`; raises ``TypeError`` for a keyword that is no
        parameter and ``ValidationError`` at once."""
        return self._wrap(functools.partial(self._async.generate, prompt, **options))

    @forwards_to(AsyncClient.edit, options=EditOptions)
    def edit(self, prompt: str, **options: Unpack[EditOptions]) -> SyncImageStream:
        """As :meth:`AsyncClient.edit`; raises ``TypeError`` for a keyword that is no
        parameter and ``ValidationError`` at once for what can be checked without reading
        files."""
        return self._wrap(functools.partial(self._async.edit, prompt, **options))

    @forwards_to(Batch.__init__, options=BatchOptions)
    def batch(self, **options: Unpack[BatchOptions]) -> SyncBatch:
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

    @forwards_to(Responses.stream, options=ResponseStreamOptions)
    def stream(self, **options: Unpack[ResponseStreamOptions]) -> SyncImageStream:
        """As ``AsyncClient.responses.stream``; raises ``TypeError`` for a keyword that is
        no body field and ``ValidationError`` at once."""
        client = self._client
        return client._wrap(functools.partial(client._async.responses.stream, **options))

    @forwards_to(Responses.resume, options=ResumeOptions)
    def resume(self, response_id: str, **options: Unpack[ResumeOptions]) -> SyncImageStream:
        """As ``AsyncClient.responses.resume``."""
        client = self._client
        return client._wrap(
            functools.partial(client._async.responses.resume, response_id, **options)
        )
