"""Reading one Images API request: the body, its validation, the defaults filled in.

Bodies: JSON generations; edits as OpenAI ``multipart/form-data`` or TTAPI JSON with
``images``/``mask`` references (docs/emulator.md). Parameters are checked by
:func:`ttstream.params.validate`, the client's own table and rules (docs/models.md): the
emulator keeps no copy of them.

A model missing from the table is refused as the API refuses it: 400, ``param``
``model``, code ``invalid_value``, the supported names in the message (:func:`check_model`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from starlette.datastructures import UploadFile
from starlette.requests import Request

from .._exceptions import ValidationError, short_repr
from .._json import loads
from ..params import MODELS, PARAMETERS, tool_request, validate
from ._errors import EmulatorError
from ._images import InvalidImageError, RenderSpec, probe_size

__all__ = [
    "ImageRequest",
    "InputImage",
    "check_model",
    "json_object",
    "read_edit",
    "read_generation",
    "read_tool",
]

Operation = Literal["generation", "edit"]

DEFAULT_MODEL = "gpt-image-2"  # for a body without "model": the newest model both services serve
LEGACY_MODEL = "dall-e-3"  # the only model of TTAPI's legacy /openai/v1 endpoint
_DALL_E = ("dall-e-2", "dall-e-3")
_INT_FIELDS = ("n", "partial_images", "output_compression", "frame_count", "frame_duration_ms")
_DEFAULT_FRAME_COUNT = 9  # official SDK 3.57: frame_count "Defaults to 9 when omitted"
_DEFAULT_FRAME_MS = 200  # and frame_duration_ms "Defaults to 200 when omitted"
_NOT_PARAMS = ("model", "images", "image", "image[]", "mask")


@dataclasses.dataclass(frozen=True)
class InputImage:
    """One edit input (or mask): uploaded ``data`` or a ``reference``, never neither.

    ``data`` is set for multipart uploads and ``data:`` URLs; ``reference`` is the
    ``image_url`` or ``file_id:<id>`` of a reference; ``size`` is the upload's (W, H).
    """

    data: bytes | None = dataclasses.field(default=None, repr=False)
    reference: str | None = None
    size: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class ImageRequest:
    """A validated request with every default filled in as the responses show it.

    ``quality`` ``auto`` becomes ``medium`` (``standard`` for DALL·E), ``background``
    ``auto`` becomes ``opaque``, ``size`` ``auto`` becomes 1024x1024; ``response_format``
    defaults to ``url`` for DALL·E and is always ``b64_json`` for GPT Image models.
    ``frame_count`` and ``frame_duration_ms`` (milliseconds) shape a ``gif``.
    """

    operation: Operation
    model: str
    prompt: str
    n: int
    width: int
    height: int
    quality: str
    background: str
    output_format: str
    output_compression: int | None
    stream: bool
    partial_images: int
    response_format: str
    images: tuple[InputImage, ...] = ()
    mask: InputImage | None = None
    frame_count: int = _DEFAULT_FRAME_COUNT
    frame_duration_ms: int = _DEFAULT_FRAME_MS

    @property
    def size(self) -> str:
        """The size as the wire writes it: ``"WxH"``."""
        return f"{self.width}x{self.height}"

    @property
    def is_dall_e(self) -> bool:
        """DALL·E models: no streaming, no usage, ``url`` responses by default."""
        return self.model in _DALL_E

    def render_spec(self, index: int) -> RenderSpec:
        """What to draw for image ``index`` (0-based) of the ``n`` requested."""
        first = self.images[0].data if self.images else None
        return RenderSpec(
            prompt=self.prompt,
            width=self.width,
            height=self.height,
            transparent=self.background == "transparent",
            index=index,
            edit=self.operation == "edit",
            source=first,
            mask=self.mask.data if self.mask is not None and first is not None else None,
            references=tuple(image.reference for image in self.images if image.reference),
        )


async def read_generation(request: Request, *, legacy: bool = False) -> ImageRequest:
    """Reads ``POST /images/generations`` (a JSON body); ``legacy`` is TTAPI's
    ``/openai/v1`` endpoint, which serves ``dall-e-3`` only.

    Raises:
        EmulatorError: 400 for a malformed body or a parameter the model does not take.
    """
    body = json_object(await request.body())  # whatever the Content-Type says, as curl -d sends
    return _build("generation", body, (), None, legacy=legacy)


async def read_edit(request: Request) -> ImageRequest:
    """Reads ``POST /images/edits``: ``multipart/form-data`` (OpenAI's ``image`` or
    ``image[]`` file parts, optional ``mask`` part, other fields as form fields) or JSON
    (TTAPI's ``images`` list of ``{"image_url"}``/``{"file_id"}`` objects, ``mask`` one
    such object; read whatever the Content-Type, unless it is multipart).

    Raises:
        EmulatorError: 400 for a malformed body, an unreadable upload or a parameter the
            model does not take.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        fields, uploads, upload_mask = await _read_form(request)
        return _build("edit", fields, uploads, upload_mask, image_param="image")
    body = json_object(await request.body())
    raw_images = body.get("images")
    if raw_images is None:
        images: list[InputImage] = []
    elif isinstance(raw_images, list):
        images = [_reference(item, f"images[{i}]", "images") for i, item in enumerate(raw_images)]
    else:
        raise EmulatorError(
            "'images' must be a list of objects, each with 'image_url' or 'file_id'.",
            param="images",
        )
    raw_mask = body.get("mask")
    mask = None if raw_mask is None else _reference(raw_mask, "mask", "mask")
    return _build("edit", body, images, mask, image_param="images")


def read_tool(options: Mapping[str, Any], prompt: str, *, where: str) -> ImageRequest:
    """The image request of one Responses API ``image_generation`` tool, found at
    ``where`` (e.g. ``tools[0]``) in the body: its model and options as
    :func:`ttstream.params.tool_request` reads them, checked like an Images API
    generation of ``prompt``.

    Raises:
        EmulatorError: 400 naming ``<where>.<option>`` (``input`` for the prompt).
    """
    model, params = tool_request(options)
    try:
        return _build("generation", {**params, "prompt": prompt, "model": model}, (), None)
    except EmulatorError as err:
        param = "input" if err.param == "prompt" else f"{where}.{err.param or 'model'}"
        raise EmulatorError(err.message, param=param, code=err.code) from err


def json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body.

    Raises:
        EmulatorError: 400 ``invalid_json`` for an empty body, bad JSON or a non-object.
    """
    if not raw.strip():
        raise EmulatorError(
            "The request body is empty; expected a JSON object.", code="invalid_json"
        )
    try:
        body = loads(raw)
    except ValueError as exc:
        raise EmulatorError(
            f"We could not parse the JSON body of your request: {exc}.", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise EmulatorError(
            f"The request body must be a JSON object, not a JSON {type(body).__name__}.",
            code="invalid_json",
        )
    return body


async def _read_form(
    request: Request,
) -> tuple[dict[str, Any], list[InputImage], InputImage | None]:
    """The fields (numbers and booleans converted), the images and the mask of a form."""
    fields: dict[str, Any] = {}
    images: list[InputImage] = []
    mask: InputImage | None = None
    async with request.form() as form:
        for key, value in form.multi_items():
            if key in ("image", "image[]", "mask"):
                if not isinstance(value, UploadFile):
                    raise EmulatorError(
                        f"{key!r} must be a file part, not a plain form field.",
                        param="mask" if key == "mask" else "image",
                    )
                upload = InputImage(data=await value.read())
                if key == "mask":
                    mask = upload
                else:
                    images.append(upload)
            elif isinstance(value, UploadFile):
                raise EmulatorError(f"{key!r} must be a form field, not a file.", param=key)
            else:
                fields[key] = _form_value(key, value)
    return fields, images, mask


def _form_value(key: str, value: str) -> object:
    """Form fields are text: the integer fields become ints, ``stream`` a bool."""
    if key in _INT_FIELDS:
        try:
            return int(value)
        except ValueError:
            raise EmulatorError(
                f"Invalid value for {key!r}: expected an integer, got {short_repr(value)}.",
                param=key,
            ) from None
    if key == "stream":
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise EmulatorError(
                f"Invalid value for 'stream': expected 'true' or 'false', got {short_repr(value)}.",
                param=key,
            )
        return lowered == "true"
    return value


def _reference(item: object, where: str, param: str) -> InputImage:
    """One TTAPI image object: exactly one of ``image_url`` or ``file_id``.

    A ``data:...;base64,`` URL is decoded and treated like an upload.
    """
    keys = ("image_url", "file_id")
    given = [key for key in keys if isinstance(item, dict) and item.get(key) is not None]
    if not isinstance(item, dict) or len(given) != 1:
        raise EmulatorError(
            f"{where} must be an object with exactly one of 'image_url' or 'file_id', "
            f"got {short_repr(item)}.",
            param=param,
        )
    key = given[0]
    value = item[key]
    if not isinstance(value, str) or not value:
        raise EmulatorError(
            f"{where}.{key} must be a non-empty string, got {short_repr(value)}.", param=param
        )
    if key == "file_id":
        return InputImage(reference=f"file_id:{value}")
    if value.startswith("data:"):
        header, comma, payload = value.partition(",")
        if comma and header.endswith(";base64"):
            try:
                return InputImage(data=base64.b64decode(payload, validate=True))
            except (binascii.Error, ValueError):
                raise EmulatorError(
                    f"{where}.image_url is a data URL whose base64 does not decode.",
                    param=param,
                ) from None
    return InputImage(reference=value)


def _build(
    operation: Operation,
    body: Mapping[str, Any],
    images: Sequence[InputImage],
    mask: InputImage | None,
    *,
    legacy: bool = False,
    image_param: str = "images",
) -> ImageRequest:
    """Validates ``body`` for its model and fills in the defaults."""
    model = body.get("model")
    if model is None:
        model = LEGACY_MODEL if legacy else DEFAULT_MODEL
    if legacy and model != LEGACY_MODEL:
        raise EmulatorError(
            f"This endpoint serves {LEGACY_MODEL!r} only, got model {short_repr(model)}; "
            "use /v1/images/generations for other models.",
            param="model",
        )
    if body.get("prompt") is None:
        raise EmulatorError(
            "Missing required parameter: 'prompt'.",
            param="prompt",
            code="missing_required_parameter",
        )
    params = {key: value for key, value in body.items() if key not in _NOT_PARAMS}
    for name in params:
        if name not in PARAMETERS:  # as the API answers a misspelt parameter
            raise EmulatorError(
                f"Unknown parameter: {name!r}.", param=name, code="unknown_parameter"
            )
    uploads = [image.data for image in images]
    if mask is not None:
        params["mask"] = True  # validate() checks a mask for presence only
    try:
        validate(operation, model, params, images=uploads)
    except ValidationError as err:
        raise EmulatorError(str(err), param=err.param) from err
    assert isinstance(model, str)  # validate() refuses anything else
    check_model(model)
    images = [_probed(image, image_param) for image in images]
    if mask is not None:
        mask = _probed(mask, "mask")

    dall_e = model in _DALL_E
    width, height = _size(_text(params, "size", "auto"))
    quality = _text(params, "quality", "auto")
    background = _text(params, "background", "auto")
    stream = params.get("stream") is True
    return ImageRequest(
        operation=operation,
        model=model,
        prompt=_text(params, "prompt", ""),
        n=_integer(params, "n") or 1,
        width=width,
        height=height,
        quality=("standard" if dall_e else "medium") if quality == "auto" else quality,
        background="opaque" if background == "auto" else background,
        output_format=_text(params, "output_format", "png"),
        output_compression=None if dall_e else _integer(params, "output_compression"),
        stream=stream,
        partial_images=(_integer(params, "partial_images") or 0) if stream else 0,
        response_format=_text(params, "response_format", "url" if dall_e else "b64_json"),
        images=tuple(images),
        mask=mask,
        frame_count=_integer(params, "frame_count") or _DEFAULT_FRAME_COUNT,
        frame_duration_ms=_default(_integer(params, "frame_duration_ms"), _DEFAULT_FRAME_MS),
    )


def check_model(model: str) -> None:
    """Refuses a model name missing from :data:`ttstream.params.MODELS`, as the API
    refuses a model it does not serve (its 400 shape: ``invalid_request_error``,
    ``param`` ``model``, code ``invalid_value``, "Invalid value: ... Supported values
    are: ..."; docs/emulator.md).

    Raises:
        EmulatorError: 400 for an unknown model.
    """
    if model in MODELS:
        return
    names = [repr(name) for name in MODELS]
    supported = ", ".join(names[:-1]) + f", and {names[-1]}"
    raise EmulatorError(
        f"Invalid value: {short_repr(model)}. Supported values are: {supported}.",
        param="model",
        code="invalid_value",
    )


def _probed(image: InputImage, param: str) -> InputImage:
    """Checks that an upload is a readable image and records its size."""
    if image.data is None:
        return image
    try:
        size = probe_size(image.data)
    except InvalidImageError as exc:
        raise EmulatorError(
            f"Invalid image file for {param!r}: {exc}.", param=param, code="invalid_image_format"
        ) from exc
    return dataclasses.replace(image, size=size)


def _text(params: Mapping[str, object], key: str, default: str) -> str:
    value = params.get(key)
    if value is None:
        return default
    if not isinstance(value, str):  # validate() lets names outside its table through
        raise EmulatorError(f"{key!r} must be a string, got {short_repr(value)}.", param=key)
    return value


def _integer(params: Mapping[str, object], key: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise EmulatorError(f"{key!r} must be an integer, got {short_repr(value)}.", param=key)
    return value


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _size(size: str) -> tuple[int, int]:
    """``"WxH"`` (already validated for the model, by the rules of :mod:`ttstream.params`,
    which bound the edges) as integers; ``auto`` is 1024x1024."""
    if size == "auto":
        return (1024, 1024)
    width_text, _, height_text = size.partition("x")
    try:
        width, height = int(width_text), int(height_text)
    except ValueError:
        raise EmulatorError(f"Invalid size {short_repr(size)}.", param="size") from None
    return (width, height)
