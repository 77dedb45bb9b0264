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

import functools
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._exceptions import ClosedError
from ._reconnect import ReconnectPolicy
from ._request import ImageInput
from ._responses import Response
from ._responses_client import ResponseStream
from .batch import SyncBatch
from .client import AsyncClient
from .events import Completed
from .stream import ImageStream, StreamItem

__all__ = ["Client", "SyncImageStream"]

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
    def response(self) -> Response | None:
        """For ``client.responses`` streams: the final response without images, once it
        arrived (as ``ResponseStream.response``); else ``None``."""
        return self._stream.response if isinstance(self._stream, ResponseStream) else None

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
    ``auth``, ``timeout``, ``max_retries``, ``max_event_bytes``, ``reconnect``,
    ``deadline``, ...), plus ``backend`` (``"asyncio"`` or ``"trio"``) for the event
    loop that runs them in a background thread. ``generate`` and ``edit`` take the same
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
        backend: str = "asyncio",
        backend_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self._loop = _Loop(backend, backend_options)
        try:
            make = functools.partial(self.async_client_class, api_key, **options)
            self._async = self._loop.portal.call(make)
        except BaseException:
            self._loop.stop()
            raise
        # Also run when the client is garbage-collected or the interpreter exits without
        # close(): a loop thread left running would hang the interpreter's shutdown.
        self._finalizer = weakref.finalize(self, _shut_down, self._loop, self._async)
        self.responses = SyncResponses(self)
        """The Responses API image tool, as ``AsyncClient.responses``."""

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

    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        deadline: float | None = None,
        reconnect: ReconnectPolicy | None = None,
        **params: Any,
    ) -> SyncImageStream:
        """As :meth:`AsyncClient.generate`; raises ``ValidationError`` at once."""
        make = functools.partial(
            self._async.generate,
            prompt,
            model=model,
            deadline=deadline,
            reconnect=reconnect,
            **params,
        )
        return self._wrap(make)

    def edit(
        self,
        prompt: str,
        *,
        images: ImageInput | Sequence[ImageInput],
        mask: ImageInput | None = None,
        model: str | None = None,
        deadline: float | None = None,
        reconnect: ReconnectPolicy | None = None,
        **params: Any,
    ) -> SyncImageStream:
        """As :meth:`AsyncClient.edit`; raises ``ValidationError`` at once for what can
        be checked without reading files."""
        make = functools.partial(
            self._async.edit,
            prompt,
            images=images,
            mask=mask,
            model=model,
            deadline=deadline,
            reconnect=reconnect,
            **params,
        )
        return self._wrap(make)

    def batch(self, **options: Any) -> SyncBatch:
        """As :meth:`AsyncClient.batch`; iterate the results with ``for`` (docs/batch.md)."""
        return SyncBatch(self, self._loop.portal, self._async.batch(**options))

    def fetch_image(self, event: Completed, **options: Any) -> bytes:
        """As :meth:`AsyncClient.fetch_image` (``timeout=``, ``url_filter=``): the image
        bytes of ``event``, downloaded from ``event.url`` for a URL result."""
        return self._loop.call(functools.partial(self._async.fetch_image, event, **options))

    def _wrap(self, make: Callable[[], ImageStream]) -> SyncImageStream:
        return SyncImageStream(self, self._loop, self._loop.portal.call(make))


class SyncResponses:
    """``Client.responses``: ``stream()`` and ``resume()`` take the arguments of
    ``AsyncClient.responses`` and return a :class:`SyncImageStream` (with ``.response``
    after the end)."""

    def __init__(self, client: Client) -> None:
        self._client = weakref.ref(client)  # no cycle: the client's finalizer still runs

    def _owner(self) -> Client:
        client = self._client()
        assert client is not None, "the Client was garbage-collected"
        return client

    def stream(self, **options: Any) -> SyncImageStream:
        """As ``AsyncClient.responses.stream``; raises ``ValidationError`` at once."""
        client = self._owner()
        return client._wrap(functools.partial(client._async.responses.stream, **options))

    def resume(self, response_id: str, **options: Any) -> SyncImageStream:
        """As ``AsyncClient.responses.resume``."""
        client = self._owner()
        make = functools.partial(client._async.responses.resume, response_id, **options)
        return client._wrap(make)
