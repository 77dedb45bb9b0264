"""The Responses API image tool: ``POST /v1/responses`` and ``GET /v1/responses/{id}``.

Shapes from the official SDK's ``openai.types.responses`` and public recordings of OpenAI
and Azure streams (docs/responses.md): ``response.created``, ``response.in_progress``, the
image item (``output_item.added``, ``image_generation_call.in_progress`` /
``.generating``, ``partial_image`` events, ``image_generation_call.completed``,
``output_item.done`` with the image), a short text message, and ``response.completed``
carrying the whole response: the image three times in all. Every event has a
``sequence_number`` from 0. No text model is emulated: the message is fixed.

A response is generated in full when it is created (one generation, counted in
``stream_stats.generations``) and then streamed, ``step_delay`` seconds before each event.
With ``background: true`` it is kept (the last 32), and ``GET
/v1/responses/{id}?stream=true&starting_after=N`` streams its events after ``N`` again
without a new generation; without ``stream=true`` the GET answers the response object.

Faults (``X-Emulator-Fault``, docs/emulator.md "Faults") on both routes: ``status``,
``wrong-content-type``, ``stall``, ``drip``, ``drop-after=<k>`` (after the k-th event of
that body), and, at the image's ``output_item.done``, the endings ``drop-mid-event``,
``drop-between-events``, ``end-early``, ``error-nested`` / ``error-flat`` (an error event,
then ``response.failed``) and the rewrites ``malformed-json`` and ``invalid-base64``;
``azure`` gives Azure's shape at creation; ``resume-status=<code>`` answers the ``GET``
alone with that status.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from .._exceptions import short_repr
from ._answers import encode_frame, encode_json, encode_sse
from ._azure import DEPLOYMENT_HEADER, check_api_version
from ._errors import EmulatorError
from ._faults import (
    FAULT_HEADER,
    EmulatedDisconnect,
    EventStreamResponse,
    FaultSpec,
    StreamStats,
    faults_for,
    tracked,
)
from ._formats import render_file
from ._images import render_preview
from ._request import ImageRequest, json_object, read_tool

__all__ = ["ResponsesRoutes"]

_KEEP = 32  # background responses kept for GET
_SEQUENCE_NUMBER = re.compile(r"-1|[0-9]{1,18}")
_TOOL = "image_generation"
_IMAGE_ITEM = "image_generation_call"
_TEXT = "Here is the image you asked for."
_ERROR_CODE = "emulated_failure"
_CONTENT_FILTERS = [
    {
        "blocked": False,
        "source_type": "completion",
        "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}},
    }
]

Authenticate = Callable[[Request], None]


@dataclasses.dataclass(frozen=True)
class _Stored:
    """A background response: every event of its stream, and the final response object."""

    events: tuple[dict[str, Any], ...]
    final: dict[str, Any]


class _Store:
    """The last ``keep`` background responses by id, safe to use from any thread."""

    def __init__(self, keep: int = _KEEP) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._responses: OrderedDict[str, _Stored] = OrderedDict()

    def add(self, response_id: str, stored: _Stored) -> None:
        with self._lock:
            self._responses[response_id] = stored
            while len(self._responses) > self._keep:
                self._responses.popitem(last=False)

    def get(self, response_id: str) -> _Stored | None:
        with self._lock:
            return self._responses.get(response_id)


class ResponsesRoutes:
    """The two routes, sharing the emulator's settings, key check and counters."""

    def __init__(
        self,
        *,
        step_delay: float,
        stats: StreamStats,
        authenticate: Authenticate,
        azure: bool = False,
    ):
        self._azure = azure  # Azure mode: its URLs, its header, its event order
        self._step_delay = step_delay
        self._stats = stats
        self._authenticate = authenticate
        self._store = _Store()

    async def create(self, request: Request) -> Response:
        """``POST /v1/responses``: ``model``, ``input``, ``tools`` with one
        ``image_generation`` tool, ``stream``, ``background``.

        Raises:
            EmulatorError: 400 for a body the API would refuse, naming the parameter.
        """
        self._authenticate(request)
        self._check_azure(request)
        faults = faults_for(request, self._stats)
        body = json_object(await request.body())
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise EmulatorError(
                "Missing required parameter: 'model'.",
                param="model",
                code="missing_required_parameter",
            )
        stream, background = _flag(body, "stream"), _flag(body, "background")
        where, tool = _image_tool(body.get("tools"))
        image = read_tool(tool, _prompt(body.get("input")), where=where)
        self._stats.count_generation()
        events, final = await _generate(
            image,
            model=model,
            tools=body["tools"],
            background=background,
            azure=faults.azure or self._azure,
        )
        if background:
            self._store.add(final["id"], _Stored(tuple(events), final))
        if not stream or faults.wrong_content_type:
            return JSONResponse(final)
        return self._stream(request, events, final, faults)

    def _check_azure(self, request: Request) -> None:
        """In Azure mode: the ``api-version`` query and the image deployment header.

        Raises:
            EmulatorError: 404 for an api-version Azure does not serve there; 400 without
                ``x-ms-oai-image-generation-deployment``.
        """
        if not self._azure:
            return
        check_api_version(request, v1=request.url.path.startswith("/openai/v1/"))
        if not request.headers.get(DEPLOYMENT_HEADER, "").strip():
            raise EmulatorError(
                f"The image_generation tool needs the '{DEPLOYMENT_HEADER}' header naming "
                "an image model deployment of this resource.",
                param=DEPLOYMENT_HEADER,
                code="missing_required_header",
            )

    async def retrieve(self, request: Request) -> Response:
        """``GET /v1/responses/{id}``: the response object, or with ``stream=true`` its
        events after ``starting_after`` (default: all).

        Raises:
            EmulatorError: 404 for an id that is not a kept background response; 400 for
                a ``starting_after`` that is not a whole number.
        """
        self._authenticate(request)
        faults = faults_for(request, self._stats)
        error = faults.status_error(request.headers, resume=True)  # resume-status
        if error is not None:
            raise error
        response_id = request.path_params["response_id"]
        stored = self._store.get(response_id)
        if stored is None:
            raise EmulatorError(
                f"No response found with id {response_id!r} (the emulator keeps the last "
                f"{_KEEP} background responses).",
                status=404,
                param="response_id",
                code="not_found",
            )
        if request.query_params.get("stream", "").lower() != "true" or faults.wrong_content_type:
            return JSONResponse(stored.final)
        after = _starting_after(request.query_params.get("starting_after", "-1"))
        events = [event for event in stored.events if event["sequence_number"] > after]
        return self._stream(request, events, stored.final, faults)

    def _stream(
        self,
        request: Request,
        events: Sequence[dict[str, Any]],
        final: Mapping[str, Any],
        faults: FaultSpec,
    ) -> StreamingResponse:
        request_id = str(getattr(request.state, "request_id", "") or secrets.token_hex(16))
        frames = _frames(events, final, faults, step_delay=self._step_delay)
        body = tracked(
            frames, stats=self._stats, request_id=request_id, fault=faults.spec, drip=faults.drip
        )
        return EventStreamResponse(body)


def _starting_after(text: str) -> int:
    """The ``starting_after`` query parameter: a sequence number, at least -1 and of at
    most 18 digits (anything longer is no sequence number of a stored response).

    Raises:
        EmulatorError: 400 naming ``starting_after`` for anything else (``--1``, 5,000
            digits, ``1.5``); the value is shown shortened.
    """
    if _SEQUENCE_NUMBER.fullmatch(text) is None:
        raise EmulatorError(
            "starting_after must be a sequence number (a whole number from -1), "
            f"got {short_repr(text)}.",
            param="starting_after",
        )
    return int(text)


def _flag(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise EmulatorError(f"{key!r} must be a boolean, got {value!r}.", param=key)
    return value is True


def _image_tool(tools: object) -> tuple[str, Mapping[str, Any]]:
    """Where the ``image_generation`` tool is (``tools[i]``) and its options."""
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            if isinstance(tool, Mapping) and tool.get("type") == _TOOL:
                return f"tools[{index}]", tool
    raise EmulatorError(
        "The emulator answers requests with the image tool only: "
        "add {'type': 'image_generation'} to 'tools'.",
        param="tools",
    )


def _prompt(value: object) -> str:
    """The text of ``input``: a string, or messages whose ``content`` is a string or a
    list of parts with ``text``."""
    texts: list[str] = []

    def walk(part: object) -> None:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, list):
            for item in part:
                walk(item)
        elif isinstance(part, Mapping):
            walk(part.get("content") if "content" in part else part.get("text"))

    walk(value)
    prompt = "\n".join(text for text in texts if text)
    if not prompt:
        raise EmulatorError(
            "Missing required parameter: 'input' (a string or messages with text).",
            param="input",
            code="missing_required_parameter",
        )
    return prompt


def _b64(image: bytes) -> str:
    return base64.b64encode(image).decode("ascii")


async def _render(image: ImageRequest) -> tuple[list[str], str]:
    """The previews and the final image of ``image``, in base64."""
    spec = image.render_spec(0)
    compression = image.output_compression
    previews = []
    for index in range(image.partial_images):
        render = functools.partial(
            render_preview, spec, image.output_format, compression, index, image.partial_images
        )
        previews.append(_b64(await anyio.to_thread.run_sync(render)))
    final = functools.partial(
        render_file,
        spec,
        image.output_format,
        compression,
        frame_count=image.frame_count,
        frame_duration_ms=image.frame_duration_ms,
    )
    return previews, _b64(await anyio.to_thread.run_sync(final))


async def _generate(
    image: ImageRequest,
    *,
    model: str,
    tools: list[Any],
    background: bool,
    azure: bool,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every event of one response's stream, and its final response object."""
    previews, result = await _render(image)
    token = secrets.token_hex(12)
    response_id, image_id, message_id = f"resp_{token}", f"ig_{token}", f"msg_{token}"
    created_at = int(time.time())
    events: list[dict[str, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    def response(status: str, output: list[Any], usage: Any = None) -> dict[str, Any]:
        return _response_object(
            response_id, status, model=model, tools=tools, created_at=created_at,
            background=background, output=output, usage=usage,
        )  # fmt: skip

    settings = {
        "background": image.background,
        "output_format": image.output_format,
        "quality": image.quality,
        "size": image.size,
    }
    add("response.created", response=response("in_progress", []))
    add("response.in_progress", response=response("in_progress", []))
    in_progress = {"id": image_id, "type": _IMAGE_ITEM, "status": "in_progress"}
    add("response.output_item.added", output_index=0, item=in_progress)
    add("response.image_generation_call.in_progress", output_index=0, item_id=image_id)
    add("response.image_generation_call.generating", output_index=0, item_id=image_id)
    for index, preview in enumerate(previews):
        add(
            "response.image_generation_call.partial_image",
            output_index=0, item_id=image_id, partial_image_index=index,
            partial_image_b64=preview, **settings,
        )  # fmt: skip
    if not azure:
        add("response.image_generation_call.completed", output_index=0, item_id=image_id)
    item = {
        "id": image_id,
        "type": _IMAGE_ITEM,
        "status": "completed",
        "action": "generate",
        **settings,
        "result": result,
        "revised_prompt": f"A detailed rendering of: {image.prompt}",
    }
    add(
        "response.output_item.done",
        output_index=0,
        item={**item, "status": "generating"} if azure else item,
    )
    message = _message(message_id, add, azure=azure)
    usage = _usage(image.prompt)
    final = response("completed", [item, message], usage)
    add("response.completed", response=final)
    return events, final


def _message(message_id: str, add: Callable[..., None], *, azure: bool) -> dict[str, Any]:
    """The text message item (output_index 1), its events added; returns the done item."""
    extra = {"content_filters": _CONTENT_FILTERS} if azure else {}
    empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    where = {"item_id": message_id, "output_index": 1}
    item = {"id": message_id, "type": "message", "status": "in_progress", "role": "assistant"}
    add("response.output_item.added", output_index=1, item={**item, "content": []})
    add("response.content_part.added", content_index=0, part=empty, **where)
    for delta, obfuscation in (("Here is the image ", "k3Jd0pQx"), ("you asked for.", "8Hq")):
        add(
            "response.output_text.delta", content_index=0, delta=delta, logprobs=[],
            obfuscation=obfuscation, **where, **extra,
        )  # fmt: skip
    add("response.output_text.done", content_index=0, logprobs=[], text=_TEXT, **where, **extra)
    part = {**empty, "text": _TEXT}
    add("response.content_part.done", content_index=0, part=part, **where)
    done = {**item, "status": "completed", "content": [part]}
    add("response.output_item.done", output_index=1, item=done)
    return done


def _usage(prompt: str) -> dict[str, Any]:
    """A text model's usage: tokens of the prompt and of the fixed message."""
    input_tokens, output_tokens = len(prompt) // 4 + 20, len(_TEXT) // 4 + 40
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 32},
        "total_tokens": input_tokens + output_tokens,
    }


def _response_object(
    response_id: str,
    status: str,
    *,
    model: str,
    tools: list[Any],
    created_at: int,
    background: bool,
    output: list[Any],
    usage: Any,
    error: Any = None,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": background,
        "error": error,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": tools,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    }


def _is_image_done(event: Mapping[str, Any]) -> bool:
    item = event.get("item")
    return (
        event["type"] == "response.output_item.done"
        and isinstance(item, Mapping)
        and item.get("type") == _IMAGE_ITEM
    )


def _failure(sequence: int, ending: str, final: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An error event (nested or flat) and the ``response.failed`` after it."""
    message = f"The emulator failed this response as {FAULT_HEADER} asked ({ending})."
    error = {"type": "server_error", "code": _ERROR_CODE, "message": message, "param": None}
    flat = {key: value for key, value in error.items() if key != "type"}
    shaped: dict[str, Any] = {"error": error} if ending == "error-nested" else flat
    failed = {**final, "status": "failed", "output": [], "usage": None}
    failed["error"] = {"code": _ERROR_CODE, "message": message}
    return [
        {"type": "error", "sequence_number": sequence, **shaped},
        {"type": "response.failed", "sequence_number": sequence + 1, "response": failed},
    ]


async def _frames(
    events: Sequence[dict[str, Any]],
    final: Mapping[str, Any],
    faults: FaultSpec,
    *,
    step_delay: float,
) -> AsyncGenerator[bytes, None]:
    """The SSE frames of ``events`` with ``faults`` applied (see the module)."""
    stalled = False
    for number, event in enumerate(events, start=1):
        await anyio.sleep(step_delay)
        frame = encode_sse(event)
        if _is_image_done(event):
            if faults.ending == "drop-between-events":
                raise EmulatedDisconnect(faults.ending)
            if faults.ending == "end-early":
                return
            if faults.ending in ("error-nested", "error-flat"):
                for failure in _failure(event["sequence_number"], faults.ending, final):
                    yield encode_sse(failure)
                return
            frame = _rewritten(event, faults)
            if faults.ending == "drop-mid-event":
                yield frame[: len(frame) // 2]
                raise EmulatedDisconnect(faults.ending)
        yield frame
        if faults.drop_after == number:
            raise EmulatedDisconnect(f"drop-after={number}")
        if faults.stall is not None and not stalled:
            stalled = True
            await anyio.sleep(faults.stall)


def _rewritten(event: dict[str, Any], faults: FaultSpec) -> bytes:
    """The image's ``output_item.done`` frame under ``invalid-base64`` and
    ``malformed-json``."""
    if faults.invalid_base64:
        item = event["item"]
        result = str(item["result"])
        event = {**event, "item": {**item, "result": f"{result[:8]}*not~base64!{result[8:]}"}}
    data = encode_json(event)
    if faults.malformed_json:
        data = data[:-1]
    return encode_frame(str(event["type"]), data)
