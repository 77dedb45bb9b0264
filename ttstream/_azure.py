"""Azure OpenAI: ``AsyncAzureClient`` and its synchronous facade ``AzureClient``.

The same Images API and Responses image tool as :class:`~ttstream.AsyncClient`, at
Azure's URLs and with Azure's credentials (docs/azure.md), with openai-python's
parameter names:

- deployment URLs ``{endpoint}/openai/deployments/{deployment}/images/generations``
  (and ``/images/edits``), with the query ``api-version=...``; the Responses API at
  ``{endpoint}/openai/responses?api-version=...``;
- the v1 surface ``{endpoint}/openai/v1/...`` when ``api_version="v1"`` (or
  ``"preview"``) or no deployment is named: there the deployment is the ``model``;
- ``api-key: <key>``, or ``Authorization: Bearer <token>`` from
  ``azure_ad_token_provider``, called for every stream so that tokens refresh; the
  ``api-key`` header is dropped on a redirect to another origin, as ``Authorization`` is;
- ``model`` is not sent to a deployment URL unless given (the deployment names it);
- the Responses image tool gets ``x-ms-oai-image-generation-deployment: <deployment>``.

Azure's image-tool stream (no ``response.image_generation_call.completed``; the image in
``response.output_item.done`` with ``status: "generating"``) yields the same
``Completed`` events: the Responses interpreter reads both orders.
"""

from __future__ import annotations

import inspect
import os
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Self, Unpack

import attrs

from . import params as _params
from ._checks import require_callable
from ._connect import check_api_key
from ._delegate import Delegated
from ._exceptions import ValidationError
from ._headers import HeaderValues, QueryValues
from ._secrets import hidden, register
from ._signature import forwards_to
from ._sync import Client, LoopOptions
from .client import DEFAULT_MODEL, AsyncClient, ConnectionOptions

__all__ = [
    "AD_TOKEN_VARIABLE",
    "AZURE_KEY_VARIABLE",
    "DEPLOYMENT_HEADER",
    "V1_VERSIONS",
    "AsyncAzureClient",
    "AzureClient",
    "AzureOptions",
    "AzureTarget",
    "SyncAzureOptions",
    "TokenProvider",
]

AZURE_KEY_VARIABLE = "AZURE_OPENAI_API_KEY"
"""The environment variable of the resource's key."""
AD_TOKEN_VARIABLE = "AZURE_OPENAI_AD_TOKEN"
"""The environment variable of an Entra ID token, preferred to the key (openai's order)."""

TokenProvider = Callable[[], str | Awaitable[str]]
"""``azure_ad_token_provider``: a function (sync or async) answering an Entra ID token."""

DEPLOYMENT_HEADER = "x-ms-oai-image-generation-deployment"
"""The header naming the image deployment of a Responses API request on Azure."""
V1_VERSIONS = ("v1", "preview")
"""``api_version`` values that select the v1 surface ``{endpoint}/openai/v1``."""
# Given to AsyncClient with a token provider: never sent (auth_headers() asks the
# provider), and shorter than MIN_SECRET_CHARS, so never registered as a secret.
_PLACEHOLDER_KEY = "entra"
# How to give a setting that is missing (ValidationError.missing).
_GIVE_ENDPOINT = (
    "pass azure_endpoint='https://<resource>.openai.azure.com' or set AZURE_OPENAI_ENDPOINT"
)
_GIVE_KEY = (
    "pass api_key=... or azure_ad_token=..., set AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN, "
    "or pass azure_ad_token_provider=..."
)
# Azure's deployment names: letters, digits, '-', '_' and '.', at most 64 of them; '.'
# and '..' alone would be path steps, not a name.
_DEPLOYMENT = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ENDPOINT_ALLOWED = (
    "an http(s) URL with a host and no user:password@, query or fragment, "
    "e.g. 'https://<resource>.openai.azure.com'"
)


def _checked_endpoint(endpoint: str) -> str:
    """``endpoint`` without its trailing ``/``, checked.

    Raises:
        ValidationError: not an http(s) URL with a host and a valid port; with userinfo,
            a query or a fragment (those never shown), whitespace or control characters.
    """
    if not isinstance(endpoint, str):
        raise ValidationError("azure_endpoint", type(endpoint).__name__, _ENDPOINT_ALLOWED)
    try:
        parts = urllib.parse.urlsplit(endpoint)
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError:  # an unparsable host ("http://[::1"), a port such as 99999
        raise ValidationError("azure_endpoint", endpoint, _ENDPOINT_ALLOWED) from None
    if "@" in parts.netloc:  # user:password@: never echoed
        host = parts.netloc.rpartition("@")[2]
        shown = parts._replace(netloc=f"<userinfo hidden>@{host}").geturl()
        raise ValidationError("azure_endpoint", shown, _ENDPOINT_ALLOWED)
    if "?" in endpoint or "#" in endpoint:  # even empty; never echoed (a ?sig= token)
        shown = endpoint.partition("?")[0].partition("#")[0] + "<query or fragment hidden>"
        raise ValidationError("azure_endpoint", shown, _ENDPOINT_ALLOWED)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(char.isspace() or not char.isprintable() for char in endpoint)
    ):
        raise ValidationError("azure_endpoint", endpoint, _ENDPOINT_ALLOWED)
    return endpoint.rstrip("/")


def _checked_deployment(deployment: str | None, param: str = "azure_deployment") -> str | None:
    """``deployment`` (given as ``param``), checked to be one path segment of Azure's
    characters.

    Raises:
        ValidationError: not a str of 1 to 64 letters, digits, '-', '_' and '.', or '.'
            or '..' alone.
    """
    if deployment is None:
        return None
    if (
        not isinstance(deployment, str)
        or not _DEPLOYMENT.fullmatch(deployment)
        or deployment in (".", "..")
    ):
        raise ValidationError(
            param,
            deployment,
            "None or the deployment's name: 1 to 64 ASCII letters, digits, '-', '_' "
            "and '.' (not '.' or '..' alone)",
        )
    return deployment


_KEY_SOURCES = ("api_key", "azure_ad_token", "azure_ad_token_provider")
_NOT_AZURE = ("api_key", "base_url", "auth")  # what AsyncClient records, Azure sets itself


def _credentials(
    api_key: str | None, azure_ad_token: str | None, provider: TokenProvider | None
) -> tuple[str | None, str | None]:
    """The ``(api_key, azure_ad_token)`` to use, at most one of them (``(None, None)``
    with a ``provider``), as openai resolves them: at most one credential given; with
    none, ``AZURE_OPENAI_AD_TOKEN``, else ``AZURE_OPENAI_API_KEY``.

    Raises:
        ValidationError: two credentials given, none found, a key or token with
            whitespace or non-ASCII characters, a provider that cannot be called (no
            credential is ever shown).
    """
    if provider is not None:  # a provider given by mistake (a token) is named first
        require_callable("azure_ad_token_provider", provider, "a function or None")
    given = [
        (name, value)
        for name, value in zip(_KEY_SOURCES, (api_key, azure_ad_token, provider), strict=True)
        if value is not None
    ]
    if len(given) > 1:
        (first, value), (second, _) = given[:2]
        raise ValidationError(
            first, hidden(value), f"None when {second} is given (one credential, not two)"
        )
    if provider is not None:
        return None, None
    if not given:
        azure_ad_token = os.environ.get(AD_TOKEN_VARIABLE) or None
        if azure_ad_token is None:
            api_key = os.environ.get(AZURE_KEY_VARIABLE) or None
            if not api_key:
                raise ValidationError.missing("api_key", api_key, _GIVE_KEY)
    if azure_ad_token is not None:
        check_api_key("azure_ad_token", azure_ad_token)
    return api_key, azure_ad_token


class AzureOptions(ConnectionOptions, total=False):
    """Every keyword of :class:`AsyncAzureClient`: what :class:`AzureClient` passes on
    to it as ``**options`` (PEP 692). The defaults are :class:`AsyncAzureClient`'s."""

    azure_endpoint: str | None
    azure_deployment: str | None
    api_version: str | None
    azure_ad_token: str | None
    azure_ad_token_provider: TokenProvider | None


class AzureCopyOptions(AzureOptions, total=False):
    """The keywords of :meth:`AsyncAzureClient.with_options` (and ``copy``), as
    :class:`~ttstream.client.CopyOptions` for ``AsyncClient``."""

    api_key: str | None
    set_default_headers: HeaderValues | None
    set_default_query: QueryValues | None


@attrs.frozen
class AzureTarget:
    """Where an :class:`AsyncAzureClient` sends its requests (docs/azure.md): the
    resource's ``azure_endpoint`` (no trailing ``/``), the ``azure_deployment`` (or
    ``None``), the ``api_version``; ``v1``: whether that version selects the v1 surface
    ``{endpoint}/openai/v1``."""

    azure_endpoint: str
    azure_deployment: str | None
    api_version: str
    v1: bool = attrs.field(init=False)

    @v1.default
    def _v1(self) -> bool:
        return self.api_version in V1_VERSIONS


@attrs.define
class _TokenSource:
    """The Entra ID token provider (or ``None``) and the last token it answered, which
    is registered for redaction once (``ttstream._secrets``)."""

    provider: TokenProvider | None
    last: str = ""


class AsyncAzureClient(AsyncClient):
    """``async with ttstream.AsyncAzureClient(azure_endpoint=..., azure_deployment=...)``.

    Args:
        api_key: the resource's key (sent as ``api-key``); else ``AZURE_OPENAI_API_KEY``.
            Not needed with ``azure_ad_token`` or ``azure_ad_token_provider``.
        azure_endpoint: ``https://<resource>.openai.azure.com``; else
            ``AZURE_OPENAI_ENDPOINT``.
        azure_deployment: the image model's deployment (in the URL; on the v1 surface the
            default ``model``; the ``x-ms-oai-image-generation-deployment`` of Responses
            requests).
        api_version: e.g. ``"2025-04-01-preview"``; else ``OPENAI_API_VERSION``;
            ``"v1"`` (the default without a deployment) selects the v1 surface.
        azure_ad_token: an Entra ID token sent as ``Authorization: Bearer <token>``;
            else ``AZURE_OPENAI_AD_TOKEN`` when no credential is given (preferred to
            ``AZURE_OPENAI_API_KEY``, as openai prefers it).
        azure_ad_token_provider: a function, sync or async, answering an Entra ID token,
            called before every stream, whose retries and reconnections send that
            token again (``Authorization: Bearer <token>``).

    ``timeout``, ``max_retries``, ``http_client``, ``max_event_bytes``, ``reconnect``,
    ``deadline``, ``max_connections``, ``default_headers`` and ``default_query`` are as
    :class:`~ttstream.AsyncClient`'s.

    Raises:
        ValidationError: no endpoint, no credential, more than one of ``api_key``,
            ``azure_ad_token`` and ``azure_ad_token_provider``, a deployment with
            no ``api_version``, a key with whitespace or non-ASCII characters (never
            echoed), an endpoint that is not an http(s) URL with a host and without
            ``user:password@`` (never echoed), query or fragment, a deployment name other
            than 1 to 64 letters, digits, ``-``, ``_`` and ``.`` (or ``.``/``..``), an
            option of ``AsyncClient`` out of range, or a ``default_query`` naming
            ``api-version``, which the client sends from ``api_version`` (so does a
            call's ``extra_query`` naming it; not on the v1 surface with
            ``api_version="v1"``, which sends none).
    """

    # The fields of ``azure`` (:class:`AzureTarget`, which says what each one is), read-only.
    azure_endpoint: Delegated[str] = Delegated("azure")
    azure_deployment: Delegated[str | None] = Delegated("azure")
    api_version: Delegated[str] = Delegated("azure")
    v1: Delegated[bool] = Delegated("azure")

    @forwards_to(AsyncClient.__init__, options=ConnectionOptions)
    def __init__(
        self,
        api_key: str | None = None,
        *,
        azure_endpoint: str | None = None,
        azure_deployment: str | None = None,
        api_version: str | None = None,
        azure_ad_token: str | None = None,
        azure_ad_token_provider: TokenProvider | None = None,
        **options: Unpack[ConnectionOptions],
    ) -> None:
        endpoint = azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT") or None
        if not endpoint:
            raise ValidationError.missing("azure_endpoint", endpoint, _GIVE_ENDPOINT)
        endpoint = _checked_endpoint(endpoint)
        azure_deployment = _checked_deployment(azure_deployment)
        api_key, azure_ad_token = _credentials(api_key, azure_ad_token, azure_ad_token_provider)
        api_version = api_version or os.environ.get("OPENAI_API_VERSION") or None
        if api_version is None and azure_deployment is not None:
            raise ValidationError(
                "api_version",
                api_version,
                "given with a deployment: pass api_version='2025-04-01-preview' (or "
                "'v1' for the v1 surface) or set OPENAI_API_VERSION",
            )
        self.azure = AzureTarget(endpoint, azure_deployment, api_version or "v1")
        """The Azure endpoint, deployment and API version (one record: see
        :class:`AzureTarget`); also read as the attributes below."""
        super().__init__(
            api_key or _PLACEHOLDER_KEY,
            base_url=f"{self.azure_endpoint}/openai" + ("/v1" if self.v1 else ""),
            auth="bearer",
            **options,
        )
        self._token = _TokenSource(azure_ad_token_provider)
        credentials = {} if api_key is None else {"api-key": api_key}
        if azure_ad_token is not None:  # one token for every request; redacted like a key
            register(self, azure_ad_token)
            credentials = {"Authorization": f"Bearer {azure_ad_token}"}
        self._extras = self._extras.owning(
            credentials,
            dict.fromkeys(self._version_query, "api_version"),
        )
        kept = {n: v for n, v in self._made.arguments.items() if n not in _NOT_AZURE}
        self._made = attrs.evolve(
            self._made,
            arguments={
                **kept,
                "api_key": api_key,
                "azure_ad_token": azure_ad_token,
                "azure_ad_token_provider": azure_ad_token_provider,
                "azure_endpoint": self.azure_endpoint,
                "azure_deployment": azure_deployment,
                "api_version": self.api_version,
            },
        )
        if azure_deployment is not None and not self.v1:
            # The deployment names the model: its rules when it is a model's name.
            known = azure_deployment in _params.MODELS
            self.default_model = azure_deployment if known else DEFAULT_MODEL
        elif azure_deployment is not None:
            self.default_model = azure_deployment  # the v1 surface's model is the deployment

    _CREDENTIALS: ClassVar[tuple[str, ...]] = _KEY_SOURCES

    @forwards_to(__init__, options=AzureOptions)
    def with_options(  # type: ignore[override]  # Azure's keywords, not base_url or auth
        self,
        *,
        api_key: str | None = None,
        set_default_headers: HeaderValues | None = None,
        set_default_query: QueryValues | None = None,
        **overrides: Unpack[AzureOptions],
    ) -> Self:
        """As :meth:`AsyncClient.with_options` (also named ``copy``), with this
        constructor's keywords (``azure_endpoint``, ``azure_deployment``,
        ``api_version``...; no ``base_url`` or ``auth``). A credential given
        (``api_key``, ``azure_ad_token`` or ``azure_ad_token_provider``) replaces this
        client's, whichever it was.

        Raises:
            TypeError: a keyword that is no setting, naming the closest one.
            ValidationError: as :meth:`AsyncClient.with_options` and the constructor.
        """
        given: dict[str, Any] = dict(overrides)
        if api_key is not None:
            given["api_key"] = api_key
        return self._copy_with(given, set_default_headers, set_default_query)

    copy = with_options  # type: ignore[assignment]  # as with_options

    def __repr__(self) -> str:
        return (
            f"<AsyncAzureClient azure_endpoint={self.azure_endpoint!r} "
            f"azure_deployment={self.azure_deployment!r} api_version={self.api_version!r}>"
        )

    def _wire(
        self, body: Mapping[str, Any], model: str | None, extra_body: Mapping[str, object] | None
    ) -> dict[str, Any]:
        if model is None and not self.v1:  # the deployment in the URL names it
            body = {name: value for name, value in body.items() if name != "model"}
        elif self._routes_by_model:  # the model names the deployment: a path segment
            _checked_deployment(model, "model")
        return super()._wire(body, model, extra_body)

    @property
    def _routes_by_model(self) -> bool:
        """Whether an Images request goes to the deployment its ``model`` names (no
        ``azure_deployment``, a dated ``api_version``), as openai routes it."""
        return not self.v1 and self.azure_deployment is None

    @property
    def _version_query(self) -> dict[str, str]:
        """The query parameter naming the API version on every URL: none on the v1
        surface with ``api_version="v1"``."""
        return {} if self.v1 and self.api_version == "v1" else {"api-version": self.api_version}

    def endpoint_url(
        self, path: str, query: Mapping[str, str] | None = None, *, model: str | None = None
    ) -> str:
        """Azure's URL of an API ``path``: ``{endpoint}/openai/deployments/{deployment}/
        images/...?api-version=...`` for images, ``{endpoint}/openai/responses...`` for
        the Responses API, ``{endpoint}/openai/v1/{path}`` on the v1 surface. Without
        ``azure_deployment``, an Images request's ``model`` names the deployment, as in
        openai.

        Raises:
            ValidationError: an Images ``path`` with no deployment named either way.
        """
        query = {**(query or {}), **self._version_query}
        if not self.v1 and path.startswith("images/"):
            deployment = self.azure_deployment or _checked_deployment(model, "model")
            if deployment is None:
                raise ValidationError(
                    "azure_deployment",
                    None,
                    f"given for the Images API with api_version {self.api_version!r}: "
                    "pass azure_deployment=..., or model=<deployment> to the call "
                    "(or use api_version='v1')",
                )
            deployment = urllib.parse.quote(deployment, safe="")
            path = f"deployments/{deployment}/{path}"
        return super().endpoint_url(path, query)

    async def auth_headers(self, path: str) -> Mapping[str, str]:
        """``api-key``, or ``Authorization: Bearer`` with a token asked of the provider
        now; plus ``x-ms-oai-image-generation-deployment`` for the Responses API.

        Raises:
            ValidationError: the provider answered no usable token (never echoed).
        """
        headers = dict(self._extras.credentials)
        if self._token.provider is not None:
            token = self._token.provider()
            if inspect.isawaitable(token):
                token = await token
            if not isinstance(token, str) or not token:
                raise ValidationError(
                    "azure_ad_token_provider", type(token).__name__, "a function answering a str"
                )
            check_api_key("azure_ad_token_provider", token)
            if token != self._token.last:  # registered once per token, not per request
                register(self, token)
                self._token.last = token
            headers["Authorization"] = f"Bearer {token}"
        if path.startswith("responses") and self.azure_deployment is not None:
            headers[DEPLOYMENT_HEADER] = self.azure_deployment
        return headers


class SyncAzureOptions(AzureOptions, LoopOptions, total=False):
    """Every keyword of :class:`AzureClient`: :class:`AsyncAzureClient`'s and the
    loop's (:class:`~ttstream._sync.LoopOptions`)."""


class AzureClient(Client):
    """The synchronous Azure client: ``with ttstream.AzureClient(azure_endpoint=...,
    azure_deployment=..., api_version=...)``; the arguments of
    :class:`AsyncAzureClient`, plus ``backend`` as :class:`~ttstream.Client`."""

    async_client_class: type[AsyncClient] = AsyncAzureClient

    @forwards_to(AsyncAzureClient.__init__, Client.__init__, options=SyncAzureOptions)
    def __init__(self, api_key: str | None = None, **options: Unpack[SyncAzureOptions]) -> None:
        self._start(AsyncAzureClient, api_key, options)

    @forwards_to(AsyncAzureClient.with_options, options=AzureCopyOptions)
    def with_options(self, **overrides: Unpack[AzureCopyOptions]) -> Self:  # type: ignore[override]
        """As :meth:`AsyncAzureClient.with_options`, run as :meth:`Client.with_options`
        (the loop thread and the pool shared)."""
        return self._copy(overrides)

    copy = with_options  # type: ignore[assignment]  # as with_options

    def __repr__(self) -> str:
        return f"<AzureClient base_url={self.base_url!r}>"
