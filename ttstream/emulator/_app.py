"""The ASGI application: routes, authentication, error answers, request ids.

Source: docs/hostile-servers.md, "The emulator's limits", for the limits; the API's
endpoints, authentication and error JSON otherwise. Every answer
carries an ``x-request-id: req_<hex>`` header; every error answer is the OpenAI error
JSON. API keys are compared and dropped: no answer and no log line ever contains one.
Faults chosen per request (``X-Emulator-Fault``) are read and applied by ``_faults.py``.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._checks import require_non_negative
from ._answers import images_body, sse_events
from ._azure import RATE_LIMIT_HEADERS, check_api_version
from ._errors import EmulatorError, error_body
from ._faults import (
    FAULT_HEADER,
    FAULT_QUERY,
    FaultSpec,
    FaultSpecError,
    StreamStats,
    faults_for,
    quiet_emulated_disconnects,
    stream_response,
)
from ._files import FileStore
from ._request import ImageRequest, read_edit, read_generation
from ._responses_api import ResponsesRoutes

__all__ = ["check_fault_spec", "create_app"]

FILE_ROUTE = "emulator_file"
_MAX_FILES = 256
MAX_BODY_BYTES = 64 * 1024 * 1024
"""The largest request body the emulator reads by default (413 beyond it): room for
sixteen 4 MiB uploads, far below what would strain the emulator's memory."""


def new_request_id() -> str:
    """A request id like the real API's: ``req_`` and 32 hex digits."""
    return f"req_{secrets.token_hex(16)}"


class _HTTPMiddleware:
    """An ASGI middleware of HTTP requests: :meth:`http` handles each one; other scopes
    (``lifespan``) go to ``app`` as they are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handles one HTTP request, passing it on to ``self.app``."""
        await self.app(scope, receive, send)


class _RequestIdMiddleware(_HTTPMiddleware):
    """Adds ``x-request-id`` to every response that goes through the app; the routes find
    it in ``request.state.request_id``. ``extra_headers`` go on every response too (Azure
    mode: its rate-limit headers)."""

    def __init__(self, app: ASGIApp, extra_headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(app)
        self.extra_headers = extra_headers

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        headers = [(b"x-request-id", request_id.encode("ascii")), *self.extra_headers]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)

        await self.app(scope, receive, send_with_id)


class _BodyLimitMiddleware(_HTTPMiddleware):
    """Answers 413 with the error JSON for a request body over ``max_bytes``: at once
    for a larger ``Content-Length``, else as soon as the bytes read pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    def _error(self) -> EmulatorError:
        return EmulatorError(
            f"The request body is larger than the emulator's limit of {self.max_bytes} bytes.",
            status=413,
            code="request_too_large",
        )

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = dict(scope.get("headers", ())).get(b"content-length", b"0")
        if not length.isdigit() or len(length) > 18 or int(length) > self.max_bytes:
            await _error_response(self._error())(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise self._error()
            return message

        await self.app(scope, limited_receive, send)


class _InFlightMiddleware(_HTTPMiddleware):
    """Counts every HTTP request in ``stats`` while the app answers it (for
    :meth:`StreamStats.wait_closed`)."""

    def __init__(self, app: ASGIApp, stats: StreamStats) -> None:
        super().__init__(app)
        self.stats = stats

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats.request_started()
        try:
            await self.app(scope, receive, send)
        finally:
            self.stats.request_ended()


class _DefaultFaultMiddleware(_HTTPMiddleware):
    """Adds ``X-Emulator-Fault: <default fault>`` to a request that names no fault of
    its own (no such header, no ``?fault=``), while the emulator has a default fault."""

    _HEADER = FAULT_HEADER.lower().encode("ascii")
    _QUERY = FAULT_QUERY.encode("ascii") + b"="

    def __init__(self, app: ASGIApp, emulator: _Emulator) -> None:
        super().__init__(app)
        self.emulator = emulator

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec = self.emulator.default_fault
        if spec is not None:
            headers = scope.get("headers", [])
            named = any(name == self._HEADER for name, _ in headers) or any(
                part.startswith(self._QUERY) for part in scope.get("query_string", b"").split(b"&")
            )
            if not named:
                scope = {**scope, "headers": [*headers, (self._HEADER, spec.encode("ascii"))]}
        await self.app(scope, receive, send)


def check_fault_spec(spec: str) -> str:
    """``spec`` if it can be a default fault: a fault spec (``_faults.py``'s grammar)
    in printable ASCII, as a header carries it.

    Raises:
        FaultSpecError: the spec cannot be read, or is not printable ASCII.
    """
    if not (spec.isascii() and spec.isprintable()):
        raise FaultSpecError("a fault spec is printable ASCII, as the header that carries it")
    FaultSpec.parse(spec)
    return spec


class _Emulator:
    """The state behind the routes: settings, the default fault, the files served for
    URL answers and the counters of the streams."""

    def __init__(
        self,
        *,
        step_delay: float,
        api_key: str | None,
        default_fault: str | None = None,
        azure: bool = False,
    ) -> None:
        self.step_delay = step_delay
        self._api_key = api_key
        self.azure = azure
        self.files = FileStore(_MAX_FILES)
        self.stats = StreamStats()
        self._default_fault: str | None = None
        self.default_fault = default_fault

    @property
    def default_fault(self) -> str | None:
        """The fault spec applied to every request that names none, or ``None``."""
        return self._default_fault

    @default_fault.setter
    def default_fault(self, spec: str | None) -> None:
        self._default_fault = None if spec is None else check_fault_spec(spec)

    def authenticate(self, request: Request) -> None:
        """Takes the key from ``TT-API-KEY`` or ``Authorization: Bearer`` (in Azure mode
        from ``api-key`` or ``Authorization: Bearer``).

        Raises:
            EmulatorError: 401 ``invalid_api_key`` when no key was sent, or when the
                emulator has a key and this one differs.
        """
        key = request.headers.get("api-key" if self.azure else "tt-api-key", "").strip()
        if not key:
            scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer":
                key = credentials.strip()
        if not key:
            raise EmulatorError(
                "You didn't provide an API key. Send it in a 'TT-API-KEY: <key>' header "
                "or an 'Authorization: Bearer <key>' header.",
                status=401,
                code="invalid_api_key",
            )
        if self._api_key is not None and not hmac.compare_digest(
            key.encode("utf-8"), self._api_key.encode("utf-8")
        ):
            raise EmulatorError("Incorrect API key provided.", status=401, code="invalid_api_key")

    async def azure_generations(self, request: Request) -> Response:
        """``POST /openai/deployments/{deployment}/images/generations?api-version=...``
        and ``POST /openai/v1/images/generations``: Azure's URLs of the same answer."""
        check_api_version(request, v1="deployment" not in request.path_params)
        return await self.generations(request)

    async def azure_edits(self, request: Request) -> Response:
        """``POST /openai/deployments/{deployment}/images/edits?api-version=...`` and
        ``POST /openai/v1/images/edits``."""
        check_api_version(request, v1="deployment" not in request.path_params)
        return await self.edits(request)

    async def generations(self, request: Request) -> Response:
        """``POST /v1/images/generations``."""
        self.authenticate(request)
        faults = faults_for(request, self.stats)
        return await self._answer(request, await read_generation(request), faults)

    async def edits(self, request: Request) -> Response:
        """``POST /v1/images/edits``."""
        self.authenticate(request)
        faults = faults_for(request, self.stats)
        return await self._answer(request, await read_edit(request), faults)

    async def legacy_generations(self, request: Request) -> Response:
        """``POST /openai/v1/images/generations``: TTAPI's synchronous dall-e-3 endpoint,
        its answer wrapped as ``{"status": "SUCCESS", "message": "success", "data": ...}``.
        """
        self.authenticate(request)
        faults_for(request, self.stats)  # only `status` applies to a synchronous answer
        image_request = await read_generation(request, legacy=True)
        self.stats.count_generation(image_request.n)
        body = await self._body(request, image_request)
        return JSONResponse({"status": "SUCCESS", "message": "success", "data": body})

    async def file(self, request: Request) -> Response:
        """``GET /v1/emulator/files/{name}``: an image of a URL answer (no key needed)."""
        found = self.files.get(request.path_params["name"])
        if found is None:
            raise EmulatorError(
                "No such file: it never existed or was evicted.", status=404, code="not_found"
            )
        content, media_type = found
        return Response(content, media_type=media_type)

    async def _answer(
        self, request: Request, image_request: ImageRequest, faults: FaultSpec
    ) -> Response:
        self.stats.count_generation(image_request.n)
        if image_request.stream and not faults.wrong_content_type:
            return stream_response(
                sse_events(image_request, step_delay=self.step_delay),
                faults,
                request=request,
                request_id=getattr(request.state, "request_id", None) or new_request_id(),
                stats=self.stats,
            )
        return JSONResponse(await self._body(request, image_request))

    async def _body(self, request: Request, image_request: ImageRequest) -> dict[str, Any]:
        def publish(content: bytes, media_type: str) -> str:
            name = self.files.add(content, media_type)
            return str(request.url_for(FILE_ROUTE, name=name))

        return await images_body(image_request, publish=publish, step_delay=self.step_delay)


def _error_response(exc: EmulatorError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _on_emulator_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmulatorError)
    return _error_response(exc)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404, 405, unparsable multipart) as the OpenAI error JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message, code = f"Invalid URL ({request.method} {request.url.path})", "unknown_url"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
        code = "method_not_allowed"
    else:
        message, code = str(exc.detail), None
    return _error_response(
        EmulatorError(message, status=exc.status_code, code=code, headers=exc.headers)
    )


async def _on_client_disconnect(request: Request, exc: Exception) -> Response:
    """The client went away while its request body was being read (a cancelled request):
    nobody is left to answer, and it is no error of the emulator's."""
    return Response(status_code=499)


async def _on_server_error(request: Request, exc: Exception) -> Response:
    """A bug in the emulator: 500 with the error JSON (outside the request-id middleware,
    so the id is added here)."""
    body = error_body("The emulator failed on this request.", type="server_error")
    return JSONResponse(body, status_code=500, headers={"x-request-id": new_request_id()})


def create_app(
    *,
    step_delay: float = 0.0,
    api_key: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    default_fault: str | None = None,
    azure: bool = False,
) -> Starlette:
    """The emulator as a Starlette ASGI application.

    Routes: ``POST /v1/images/generations``, ``POST /v1/images/edits``,
    ``POST /openai/v1/images/generations`` (TTAPI's legacy dall-e-3 endpoint),
    ``GET /v1/emulator/files/{name}`` (images of ``response_format: "url"`` answers), and
    the Responses API image tool, ``POST /v1/responses`` and ``GET /v1/responses/{id}``
    (``_responses_api.py``). Limits (docs/hostile-servers.md): request bodies, upload
    pixels, render caches.

    ``step_delay`` is the pause in seconds before each streamed event (and per image of a
    synchronous answer). With ``api_key`` only that key is accepted; without it any
    non-empty key is. A request body over ``max_body_bytes`` is answered with 413.

    ``azure=True`` serves Azure OpenAI instead (docs/azure.md): ``POST
    /openai/deployments/{deployment}/images/generations`` (and ``/edits``) with a dated
    ``api-version`` query, the v1 surface ``/openai/v1/images/...``, the Responses API at
    ``/openai/responses`` and ``/openai/v1/responses`` (which need the
    ``x-ms-oai-image-generation-deployment`` header) with Azure's event order; the key
    in ``api-key`` (or a bearer token); rate-limit headers reading ``-1``.

    A request chooses faults with the ``X-Emulator-Fault`` header or ``?fault=``
    (``_faults.py``, docs/emulator.md); ``default_fault`` is the spec applied to every
    request that names none (``app.state.emulator.default_fault`` changes it later).
    ``app.state.stream_stats`` is the :class:`~ttstream.emulator.StreamStats` of the
    app: requests per fault spec, bytes yielded per stream (by ``x-request-id``), the
    streams open now, the requests in flight and the images generated.

    Raises:
        ValidationError: a ``step_delay`` that is no finite number of seconds >= 0 (a
            ``ValueError``).
        FaultSpecError: a ``default_fault`` that is no fault spec (a ``ValueError``).
    """
    require_non_negative("step_delay", step_delay, "seconds")
    emulator = _Emulator(
        step_delay=step_delay, api_key=api_key, default_fault=default_fault, azure=azure
    )
    responses = ResponsesRoutes(
        step_delay=step_delay,
        stats=emulator.stats,
        authenticate=emulator.authenticate,
        azure=azure,
    )
    routes = (
        _azure_routes(emulator, responses)
        if azure
        else [
            Route("/v1/responses", responses.create, methods=["POST"]),
            Route("/v1/responses/{response_id}", responses.retrieve, methods=["GET"]),
            Route("/v1/images/generations", emulator.generations, methods=["POST"]),
            Route("/v1/images/edits", emulator.edits, methods=["POST"]),
            Route("/openai/v1/images/generations", emulator.legacy_generations, methods=["POST"]),
            Route("/v1/emulator/files/{name}", emulator.file, methods=["GET"], name=FILE_ROUTE),
        ]
    )
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(_InFlightMiddleware, stats=emulator.stats),
            Middleware(_DefaultFaultMiddleware, emulator=emulator),
            Middleware(_RequestIdMiddleware, extra_headers=RATE_LIMIT_HEADERS if azure else ()),
            Middleware(_BodyLimitMiddleware, max_bytes=max_body_bytes),
        ],
        exception_handlers={
            EmulatorError: _on_emulator_error,
            HTTPException: _on_http_exception,
            ClientDisconnect: _on_client_disconnect,
            Exception: _on_server_error,
        },
    )
    app.state.emulator = emulator
    app.state.stream_stats = emulator.stats
    quiet_emulated_disconnects()
    return app


def _azure_routes(emulator: _Emulator, responses: ResponsesRoutes) -> list[Route]:
    deployment = "/openai/deployments/{deployment}"
    routes = [
        Route(f"{deployment}/images/generations", emulator.azure_generations, methods=["POST"]),
        Route(f"{deployment}/images/edits", emulator.azure_edits, methods=["POST"]),
        Route("/openai/v1/images/generations", emulator.azure_generations, methods=["POST"]),
        Route("/openai/v1/images/edits", emulator.azure_edits, methods=["POST"]),
        Route("/v1/emulator/files/{name}", emulator.file, methods=["GET"], name=FILE_ROUTE),
    ]
    for root in ("/openai", "/openai/v1"):
        routes += [
            Route(f"{root}/responses", responses.create, methods=["POST"]),
            Route(f"{root}/responses/{{response_id}}", responses.retrieve, methods=["GET"]),
        ]
    return routes
