"""AsyncClient: builds Images API requests, owns the HTTP client, retries before the stream.

Services (docs/sse.md and README, "Using a real API"): TTAPI at
``https://api.ttapi.io/v1`` with ``TT-API-KEY: <key>``, and OpenAI or any compatible
server with ``Authorization: Bearer <key>``. The key goes into each request's headers
only: the HTTP client has no default credentials, redirects are not followed by
ttstream's own HTTP client (a caller's client that follows them never carries the key
to another origin), and it never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Self, TypedDict, Unpack

import anyio
import attrs
import httpx2
from anyio.abc import AsyncResource

from . import params as _params
from ._body import ACCEPT_ENCODING, read_body
from ._bounds import (
    CLIENT_TIMEOUT,
    ClientTimeout,
    close_bounded,
    require_int,
    require_timeout,
    stream_timeout,
    validate_seconds,
)
from ._connect import check_api_key, connection_error, follow_redirects, send, status_error
from ._eventsource import EventSource
from ._exceptions import (
    APITimeoutError,
    DownloadRefusedError,
    ValidationError,
)
from ._headers import HeaderValues, QueryValues, RequestExtras, merge_headers, sendable
from ._imagehook import image_shape
from ._interpret import ImagesInterpreter
from ._otel import generation
from ._reconnect import ReconnectPolicy, require_policy, stream_policy
from ._request import (
    ImageInput,
    Upload,
    as_list,
    check_inputs,
    checked_body,
    form_fields,
    json_body,
    load_images,
    merge_extra_body,
    multipart_files,
)
from ._responses_client import Responses
from ._secrets import hidden, install_log_filter, register
from ._signature import forwards_to
from ._transport import http_client as new_http_client
from ._version import USER_AGENT
from .batch import Batch, BatchOptions
from .events import Completed, ImageEvent, image_of
from .params import EditParameters, GenerationParameters
from .sse import DEFAULT_MAX_EVENT_BYTES
from .stream import ImageStream

__all__ = [
    "CLIENT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MODEL",
    "DEFAULT_TIMEOUT",
    "OPENAI_BASE_URL",
    "TTAPI_BASE_URL",
    "AsyncClient",
    "Auth",
    "ClientOptions",
    "ClientTimeout",
    "ConnectionOptions",
    "CopyOptions",
]

logger = logging.getLogger("ttstream")

TTAPI_BASE_URL = "https://api.ttapi.io/v1"
OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-image-2"
DEFAULT_RECONNECT = ReconnectPolicy()
DEFAULT_TIMEOUT = httpx2.Timeout(connect=5.0, read=300.0, write=60.0, pool=30.0)
"""5 s to connect; 5 minutes of silence between bytes before a read timeout, since a
high-quality generation can stay silent for over two minutes (docs/sse.md)."""

Auth = Literal["auto", "tt-api-key", "bearer"]
_AUTH_CHOICES = ("auto", "tt-api-key", "bearer")
DEFAULT_MAX_CONNECTIONS = 100
"""The connections the HTTP client ttstream creates opens at most (``max_connections=``)."""
DEFAULT_DOWNLOAD_TIMEOUT = 300.0
"""Seconds ``fetch_image`` may take in all, redirects included, unless told otherwise."""
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
# How to give a key that is missing (ValidationError.missing).
_GIVE_KEY = (
    "pass the key as the first argument, or set TTAPI_API_KEY or OPENAI_API_KEY (with no "
    "key, ttstream.emulator.api_or_emulator() runs the built-in emulator)"
)


class ConnectionOptions(TypedDict, total=False):
    """The options of every client besides its credentials and its URL, as
    :class:`AsyncClient` documents them: what ``AsyncAzureClient`` passes on to it as
    ``**options`` (PEP 692). The defaults are :class:`AsyncClient`'s."""

    timeout: float | httpx2.Timeout
    max_retries: int
    http_client: httpx2.AsyncClient | None
    max_event_bytes: int
    reconnect: ReconnectPolicy
    deadline: float | None
    max_connections: int
    default_headers: HeaderValues | None
    default_query: QueryValues | None


class ClientOptions(ConnectionOptions, total=False):
    """Every keyword of :class:`AsyncClient`: what the sync :class:`~ttstream.Client`
    passes on to it as ``**options``."""

    base_url: str | None
    auth: Auth


class CopyOptions(ClientOptions, total=False):
    """The keywords of :meth:`AsyncClient.with_options` (and ``copy``): the client's
    own (but ``max_connections``: a copy shares the pool), its ``api_key``, and
    openai's ``set_default_headers`` / ``set_default_query``, which replace the
    client's where ``default_headers`` / ``default_query`` are merged over them."""

    api_key: str | None
    set_default_headers: HeaderValues | None
    set_default_query: QueryValues | None


@attrs.frozen
class _Made:
    """How a client was made, for :meth:`AsyncClient.with_options`: its constructor's
    ``arguments`` as resolved (the key found in the environment, the base URL...;
    never shown: they hold the key), whether it created its HTTP client (and so closes
    it), and whether its ``auth`` was ``"auto"`` (``reauth``: decided again for a copy
    with another base URL or key) with a key from ``TTAPI_API_KEY`` (``ttapi_env``)."""

    arguments: Mapping[str, Any] = attrs.field(repr=False)
    owns_http_client: bool
    reauth: bool = False
    ttapi_env: bool = False


@attrs.frozen
class _Prepared:
    """A request body built once: ``path`` under the base URL, the bytes, their type."""

    path: str
    content: bytes = attrs.field(repr=lambda content: f"<{len(content)} bytes>")
    content_type: str


def _is_ttapi(base_url: str) -> bool:
    host = httpx2.URL(base_url).host  # checked by http_url before: the parser requests use
    return host == "ttapi.io" or host.endswith(".ttapi.io")


class AsyncClient(AsyncResource):
    """The entry point: ``async with ttstream.AsyncClient() as client``.

    Args:
        api_key: the key; else ``TTAPI_API_KEY`` (TTAPI, ``TT-API-KEY`` header), else
            ``OPENAI_API_KEY`` (OpenAI, ``Authorization: Bearer``).
        base_url: the API root, e.g. ``https://api.openai.com/v1``; defaults to
            ``TTAPI_BASE_URL`` or ``OPENAI_BASE_URL`` (whichever goes with the key's
            variable), else that service's URL (TTAPI's for an explicit key). No query
            or fragment: ``default_query`` carries query parameters.
        auth: ``"tt-api-key"``, ``"bearer"`` or ``"auto"``: ``TT-API-KEY`` for a
            ``*.ttapi.io`` base URL or a ``TTAPI_API_KEY`` key, ``Bearer`` otherwise.
        timeout: seconds (every phase; a finite number > 0) or an ``httpx2.Timeout``;
            default :data:`DEFAULT_TIMEOUT`.
        max_retries: retries before the stream starts (connection errors, timeouts,
            408, 409, 429, >= 500), with the official SDKs' delays.
        http_client: an ``httpx2.AsyncClient`` to use; it is not closed by this client.
            An ``httpx.AsyncClient`` (the old httpx package) is refused.
        max_event_bytes: the largest event (or non-streaming body per image) accepted.
        reconnect: how a stream that broke after it started reconnects (resuming with
            ``Last-Event-ID`` when the server sent ids; regenerating only if allowed).
        deadline: seconds one stream may take in all, from its request to its last
            event, or ``None``; overridable per call.
        max_connections: the most connections open at once (default
            :data:`DEFAULT_MAX_CONNECTIONS`, 100) in the HTTP client ttstream creates;
            a request past it waits up to the ``pool`` timeout, then fails with
            ``APITimeoutError(timeout="pool")`` (docs/errors.md). Ignored with
            ``http_client=`` (set ``limits=`` on yours).
        default_headers: headers sent with every API request of this client (Images
            API, Responses API, resumes, retries and reconnections), over ttstream's own
            (``User-Agent``, the key's header...); a header given as ``None`` is not sent
            at all. Not sent with :meth:`fetch_image`, which fetches from another host.
            The value of a header that carries a key (``Authorization``, ``api-key``...)
            is redacted from reprs, logs and errors as the client's key is.
        default_query: query parameters added to the URL of every API request of this
            client: str, int, float or bool values (bools as ``true``/``false``); a
            parameter given as ``None`` is left out.

    Raises:
        ValidationError: no key was found, a key with whitespace (a newline read from a
            file), control or non-ASCII characters (the key is not echoed), ``auth`` or
            ``max_connections`` is not one of its values, ``timeout`` is neither a
            finite number of seconds > 0 nor an ``httpx2.Timeout``, ``reconnect`` is not
            a :class:`~ttstream.ReconnectPolicy`, ``http_client`` is not an
            ``httpx2.AsyncClient``, or ``base_url`` is no http(s) URL or has a query or
            fragment (not shown); ``default_headers`` that are not a mapping of
            header names to str values (without CR or LF) or ``None``, or a
            ``default_query`` that is not a mapping of str names to str, int, float or
            bool values or ``None``.
    """

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
        default_headers: HeaderValues | None = None,
        default_query: QueryValues | None = None,
    ) -> None:
        from_ttapi_env = False
        if api_key is None:
            api_key = os.environ.get("TTAPI_API_KEY") or None
            from_ttapi_env = api_key is not None
            if from_ttapi_env:
                base_url = base_url or os.environ.get("TTAPI_BASE_URL") or None
            else:
                api_key = os.environ.get("OPENAI_API_KEY") or None
                if api_key is not None:
                    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
        if not api_key:
            raise ValidationError.missing("api_key", api_key, _GIVE_KEY)
        check_api_key("api_key", api_key)
        if auth not in _AUTH_CHOICES:  # a key passed here by mistake is not echoed
            choices = "one of " + ", ".join(map(repr, _AUTH_CHOICES))
            raise ValidationError("auth", hidden(auth), choices)
        require_int("max_retries", max_retries, 0)
        require_int("max_event_bytes", max_event_bytes, 1, "bytes")
        validate_seconds("deadline", deadline)
        checked_timeout = require_timeout("timeout", timeout)
        if http_client is not None:
            check_http_client(http_client)
        require_int("max_connections", max_connections, 1)
        self.base_url = (base_url or TTAPI_BASE_URL).rstrip("/")
        try:
            http_url(self.base_url)
        except ValueError as exc:
            allowed = f"an http(s) URL such as {OPENAI_BASE_URL!r} ({exc})"
            raise ValidationError("base_url", self.base_url, allowed) from None
        if (head := self.base_url.partition("?")[0].partition("#")[0]) != self.base_url:
            raise ValidationError(  # a query may carry a key: not shown
                "base_url",
                f"{head}<its query or fragment, not shown>",
                "a URL without a query or fragment ({base_url}/{path} is sent): pass query "
                "parameters as default_query=",
            )
        auto_auth = auth == "auto"
        if auth == "auto":
            auth = "tt-api-key" if _is_ttapi(self.base_url) or from_ttapi_env else "bearer"
        self.auth: Auth = auth
        self.max_retries = max_retries
        self.max_event_bytes = max_event_bytes
        self.reconnect = require_policy(reconnect)
        self.deadline = deadline
        self.timeout: httpx2.Timeout = checked_timeout
        self.default_model = DEFAULT_MODEL
        """The model of a request that names none."""
        self._extras = RequestExtras.checked(
            {"TT-API-KEY": api_key}
            if auth == "tt-api-key"
            else {"Authorization": f"Bearer {api_key}"},
            default_headers,
            default_query,
        )
        register(self, api_key)  # redacted from every ttstream error and log line
        install_log_filter()  # hpack logs headers at DEBUG, httpx2 URLs at INFO
        self._made = _Made(
            {
                "api_key": api_key,
                "base_url": self.base_url,
                "auth": auth,
                "timeout": self.timeout,
                "max_retries": max_retries,
                "max_event_bytes": max_event_bytes,
                "reconnect": self.reconnect,
                "deadline": deadline,
                "default_headers": default_headers,
                "default_query": default_query,
            },
            owns_http_client=http_client is None,
            reauth=auto_auth,
            ttapi_env=from_ttapi_env,
        )
        self._http = http_client or new_http_client(
            timeout=self.timeout,
            follow_redirects=False,
            limits=httpx2.Limits(
                max_connections=max_connections,
                max_keepalive_connections=min(20, max_connections),
            ),
        )  # aiohttp on asyncio with the aiohttp extra; httpcore otherwise
        self.responses = Responses(self)
        """The Responses API image tool: ``stream()`` and ``resume()`` (docs/responses.md)."""

    def __repr__(self) -> str:
        return f"<AsyncClient base_url={self.base_url!r} auth={self.auth!r}>"

    @property
    def http_client(self) -> httpx2.AsyncClient:
        """The ``httpx2.AsyncClient`` every request goes through (yours, if you passed
        one): for its event hooks, e.g. counting the bytes received. Never give it
        default credentials: the key is added to each API request only."""
        return self._http

    async def aclose(self) -> None:
        """Closes the HTTP client if this client created it."""
        if self._made.owns_http_client:
            await self._http.aclose()

    _CREDENTIALS: ClassVar[tuple[str, ...]] = ("api_key",)
    """The constructor's credential arguments: one given to :meth:`with_options`
    replaces all of the client's (``AsyncAzureClient``: a key or a token)."""

    @forwards_to(__init__, options=ClientOptions)
    def with_options(
        self,
        *,
        api_key: str | None = None,
        set_default_headers: HeaderValues | None = None,
        set_default_query: QueryValues | None = None,
        **overrides: Unpack[ClientOptions],
    ) -> Self:
        """A new client with this one's settings but those given (openai-python's
        ``client.with_options(...)``, also named ``copy``), sharing this client's HTTP
        client and so its connection pool: closing the copy never closes it (closing
        this client does, if it created it; the copy is then unusable).

        Each keyword is the constructor's (``api_key``, ``base_url``, ``timeout``,
        ``max_retries``, ``default_headers``...) and is checked as there. Not given, a
        setting is this client's as resolved (the key and base URL found in the
        environment, not read again). ``default_headers`` and ``default_query`` are
        merged over this client's (header names without regard to case; a ``None``
        value stops the copy sending one); ``set_default_headers`` and
        ``set_default_query`` replace them. ``auth`` stays this client's unless given,
        but for a client made with ``auth="auto"``, which decides again for a copy given
        another ``base_url`` or ``api_key``. A key given here is redacted from reprs,
        logs and errors as the constructor's.

        Raises:
            TypeError: a keyword that is no setting (``backend``...), naming the closest
                one.
            ValidationError: a bad value (as the constructor), ``max_connections`` (a
                copy shares the pool: pass ``http_client=`` for another), or both
                ``default_headers`` and ``set_default_headers`` (or ``default_query``
                and ``set_default_query``).
        """
        given: dict[str, Any] = dict(overrides)
        if api_key is not None:
            given["api_key"] = api_key
        return self._copy_with(given, set_default_headers, set_default_query)

    copy = with_options

    def _copy_with(
        self, given: dict[str, Any], set_default_headers: object, set_default_query: object
    ) -> Self:
        """:meth:`with_options` of the constructor's keywords ``given``."""
        if "max_connections" in given:
            raise ValidationError(
                "max_connections",
                given["max_connections"],
                "left out: a copy shares its client's connection pool (pass http_client= "
                "for another)",
            )
        made = self._made
        arguments = dict(made.arguments)
        if any(name in given for name in self._CREDENTIALS):
            for name in self._CREDENTIALS:
                arguments.pop(name, None)
        for name, replacing, merge in (
            ("default_headers", set_default_headers, merge_headers),
            ("default_query", set_default_query, _merge_query),
        ):
            merged = given.pop(name, None)
            if merged is not None and replacing is not None:
                allowed = f"None when set_{name} is given (merge, or replace: not both)"
                raise ValidationError(name, hidden(merged), allowed)
            if replacing is not None:
                arguments[name] = replacing
            elif merged is not None and isinstance(merged, Mapping):
                earlier = arguments.get(name)
                arguments[name] = merge(earlier or {}, merged)
            elif merged is not None:  # not a mapping: the constructor says so
                arguments[name] = merged
        reauth = made.reauth and "auth" not in given
        if reauth and ("base_url" in given or "api_key" in given):
            keeps_ttapi_key = made.ttapi_env and "api_key" not in given
            arguments["auth"] = "tt-api-key" if keeps_ttapi_key else "auto"
        http_client = given.pop("http_client", None) or self._http
        arguments.update(given)
        copy = type(self)(http_client=http_client, **arguments)
        copy._made = attrs.evolve(
            copy._made,
            reauth=reauth,
            ttapi_env=made.ttapi_env and "api_key" not in given,
        )
        return copy

    @_params.keywords(GenerationParameters)
    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        deadline: float | None = None,
        reconnect: ReconnectPolicy | None = None,
        timeout: float | httpx2.Timeout | ClientTimeout = CLIENT_TIMEOUT,
        extra_headers: HeaderValues | None = None,
        extra_query: QueryValues | None = None,
        extra_body: Mapping[str, object] | None = None,
        **params: Unpack[GenerationParameters],
    ) -> ImageStream:
        """Prepares ``POST {base_url}/images/generations``; returns its :class:`ImageStream`,
        which sends the request when it is entered (``async with``) or first iterated.

        ``model`` defaults to :data:`DEFAULT_MODEL` (``AsyncAzureClient``: the
        deployment's model, and not sent). ``params`` are the API's own parameters, each a
        keyword of its own (:class:`ttstream.params.GenerationParameters`: ``n``, ``size``,
        ``quality``, ``partial_images``, ``output_format``, ...); ``None`` leaves one out.
        ``stream`` defaults to ``True`` for streaming models (gpt-image-*, and unknown
        models) and ``False`` for dall-e. ``extra_body`` is merged into the top level of
        the JSON body as it is, unchecked: for a parameter or a value ttstream does not
        know yet.
        ``deadline`` and ``reconnect`` override the client's for this stream, and so
        does ``timeout`` (seconds for every phase, a finite number > 0, or an
        ``httpx2.Timeout``, as the client's ``timeout=``; ``None`` is refused): it
        bounds each request of the stream, its retries, reconnections and resumes
        included, in place of the client's, which is left as it is.
        ``extra_headers`` and ``extra_query`` are merged over the client's
        ``default_headers`` and ``default_query`` for this stream's requests (a header
        or query parameter given as ``None`` is not sent, even one the client's defaults
        set), as the client documents them.

        Raises:
            TypeError: a keyword that is no parameter (a misspelt one, say).
            ValidationError: at once, before any connection, for a parameter the model
                does not take (:mod:`ttstream.params`, docs/models.md), or
                ``extra_headers`` / ``extra_query`` of the wrong shape (as the client's
                ``default_headers`` / ``default_query``), a ``deadline`` or ``timeout``
                that is not a finite number of seconds > 0 (``timeout``: or an
                ``httpx2.Timeout``).
        """
        request_timeout = stream_timeout(timeout, self.timeout)
        extras = self.request_extras(extra_headers, extra_query)
        body = checked_body("generation", prompt, self._model(model), params)
        wire = self._wire(body, model, extra_body)
        content = json_body(wire)

        async def prepare() -> _Prepared:
            return _Prepared("images/generations", content, "application/json")

        return self._stream(
            prepare, wire, "generation", (deadline, request_timeout), reconnect, extras
        )

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
        timeout: float | httpx2.Timeout | ClientTimeout = CLIENT_TIMEOUT,
        extra_headers: HeaderValues | None = None,
        extra_query: QueryValues | None = None,
        extra_body: Mapping[str, object] | None = None,
        **params: Unpack[EditParameters],
    ) -> ImageStream:
        """Prepares ``POST {base_url}/images/edits``; returns its :class:`ImageStream`,
        which sends the request when it is entered (``async with``) or first iterated.

        ``images`` is one input or a list: file paths, ``bytes`` or binary file objects
        (sent as ``multipart/form-data``: ``image``, or ``image[]`` for several), or
        references ``{"image_url": ...}`` / ``{"file_id": ...}`` (sent as JSON, as TTAPI
        documents). ``mask`` is one input of the same kind. Files are read when the
        stream opens. ``params`` (:class:`ttstream.params.EditParameters`) and
        ``extra_body`` (sent as form fields with files), ``extra_headers`` and
        ``extra_query`` as for :meth:`generate`.

        Raises:
            TypeError: a keyword that is no parameter.
            ValidationError: a parameter the model does not take: at once for what can
                be checked without reading files, when the stream opens for the rest;
                also then, a path in ``images`` or ``mask`` that cannot be read (none, a
                directory, a device or a pipe, no permission), named with the system's
                reason; ``extra_headers`` / ``extra_query``, ``deadline`` and ``timeout``
                as for :meth:`generate`.
        """
        request_timeout = stream_timeout(timeout, self.timeout)
        extras = self.request_extras(extra_headers, extra_query)
        inputs = as_list(images)
        check_inputs(inputs, mask)  # their kinds; the files are read when the stream opens
        known = [
            bytes(i) if isinstance(i, bytes | bytearray | memoryview) else None for i in inputs
        ]
        body = checked_body("edit", prompt, self._model(model), params, mask=mask, images=known)
        wire = self._wire(body, model, extra_body)

        async def prepare() -> _Prepared:
            loaded, loaded_mask = await load_images(inputs, mask)
            if not (loaded and isinstance(loaded[0], Upload)):
                references = {"images": loaded, "mask": loaded_mask}
                content = json_body({**wire, **references})
                return _Prepared("images/edits", content, "application/json")
            uploads = [item for item in loaded if isinstance(item, Upload)]
            _params.validate("edit", body["model"], body, images=[u.content for u in uploads])
            assert loaded_mask is None or isinstance(loaded_mask, Upload)
            form = httpx2.Request(
                "POST",
                self.base_url,
                data=form_fields(wire),
                files=multipart_files(uploads, loaded_mask),
            )
            return _Prepared("images/edits", form.read(), form.headers["Content-Type"])

        return self._stream(prepare, wire, "edit", (deadline, request_timeout), reconnect, extras)

    @forwards_to(Batch.__init__, options=BatchOptions)
    def batch(self, **options: Unpack[BatchOptions]) -> Batch:
        """A :class:`~ttstream.batch.Batch` of many jobs on this client (``async with``):
        ``concurrency=``, ``images_per_minute=``, ``requests_per_minute=``,
        ``journal=``, ``out=`` (docs/batch.md).

        Raises:
            ValidationError: a bad option.
        """
        return Batch(self, **options)

    async def fetch_image(
        self,
        event: Completed,
        *,
        deadline: float | None = None,
        url_filter: Callable[[str], bool] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - deprecated, for deadline
    ) -> bytes:
        """The image file of ``event``: its decoded ``b64_json``, or, for a result
        returned as a URL (``response_format="url"``; such URLs expire after 60
        minutes), the bytes downloaded from ``event.url``.

        The URL is fetched as the server gave it: the API server is trusted to name it.
        The download is a bare ``GET`` through this client's HTTP client (its transport
        and proxies), without its default headers, cookies or auth, and never with the
        key, nor with this client's ``default_headers`` and ``default_query``: they are
        for API requests, and an image URL names another host (a storage server).
        Redirects are followed only to ``http``/``https`` URLs, never from ``https`` to
        ``http``, at most 5 times. ``url_filter(url)`` is called with the URL and with
        every redirect target before it is fetched: returning ``False``
        refuses it (e.g. a server-side application refusing private addresses; an
        exception it raises propagates as it is). The body is decoded within
        ``max_event_bytes`` (docs/hostile-servers.md, "Downloads").

        Args:
            deadline: seconds the whole download may take, redirects included; default
                the client's ``deadline``, else :data:`DEFAULT_DOWNLOAD_TIMEOUT` (300);
                the smaller of this and the client's ``deadline`` when both are set.
            timeout: the former name of ``deadline``, deprecated (``DeprecationWarning``);
                when both are given the smaller counts.

        Raises:
            APIStatusError: the download was answered with an HTTP error status.
            APIConnectionError, APITimeoutError: the download failed, or did not end in
                time (``.timeout == "deadline"``).
            DownloadRefusedError: a URL was refused (see above).
            EventTooLargeError: the image is larger than ``max_event_bytes``.
            ProtocolError: a ``Content-Encoding`` other than gzip/deflate, or a body
                that does not decode as its coding.
            ValidationError: ``event`` is no image event (``None``, a URL string), or
                ``deadline`` is not a positive finite number.
        """
        if not isinstance(event, ImageEvent):
            allowed = "a Completed event of a stream (or a PartialImage: its preview)"
            raise ValidationError("event", event, allowed)
        deadline = deprecated_timeout(timeout, deadline, stacklevel=3)
        validate_seconds("deadline", deadline)
        if image_of(event) is not None or event.url is None:
            return event.image_bytes
        limits = [t for t in (deadline, self.deadline) if t is not None]
        seconds = min(limits) if limits else DEFAULT_DOWNLOAD_TIMEOUT
        with anyio.move_on_after(seconds):
            return await self._download(event.url, url_filter)
        raise APITimeoutError(
            f"downloading the image took longer than {seconds} s", timeout="deadline"
        )

    async def _download(self, url: str, url_filter: Callable[[str], bool] | None) -> bytes:
        given = [url]  # the URL of the current hop as given: the event's, then a Location
        target = [_download_url(url, None, url_filter)]  # the URL of the current hop

        def is_redirect(response: httpx2.Response) -> bool:
            if response.status_code not in _REDIRECTS:
                return False
            if not response.headers.get("location"):
                raise DownloadRefusedError("a redirect without Location", url=given[0])
            return True

        def redirect(response: httpx2.Response, request: httpx2.Request) -> httpx2.Request:
            given[0] = response.headers["location"]
            target[0] = _download_url(given[0], request.url, url_filter)
            return self._download_request(target[0])

        try:
            response = await follow_redirects(
                self._http,
                self._download_request(target[0]),
                is_redirect=is_redirect,
                redirect=redirect,
                max_redirects=MAX_REDIRECTS,
                too_many=lambda response: DownloadRefusedError(
                    f"more than {MAX_REDIRECTS} redirects", url=response.headers["location"]
                ),
                auth=None,
            )
            try:
                if not response.is_success:
                    raise await status_error(response)
                return await read_body(response, limit=self.max_event_bytes)
            finally:
                await close_bounded(response.aclose)  # released even past the deadline
        except httpx2.TransportError as exc:
            raise connection_error(exc, target[0], "downloading the image from") from exc

    def _download_request(self, url: httpx2.URL) -> httpx2.Request:
        """A GET of an image: no credentials, ttstream's ``Accept-Encoding``."""
        return httpx2.Request(
            "GET",
            url,
            headers={"Accept-Encoding": ACCEPT_ENCODING, "User-Agent": USER_AGENT},
            extensions={"timeout": self.timeout.as_dict()},
        )

    def _model(self, model: str | None) -> str:
        """The model of a request: the given one, else the client's :attr:`default_model`."""
        return self.default_model if model is None else model

    def _wire(
        self, body: Mapping[str, Any], model: str | None, extra_body: Mapping[str, object] | None
    ) -> dict[str, Any]:
        """The body as sent, ``extra_body`` merged over it; ``model`` is what the caller
        gave (``None``: the default, which this client sends; ``AsyncAzureClient`` does
        not)."""
        return _wire(body, extra_body)

    def request_extras(self, extra_headers: object, extra_query: object) -> RequestExtras:
        """A call's ``extra_headers`` and ``extra_query`` merged over the client's
        ``default_headers`` and ``default_query``: what each request of its stream sends.

        Raises:
            ValidationError: either of the wrong shape (see :meth:`generate`).
        """
        return self._extras.over(extra_headers, extra_query)

    def endpoint_url(
        self, path: str, query: Mapping[str, str] | None = None, *, model: str | None = None
    ) -> str:
        """The URL of an API ``path`` (``"images/generations"``, ``"responses"``) with
        ``query``: ``{base_url}/{path}?{query}``. ``AsyncAzureClient`` builds Azure's
        deployment URLs here (``model``, the model a request names, if any, names the
        deployment when it has none; unused here)."""
        url = f"{self.base_url}/{path}"
        return f"{url}?{urllib.parse.urlencode(query)}" if query else url

    async def auth_headers(self, path: str) -> Mapping[str, str]:
        """The credential headers of one request to ``path``, asked for per request (a
        token provider refreshes them): ``TT-API-KEY`` or ``Authorization: Bearer``,
        added to API requests and to nothing else. They hold the key in clear: never log
        them."""
        return self._extras.credentials

    def _stream(
        self,
        prepare: Callable[[], Awaitable[_Prepared]],
        body: Mapping[str, Any],
        operation: str,
        bounds: tuple[float | None, httpx2.Timeout],
        reconnect: ReconnectPolicy | None,
        extras: RequestExtras,
    ) -> ImageStream:
        """The stream of one request whose fields are ``body`` (as sent), with the
        caller's ``extras``. ``prepare`` runs once, when the stream starts: its body (edit
        files read once), headers and URL are what every retry, resume and regeneration
        sends. ``bounds``: the call's ``deadline`` (``None``: the client's) and the
        ``timeout`` of each of its requests (:func:`~ttstream._bounds.stream_timeout`)."""
        deadline, timeout = bounds
        validate_seconds("deadline", deadline)
        policy = stream_policy(reconnect, self.reconnect)
        n = body.get("n")
        expected_images = n if isinstance(n, int) and n > 0 else 1
        streaming = body.get("stream") is True

        async def start(decode_images: bool) -> EventSource | httpx2.Response:
            prepared = await prepare()
            model = body.get("model")
            url = self.endpoint_url(
                prepared.path, extras.query, model=model if isinstance(model, str) else None
            )
            own = {
                **(await self.auth_headers(prepared.path)),
                "User-Agent": USER_AGENT,
                "Content-Type": prepared.content_type,
            }
            if streaming:
                headers = merge_headers(own, extras.headers)
                return EventSource(
                    self._http,
                    "POST",
                    url,
                    headers=headers,
                    content=prepared.content,
                    reconnect=policy,
                    max_event_bytes=self.max_event_bytes,
                    max_retries=self.max_retries,
                    timeout=timeout,
                    idempotent=False,  # a request sent again is a new, billed generation
                    confirm_progress=True,  # a new preview or image is progress
                    decode_images=decode_images,
                    image_shape=image_shape(url, body),
                )
            request = self._http.build_request(
                "POST",
                url,
                headers=sendable(
                    merge_headers(
                        own,
                        {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING},
                        extras.headers,
                    )
                ),
                content=prepared.content,
                timeout=timeout,
            )
            return await send(self._http, request, max_retries=self.max_retries)

        stream = ImageStream(
            start,
            ImagesInterpreter(expected_images=expected_images),
            operation=operation,
            max_body_bytes=self.max_event_bytes * expected_images,
            deadline=self.deadline if deadline is None else deadline,
        )
        stream.model = str(body.get("model") or self.default_model)
        stream.telemetry = generation(operation, stream.model, self.base_url)
        return stream


def _merge_query(*layers: Mapping[str, object]) -> dict[str, object]:
    """Query parameters merged, later layers winning (names are case-sensitive)."""
    return {name: value for layer in layers for name, value in layer.items()}


def _wire(body: Mapping[str, Any], extra_body: Mapping[str, object] | None) -> dict[str, Any]:
    """The body as sent: ``stream`` only when true (dall-e models do not take it), the
    parameters left out (``None``) dropped, ``extra_body`` merged over the top level."""
    wire = {
        name: value
        for name, value in body.items()
        if value is not None and (name != "stream" or value)
    }
    merge_extra_body(wire, extra_body)
    return wire


def deprecated_timeout(
    timeout: float | None, deadline: float | None, *, stacklevel: int
) -> float | None:
    """``fetch_image``'s ``deadline`` given its deprecated former name ``timeout`` too
    (the smaller when both are set), with a ``DeprecationWarning`` pointing
    ``stacklevel`` frames up when ``timeout`` was used."""
    if timeout is None:
        return deadline
    warnings.warn(
        "fetch_image(timeout=...) is deprecated: pass deadline=... (the same seconds)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    validate_seconds("timeout", timeout)
    return timeout if deadline is None else min(timeout, deadline)


def check_http_client(http_client: object) -> None:
    """Refuses an ``http_client`` that is not an ``httpx2.AsyncClient``: an
    ``httpx.AsyncClient`` of the old ``httpx`` package (recognised by its class's module,
    without importing ``httpx``) is named as such, with what to pass instead.

    Raises:
        ValidationError: ``http_client`` is not an ``httpx2.AsyncClient``.
    """
    if isinstance(http_client, httpx2.AsyncClient):
        return
    package = type(http_client).__module__.partition(".")[0]
    given = f"{package}.{type(http_client).__qualname__}"
    allowed = "an httpx2.AsyncClient"
    if package == "httpx":
        allowed += (
            " (ttstream runs on httpx2, the maintained continuation of httpx: create the"
            " client with httpx2.AsyncClient(...) instead of httpx.AsyncClient(...))"
        )
    raise ValidationError("http_client", given, allowed)


def http_url(url: str, base: httpx2.URL | None = None) -> httpx2.URL:
    """``url`` (relative to ``base``) as an ``httpx2.URL``, checked: the one check of the
    URLs ttstream sends to (base URLs and image downloads).

    Raises:
        ValueError: a malformed URL (a bad IPv6 address, a port that is no number), a
            scheme other than http(s), no host, a port outside 1-65535; the message says
            which.
    """
    try:
        target = httpx2.URL(url) if base is None else base.join(url)
        port = target.port
    except (httpx2.InvalidURL, ValueError, TypeError) as exc:
        raise ValueError(f"a malformed URL ({exc})") from None
    if target.scheme not in ("http", "https"):
        raise ValueError(f"the scheme {target.scheme!r} is not http or https")
    if not target.host:
        raise ValueError("the URL has no host")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} is not from 1 to 65535")
    return target


def _download_url(
    url: str, previous: httpx2.URL | None, url_filter: Callable[[str], bool] | None
) -> httpx2.URL:
    """The URL to fetch next: ``url`` (relative to ``previous``, the URL that redirected
    to it), checked.

    Raises:
        DownloadRefusedError: a malformed URL or port, a scheme other than http(s), a
            downgrade from https to http, or ``url_filter`` returned false.
    """
    try:
        target = http_url(url, previous)
    except ValueError as exc:
        raise DownloadRefusedError(str(exc), url=str(url)) from None
    if previous is not None and previous.scheme == "https" and target.scheme == "http":
        raise DownloadRefusedError("a redirect from https to http", url=str(target))
    if url_filter is not None and not url_filter(str(target)):
        raise DownloadRefusedError("url_filter refused it", url=str(target))
    return target
