"""Azure OpenAI's conventions in the emulator's Azure mode (docs/azure.md): the
``api-version`` query and the Responses tool's deployment header."""

from __future__ import annotations

import re

from starlette.requests import Request

from ._errors import EmulatorError

__all__ = ["AZURE_V1_VERSIONS", "DEPLOYMENT_HEADER", "RATE_LIMIT_HEADERS", "check_api_version"]

RATE_LIMIT_HEADERS = (
    (b"x-ratelimit-limit-requests", b"-1"),
    (b"x-ratelimit-remaining-requests", b"-1"),
    (b"x-ratelimit-remaining-tokens", b"-1"),
)
"""Azure's rate-limit headers on every answer: ``-1``, as Azure sends them for image
deployments, with no ``Retry-After``."""

DEPLOYMENT_HEADER = "x-ms-oai-image-generation-deployment"
"""The header naming the image deployment of a Responses API request."""
_API_VERSION = re.compile(r"20[0-9]{2}-[01][0-9]-[0-3][0-9](-preview)?")
AZURE_V1_VERSIONS = ("v1", "preview")
"""The versions of the v1 surface ``/openai/v1``."""


def check_api_version(request: Request, *, v1: bool) -> None:
    """Azure's ``api-version`` query: required on the deployment routes (a date such as
    ``2025-04-01-preview``), optional on the v1 surface (``v1`` or ``preview``).

    Raises:
        EmulatorError: 404 ``Resource not found`` for a missing or unknown version, as
            Azure answers.
    """
    version = request.query_params.get("api-version")
    if v1 and version in (None, *AZURE_V1_VERSIONS):
        return
    if not v1 and version is not None and _API_VERSION.fullmatch(version):
        return
    shown = "missing" if version is None else f"{version[:40]!r} is not supported here"
    raise EmulatorError(f"Resource not found (api-version {shown}).", status=404, code="404")
