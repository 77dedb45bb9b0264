"""Per-model checks of Images API request parameters, run before any connection is made.

Source: the table "Request parameters (per model)" of ``wire-format.md``, itself gathered
from the OpenAI Images API reference (https://platform.openai.com/docs/api-reference/images)
and the TTAPI Images API documentation (https://docs.ttapi.io). :data:`MODELS` is the one
place that table lives; the checks below only read it.

Deliberately open where vendors move faster than clients: a model missing from
:data:`MODELS` and a parameter name the table does not know pass unchecked (the server will
say). A parameter whose value is ``None`` counts as omitted. Pure: no I/O.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Literal, cast

import attrs

from ._exceptions import ValidationError

__all__ = ["MODELS", "PARAMETERS", "ModelSpec", "Operation", "supports_streaming", "validate"]

Operation = Literal["generation", "edit"]


@attrs.frozen
class ModelSpec:
    """What one model takes: one column of the wire-format.md table.

    Enumerations keep the reference's order; an empty tuple means the model refuses the
    parameter. ``output_formats[0]`` is the default format, and a model with output formats
    also takes ``output_compression``; a ``streaming`` model takes ``stream=True`` and
    ``partial_images``.
    """

    prompt_max: int
    n_max: int  # n is an int from 1 to n_max
    sizes: tuple[str, ...]
    qualities: tuple[str, ...]
    backgrounds: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ()
    moderations: tuple[str, ...] = ()
    response_formats: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    streaming: bool = False
    input_fidelities: tuple[str, ...] = ()  # edits only
    max_edit_images: int = 0  # 0: the model takes no edits
    free_sizes: bool = False  # any "WxH" within the rule of _free_size_ok is also a size
    edit_square_png_under: int | None = None  # known edit images: square PNGs under N bytes


_GPT_IMAGE = ModelSpec(
    prompt_max=32000,
    n_max=10,
    sizes=("auto", "1024x1024", "1536x1024", "1024x1536"),
    qualities=("auto", "high", "medium", "low"),
    backgrounds=("transparent", "opaque", "auto"),
    output_formats=("png", "jpeg", "webp"),
    moderations=("low", "auto"),
    streaming=True,
    input_fidelities=("high", "low"),
    max_edit_images=16,
)
# quality "auto" is also accepted for dall-e-2/3: the OpenAI reference says auto is the
# default for every model, so sending it explicitly must be fine.
MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        "gpt-image-2": attrs.evolve(_GPT_IMAGE, free_sizes=True, input_fidelities=()),
        "gpt-image-1.5": _GPT_IMAGE,
        "gpt-image-1": _GPT_IMAGE,
        "dall-e-3": ModelSpec(
            prompt_max=4000,
            n_max=1,
            sizes=("1024x1024", "1792x1024", "1024x1792"),
            qualities=("hd", "standard", "auto"),
            response_formats=("url", "b64_json"),
            styles=("vivid", "natural"),
        ),
        "dall-e-2": ModelSpec(
            prompt_max=1000,
            n_max=10,
            sizes=("256x256", "512x512", "1024x1024"),
            qualities=("standard", "auto"),
            response_formats=("url", "b64_json"),
            max_edit_images=1,
            edit_square_png_under=4 * 1024 * 1024,  # "less than 4MB"; read as MiB (lenient)
        ),
    }
)

PARAMETERS = frozenset(
    {
        "prompt", "n", "size", "quality", "background", "output_format",
        "output_compression", "moderation", "response_format", "style", "stream",
        "partial_images", "input_fidelity", "user", "mask",
    }
)  # fmt: skip
"""Every request parameter of the two endpoints besides ``model`` and the edit images
(the OpenAI Images API reference and TTAPI's pages). :func:`validate` lets other names
through for the server to judge; the API (and the emulator) answers them with 400."""

_CHOICE_FIELDS: Mapping[str, str] = {  # enumerated parameter -> ModelSpec field of its values
    "quality": "qualities",
    "background": "backgrounds",
    "output_format": "output_formats",
    "moderation": "moderations",
    "response_format": "response_formats",
    "style": "styles",
    "input_fidelity": "input_fidelities",
}
_WHY_OMITTED: Mapping[str, str] = {"response_format": "; this model always returns b64_json"}
_TRANSPARENT_FORMATS = ("png", "webp")
_COMPRESSED_FORMATS = ("jpeg", "webp")
# Canonical WxH only: ASCII digits, no sign or leading zero, lower-case x. Edges stay under a
# million pixels, which keeps int() far from Python's 4300-digit conversion limit.
_WXH = re.compile(r"([1-9][0-9]{0,5})x([1-9][0-9]{0,5})")
_FREE_SIZE_RULE = (
    ", or any 'WxH' with W and H positive multiples of 16 and an aspect ratio"
    " between 1:3 and 3:1 inclusive"
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def supports_streaming(model: str) -> bool:
    """Whether ``model`` takes ``stream=True`` (table row ``stream``); unknown models may."""
    spec = MODELS.get(model)
    return spec is None or spec.streaming


def validate(
    operation: Operation,
    model: str,
    params: Mapping[str, object],
    *,
    images: Sequence[bytes | None] = (),
) -> None:
    """Raise :class:`ValidationError` on the first parameter ``model`` does not take.

    ``params`` uses the API's own names (``mask`` is not checked); ``images`` has one entry
    per edit input image: its bytes, or ``None`` for a URL or file_id reference. Rules from
    wire-format.md, "Request parameters (per model)".
    """
    if not isinstance(model, str) or not model:
        raise ValidationError("model", model, "a non-empty model name such as 'gpt-image-2'")
    if operation not in ("generation", "edit"):
        raise ValidationError("operation", operation, "'generation' or 'edit'")
    spec = MODELS.get(model)
    if spec is None:
        return  # new models appear all the time: the server will say
    _check_images(operation, model, spec, images)
    given = {name: value for name, value in params.items() if value is not None}
    for name, value in {"prompt": None, **given}.items():  # a missing prompt is checked as None
        _check_one(operation, model, spec, name, value)
    _check_combinations(model, spec, given)


def _check_one(operation: Operation, model: str, spec: ModelSpec, name: str, value: object) -> None:
    """One parameter on its own; names the table does not know (and ``mask``) pass."""

    def refuse(allowed: str) -> ValidationError:
        return ValidationError(name, value, allowed, model=model)

    if name == "prompt":
        if not (isinstance(value, str) and 0 < len(value) <= spec.prompt_max):
            raise refuse(f"a non-empty string of at most {spec.prompt_max} characters")
    elif name == "n":
        if not _int_in(value, 1, spec.n_max):
            raise refuse("exactly 1" if spec.n_max == 1 else f"an int from 1 to {spec.n_max}")
    elif name == "size":
        if value not in spec.sizes and not (spec.free_sizes and _free_size_ok(value)):
            raise refuse(_one_of(spec.sizes) + (_FREE_SIZE_RULE if spec.free_sizes else ""))
    elif name == "input_fidelity" and operation == "generation":
        raise ValidationError(name, value, "omitted on a generation (an edit-only parameter)")
    elif name in _CHOICE_FIELDS:
        choices = _choices(spec, name)
        if not choices:
            raise refuse(_omitted(name, lambda s: _choices(s, name)))
        if value not in choices:
            raise refuse(_one_of(choices))
    elif name == "output_compression":
        if not spec.output_formats:
            raise refuse(_omitted(name, lambda s: s.output_formats))
        if not _int_in(value, 0, 100):
            raise refuse("an int from 0 to 100")
    elif name == "stream":
        if not isinstance(value, bool):
            raise ValidationError(name, value, "True or False")
        if value and not spec.streaming:
            raise refuse(f"False or omitted (only {_takers(lambda s: s.streaming)} stream=True)")
    elif name == "partial_images":
        if not spec.streaming:
            raise refuse(_omitted(name, lambda s: s.streaming))
        if not _int_in(value, 0, 3):
            raise refuse("an int from 0 to 3")
    elif name == "user" and not isinstance(value, str):
        raise ValidationError(name, value, "a string")


def _check_combinations(model: str, spec: ModelSpec, given: Mapping[str, object]) -> None:
    """Rules between parameters, once each one is valid on its own."""
    if spec.output_formats:
        fmt = given.get("output_format", spec.output_formats[0])
        if given.get("background") == "transparent" and fmt not in _TRANSPARENT_FORMATS:
            others = _one_of(tuple(b for b in spec.backgrounds if b != "transparent"))
            needs = f"(transparent needs output_format {_either(_TRANSPARENT_FORMATS)})"
            allowed = f"{others} with output_format={fmt!r} {needs}"
            raise ValidationError("background", "transparent", allowed, model=model)
        # Exception: 100 (the documented default, no compression) is let through with png,
        # because TTAPI's own documented example sends output_format png with it.
        compression = given.get("output_compression", 100)
        if fmt not in _COMPRESSED_FORMATS and compression != 100:
            needs = f"(0 to 100 needs output_format {_either(_COMPRESSED_FORMATS)})"
            allowed = f"omitted or 100 with output_format={fmt!r} {needs}"
            raise ValidationError("output_compression", compression, allowed, model=model)
    if "partial_images" in given and given.get("stream") is not True:
        allowed = "omitted unless stream=True"
        raise ValidationError("partial_images", given["partial_images"], allowed, model=model)


def _check_images(
    operation: Operation, model: str, spec: ModelSpec, images: Sequence[bytes | None]
) -> None:
    """Edit input images: how many (the error's value is the count), and for dall-e-2 what
    each known one is (the value says what was wrong).

    A model without edits (dall-e-3) is reported on ``model``: the model is the mistake,
    no list of images would do.
    """
    if operation == "generation":
        if images:
            allowed = "empty on a generation (edits take images)"
            raise ValidationError("images", len(images), allowed)
        return
    count = spec.max_edit_images
    if not count:
        allowed = f"a model that takes edits ({_takers(lambda s: s.max_edit_images)} them)"
        raise ValidationError("model", model, allowed, model=model)
    if not 1 <= len(images) <= count:
        allowed = "exactly 1 input image" if count == 1 else f"1 to {count} input images"
        raise ValidationError("images", len(images), allowed, model=model)
    limit = spec.edit_square_png_under
    for image in images:
        if limit is not None and image is not None and (problem := _png_problem(image, limit)):
            allowed = f"a square PNG under {limit} bytes ({limit / 2**20:g} MiB)"
            raise ValidationError("images", problem, allowed, model=model)


def _png_problem(data: bytes, limit: int) -> str | None:
    """What keeps ``data`` from being a square PNG under ``limit`` bytes, or ``None``.

    Width and height come from the IHDR chunk, which the PNG specification puts first.
    """
    if len(data) < 24 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return f"not a PNG ({len(data)} bytes)"
    width, height = struct.unpack(">II", data[16:24])
    if width != height:
        return f"a PNG of {width}x{height}, not square"
    if len(data) >= limit:
        return f"a PNG of {len(data)} bytes"
    return None


def _free_size_ok(size: object) -> bool:
    """gpt-image-2's open sizes: ``WxH``, both multiples of 16, ratio within 1:3 to 3:1."""
    match = _WXH.fullmatch(size) if isinstance(size, str) else None
    if match is None:
        return False
    width, height = int(match[1]), int(match[2])
    return width % 16 == 0 and height % 16 == 0 and max(width, height) <= 3 * min(width, height)


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _choices(spec: ModelSpec, name: str) -> tuple[str, ...]:
    return cast("tuple[str, ...]", getattr(spec, _CHOICE_FIELDS[name]))


def _one_of(values: tuple[str, ...]) -> str:
    return "one of " + ", ".join(map(repr, values))


def _either(values: tuple[str, ...]) -> str:
    return " or ".join(map(repr, values))


def _takers(has: Callable[[ModelSpec], object]) -> str:
    """``"only dall-e-3 takes"``-style subject: the known models for which ``has`` holds."""
    names = [name for name, spec in MODELS.items() if has(spec)]
    return ", ".join(names) + (" takes" if len(names) == 1 else " take")


def _omitted(name: str, has: Callable[[ModelSpec], object]) -> str:
    return f"omitted (only {_takers(has)} {name}{_WHY_OMITTED.get(name, '')})"
