"""What the emulator answers: the SSE event stream and the synchronous JSON body.

Sources: docs/sse.md, "The Images API stream" (event types, fields, framing), and the
Images API's JSON answer with TTAPI's legacy envelope (docs/models.md, "Endpoints and
authentication").

The stream is one async generator of event objects, :func:`sse_events`, each encoded as
a frame by :func:`encode_sse` (:func:`sse_frames` does both). The fault injector
(``_faults.py``) wraps :func:`sse_events`: it drops, delays, splits, numbers or rewrites
events and frames without knowing how images are made.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

import anyio
import anyio.to_thread

from ._formats import render_file
from ._images import MEDIA_TYPES, RenderSpec, render_preview
from ._request import ImageRequest

__all__ = [
    "encode_frame",
    "encode_json",
    "encode_sse",
    "images_body",
    "sse_events",
    "sse_frames",
    "usage",
]

# Output tokens of one 1024x1024 image per quality, scaled by area for other sizes.
_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
_TILE = 512  # input images are counted in tiles of 512x512 pixels
_TOKENS_PER_TILE = 65
_UNKNOWN_INPUT_SIZE = (1024, 1024)  # a reference (URL, file id) is counted as this size

Publish = Callable[[bytes, str], str]
"""Stores an image file (bytes, media type) and returns the absolute URL that serves it."""


def encode_sse(data: Mapping[str, Any], *, id: int | None = None) -> bytes:
    """One SSE frame: ``event: <type>``, ``data: <one-line JSON>``, a blank line.

    The event name is the JSON ``type``, as the real API sends it; no ``id:`` or
    ``retry:`` field (docs/sse.md, "The Images API stream"), unless ``id`` is given (the ``ids``
    fault). ``json.dumps`` escapes control characters, so the data always fits on one
    line.
    """
    return encode_frame(str(data["type"]), encode_json(data), id=id)


def encode_json(data: Mapping[str, Any]) -> str:
    """The one-line JSON of an event's ``data:`` field."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def encode_frame(event: str, data: str, *, id: int | None = None) -> bytes:
    """One SSE frame from its parts: ``[id: <id>]``, ``event: <event>``, ``data: <data>``
    (one line, not checked) and a blank line."""
    head = "" if id is None else f"id: {id}\n"
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def usage(request: ImageRequest, *, images: int = 1) -> dict[str, Any]:
    """A plausible ``usage`` object for ``images`` output images of ``request``.

    Text tokens are about four characters each; each input image costs 65 tokens per
    512x512 tile; output tokens are 272 / 1056 / 4160 for a 1024x1024 image at low /
    medium / high quality, scaled by area.
    """
    text_tokens = len(request.prompt) // 4 + 1
    image_tokens = 0
    for image in request.images:
        width, height = image.size or _UNKNOWN_INPUT_SIZE
        image_tokens += _TOKENS_PER_TILE * math.ceil(width / _TILE) * math.ceil(height / _TILE)
    per_image = _OUTPUT_TOKENS.get(request.quality, _OUTPUT_TOKENS["medium"])
    output_tokens = max(1, round(per_image * request.width * request.height / 1024**2)) * images
    input_tokens = text_tokens + image_tokens
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text_tokens},
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


async def _final(request: ImageRequest, spec: RenderSpec) -> bytes:
    render = functools.partial(
        render_file,
        spec,
        request.output_format,
        request.output_compression,
        frame_count=request.frame_count,
        frame_duration_ms=request.frame_duration_ms,
    )
    return await anyio.to_thread.run_sync(render)


async def _preview(request: ImageRequest, spec: RenderSpec, index: int) -> bytes:
    render = functools.partial(
        render_preview,
        spec,
        request.output_format,
        request.output_compression,
        index,
        request.partial_images,
    )
    return await anyio.to_thread.run_sync(render)


def _b64(image: bytes) -> str:
    return base64.b64encode(image).decode("ascii")


async def sse_frames(request: ImageRequest, *, step_delay: float = 0.0) -> AsyncIterator[bytes]:
    """The stream of a ``stream: true`` request, one encoded frame per item: the events
    of :func:`sse_events`, each encoded by :func:`encode_sse`."""
    async for event in sse_events(request, step_delay=step_delay):
        yield encode_sse(event)


async def sse_events(
    request: ImageRequest, *, step_delay: float = 0.0
) -> AsyncGenerator[dict[str, Any], None]:
    """The events of a ``stream: true`` request, as the JSON objects of their ``data``.

    For each of the ``n`` images in turn: ``partial_images`` previews
    (``image_<operation>.partial_image``, ``partial_image_index`` from 0), then the
    final image (``image_<operation>.completed`` with ``usage``). ``step_delay`` seconds
    pass before every event, the first included, as a model's thinking time would.
    """
    prefix = f"image_{request.operation}"
    for number in range(request.n):
        spec = request.render_spec(number)
        for index in range(request.partial_images):
            await anyio.sleep(step_delay)
            image = await _preview(request, spec, index)
            yield {
                "type": f"{prefix}.partial_image",
                **_image_fields(request, image),
                "partial_image_index": index,
            }
        await anyio.sleep(step_delay)
        image = await _final(request, spec)
        yield {
            "type": f"{prefix}.completed",
            **_image_fields(request, image),
            "usage": usage(request),
        }


def _image_fields(request: ImageRequest, image: bytes) -> dict[str, Any]:
    return {
        "b64_json": _b64(image),
        "created_at": int(time.time()),
        "size": request.size,
        "quality": request.quality,
        "background": request.background,
        "output_format": request.output_format,
    }


async def images_body(
    request: ImageRequest, *, publish: Publish, step_delay: float = 0.0
) -> dict[str, Any]:
    """The synchronous answer: ``{"created", "data": [...], "usage"}``.

    One ``data`` item per image: ``{"b64_json"}`` or, for ``response_format: "url"``,
    ``{"url"}`` served by ``publish``; dall-e-3 items add a ``revised_prompt``. GPT Image
    answers also carry ``usage`` and the ``size``, ``quality``, ``background`` and
    ``output_format`` used; DALL·E answers carry neither. ``step_delay`` seconds pass
    per image.
    """
    items: list[dict[str, Any]] = []
    for number in range(request.n):
        await anyio.sleep(step_delay)
        image = await _final(request, request.render_spec(number))
        item: dict[str, Any]
        if request.response_format == "url":
            item = {"url": publish(image, MEDIA_TYPES[request.output_format])}
        else:
            item = {"b64_json": _b64(image)}
        if request.model == "dall-e-3":
            item["revised_prompt"] = f"A detailed rendering of: {request.prompt}"
        items.append(item)
    body: dict[str, Any] = {"created": int(time.time()), "data": items}
    if not request.is_dall_e:
        body.update(
            background=request.background,
            output_format=request.output_format,
            quality=request.quality,
            size=request.size,
            usage=usage(request, images=request.n),
        )
    return body
