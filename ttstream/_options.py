"""The keywords of the request methods, as ``TypedDict``\\ s for ``**options:
Unpack[...]`` (PEP 692): what the wrappers that pass them on unchanged (the sync
:class:`~ttstream.Client`, :class:`~ttstream.batch.Batch`) take.

The methods that use the keywords (``AsyncClient.generate`` / ``edit``,
``client.responses.stream`` / ``resume``) declare them explicitly, with their defaults;
the API's own parameters are declared once, in :mod:`ttstream.params`. A test checks
that each list here is exactly the keywords of its method.
"""

# Evaluated at run time (no ``from __future__ import annotations``), so that
# ``__required_keys__`` knows the ``Required`` keys; ``ImageInput`` is a string alias.
from collections.abc import Mapping, Sequence
from typing import Any, Required, TypedDict

import httpx2

from ._bounds import ClientTimeout
from ._headers import HeaderValues, QueryValues
from ._reconnect import ReconnectPolicy
from ._request import ImageInput
from .params import EditParameters, GenerationParameters, ImageGenerationTool, ResponsesParameters

__all__ = [
    "EditOptions",
    "GenerateOptions",
    "ResponseOptions",
    "ResponseStreamOptions",
    "ResumeOptions",
    "StreamOptions",
    "StreamOptionsButTimeout",
]


class StreamOptionsButTimeout(TypedDict, total=False):
    """:class:`StreamOptions` without ``timeout``: the ``**options`` of a method that
    declares ``timeout`` itself, with its default ``CLIENT_TIMEOUT``."""

    deadline: float | None
    reconnect: ReconnectPolicy | None
    extra_headers: HeaderValues | None
    extra_query: QueryValues | None


class StreamOptions(StreamOptionsButTimeout, total=False):
    """What every stream takes: ``deadline`` (seconds, the client's by default),
    ``reconnect`` (the client's :class:`~ttstream.ReconnectPolicy` by default),
    ``timeout`` (seconds for every phase, a finite number > 0, or an ``httpx2.Timeout``:
    each request of the stream; by default, ``CLIENT_TIMEOUT``, the client's; ``None``
    is refused), and
    ``extra_headers`` / ``extra_query`` (over the client's ``default_headers`` /
    ``default_query``; a header or query parameter given as ``None`` is not sent)."""

    timeout: float | httpx2.Timeout | ClientTimeout


class _ImageRequestOptions(StreamOptions, total=False):
    model: str | None
    extra_body: Mapping[str, object] | None


class GenerateOptions(_ImageRequestOptions, GenerationParameters, total=False):
    """The keywords of ``client.generate(prompt, ...)``."""


class EditOptions(_ImageRequestOptions, EditParameters, total=False):
    """The keywords of ``client.edit(prompt, ...)``."""

    images: Required["ImageInput | Sequence[ImageInput]"]
    mask: "ImageInput | None"


class ResponseOptions(StreamOptions, ResponsesParameters, total=False):
    """The keywords of ``client.responses.stream(...)`` besides ``input`` (which
    ``batch.respond(input, ...)`` takes first)."""

    model: Required[str]
    tools: Sequence[ImageGenerationTool | Mapping[str, Any]] | None
    background: bool | None
    extra_body: Mapping[str, object] | None


class ResponseStreamOptions(ResponseOptions, total=False):
    """The keywords of ``client.responses.stream(...)``."""

    input: Required[str | Sequence[Mapping[str, Any]]]


class ResumeOptions(StreamOptions, total=False):
    """The keywords of ``client.responses.resume(response_id, ...)``."""

    starting_after: int | None
