"""The error answer of the emulator: an HTTP status with the OpenAI error JSON.

Shape of the API's HTTP errors (docs/hostile-servers.md, "Errors"):
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["EmulatorError", "error_body"]


def error_body(
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    type: str = "invalid_request_error",
) -> dict[str, Any]:
    """The JSON object of an error answer (OpenAI's shape)."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class EmulatorError(Exception):
    """A request the emulator refuses; the app answers it with :func:`error_body`.

    ``status`` is the HTTP status, ``param`` the request parameter at fault (or
    ``None``), ``code`` the machine-readable error code, ``headers`` extra response
    headers (e.g. ``www-authenticate``).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = "invalid_value",
        type: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The error JSON for this error."""
        return error_body(self.message, param=self.param, code=self.code, type=self.type)
