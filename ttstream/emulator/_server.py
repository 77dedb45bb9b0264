"""Running the emulator with uvicorn: in a background thread, or in the foreground."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Self

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette

from .._exceptions import ClosedError, ValidationError
from .._resource import Resource
from ._app import create_app
from ._faults import DEFAULT_WAIT_CLOSED, StreamStats

__all__ = ["EmulatorServer", "api_or_emulator", "base_url_for", "bind_socket", "serve_forever"]

_START_TIMEOUT = 10.0  # seconds to wait for the server thread to listen
_GRACEFUL_SHUTDOWN = 1  # seconds in-flight work gets once connections are closed


class _Server(uvicorn.Server):
    """uvicorn's server, except that stopping closes open connections at once.

    A stream in progress then ends early (its client sees an incomplete stream, as when
    a real server goes away) instead of holding the shutdown until it finishes.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        await super().shutdown(sockets=sockets)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port), as uvicorn binds.

    Binding here, not inside uvicorn, gives the real port at once and raises ``OSError``
    in the caller's thread when the address is taken.

    Raises:
        ValidationError: ``port`` is no int from 0 to 65535 (the socket layer took
            99999 as 34463, its value modulo 65536).
        OSError: the address cannot be bound.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValidationError("port", port, "an int from 0 to 65535 (0: a free port)")
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def serve_forever(app: Starlette, sock: socket.socket) -> None:
    """Serves ``app`` on ``sock`` in the calling (main) thread until Ctrl+C or SIGTERM,
    with uvicorn's console logging and access log (which never shows headers)."""
    _Server(uvicorn_config(app, quiet=False)).run(sockets=[sock])


def uvicorn_config(app: Starlette, *, quiet: bool) -> uvicorn.Config:
    """The uvicorn settings of the emulator; ``quiet`` leaves the caller's logging alone
    (no logging configuration, no access log)."""
    return uvicorn.Config(
        app,
        lifespan="off",
        ws="none",
        access_log=not quiet,
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
    )


def base_url_for(host: str, port: int) -> str:
    """The base URL a client uses: ``http://<host>:<port>/v1``."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class EmulatorServer(Resource):
    """The emulator served by uvicorn in a daemon thread with its own asyncio loop.

    A context manager::

        with EmulatorServer() as server:          # port 0: a free port
            client = ttstream.AsyncClient("any-key", base_url=server.base_url)

    Entering starts the server and returns once it accepts connections; leaving stops it
    (open connections are closed, so a stream in progress ends early) and joins the
    thread. The caller's
    thread may run asyncio, trio or nothing. ``start()`` and ``stop()`` do the same
    without ``with``. ``default_fault`` is a fault spec applied to every request that
    names none (:attr:`default_fault`).

    Raises:
        FaultSpecError: ``default_fault`` cannot be read (docs/emulator.md, "Faults").
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        step_delay: float = 0.0,
        api_key: str | None = None,
        default_fault: str | None = None,
        azure: bool = False,
    ) -> None:
        self.host = host
        self.azure = azure
        self.app = create_app(
            step_delay=step_delay, api_key=api_key, default_fault=default_fault, azure=azure
        )
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (the real one when 0 was asked)."""
        if self._port is None:
            raise ClosedError("the emulator server is not running; call start() or use `with`")
        return self._port

    @property
    def stream_stats(self) -> StreamStats:
        """The app's stream counters (``app.state.stream_stats``): requests per fault
        spec, bytes yielded per stream by ``x-request-id``, streams open now."""
        stats: StreamStats = self.app.state.stream_stats
        return stats

    @property
    def default_fault(self) -> str | None:
        """The fault spec (docs/emulator.md, "Faults") applied to every request that
        names no fault of its own (no ``X-Emulator-Fault`` header, no ``?fault=``), or
        ``None``. Settable at any time; applies from the next request on.

        Raises:
            FaultSpecError: (when set) a spec that cannot be read, or not printable ASCII.
        """
        spec: str | None = self.app.state.emulator.default_fault
        return spec

    @default_fault.setter
    def default_fault(self, spec: str | None) -> None:
        self.app.state.emulator.default_fault = spec

    async def wait_closed(
        self,
        timeout: float = DEFAULT_WAIT_CLOSED,  # noqa: ASYNC109 - bounds the worker thread too
    ) -> None:
        """Waits until the emulator answers no request and has no stream open, so that
        ``stream_stats`` tells the whole story of the streams a test has closed (a
        client sees a stream end before the emulator's thread has closed it). Returns
        at once when nothing is open. Works under asyncio and trio (and any test runner
        on them); ``timeout`` is in seconds. The blocking form for synchronous code is
        ``stream_stats.wait_closed(timeout)``.

        Raises:
            TimeoutError: something was still open after ``timeout`` seconds.
        """
        wait = functools.partial(self.stream_stats.wait_closed, timeout)
        await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)

    @property
    def base_url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:54321/v1``."""
        return base_url_for(self.host, self.port)

    @property
    def endpoint(self) -> str:
        """The server's root, e.g. ``http://127.0.0.1:54321``: the ``azure_endpoint`` of
        an emulator in Azure mode (``azure=True``)."""
        return self.base_url.removesuffix("/v1")

    def start(self) -> None:
        """Starts serving; returns once the server accepts connections.

        Raises:
            ValidationError: the port is no int from 0 to 65535.
            OSError: the address cannot be bound.
            RuntimeError: already started, or the server failed to start.
        """
        if self._thread is not None:
            raise RuntimeError("the emulator server is already running")
        sock = bind_socket(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        server = _Server(uvicorn_config(self.app, quiet=True))
        self._server = server
        self._failure = None
        self._thread = threading.Thread(
            target=self._serve, args=(server, sock), name=f"ttstream-emulator-{self._port}"
        )
        self._thread.daemon = True
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError("the emulator server failed to start") from self._failure
            time.sleep(0.005)

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit on startup failure, or a bug
            self._failure = exc

    def stop(self) -> None:
        """Stops the server and joins its thread; does nothing if it is not running."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join()
        self._server = self._thread = None
        self._port = None

    close = stop  # what leaving ``with`` calls

    def __enter__(self) -> Self:
        self.start()
        return self

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "stopped"
        return f"<EmulatorServer {where}>"


@contextlib.contextmanager
def api_or_emulator(*, step_delay: float = 0.5) -> Iterator[tuple[str | None, str | None]]:
    """``(api_key, base_url)`` for :class:`ttstream.AsyncClient`: ``(None, None)`` when
    ``TTAPI_API_KEY`` or ``OPENAI_API_KEY`` is set, so the client picks the key, URL and
    auth header from the environment itself; otherwise an :class:`EmulatorServer` runs for
    the duration (``step_delay`` seconds between events, so previews visibly stream in),
    and a line on stdout says so.
    """
    if os.environ.get("TTAPI_API_KEY") or os.environ.get("OPENAI_API_KEY"):
        yield None, None
        return
    with EmulatorServer(step_delay=step_delay) as emulator:
        print(f"No API key set: using the built-in emulator at {emulator.base_url}", flush=True)
        yield "emulator-key", emulator.base_url
