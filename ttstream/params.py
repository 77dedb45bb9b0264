"""Per-model checks of Images API request parameters, run before any connection is made.

Sources, named rule by rule in the comments below: the official OpenAI Python SDK 3.57
parameter docs (``openai.types.image_generate_params`` / ``image_edit_params``: the
models, sizes, qualities and formats of 2026-12), the OpenAI Images API reference
(https://platform.openai.com/docs/api-reference/images) and the TTAPI Images API
documentation (https://docs.ttapi.io). docs/models.md states the rules in prose.
:data:`MODELS` is the one place the table lives; the checks below only read it (the
emulator validates its requests with the same functions).

Deliberately open where vendors move faster than clients: a model missing from
:data:`MODELS` and a parameter name the table does not know pass unchecked (the server will
say). A parameter whose value is ``None`` counts as omitted. Pure: no I/O.
"""

from __future__ import annotations

import inspect
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal, TypedDict, TypeVar, cast, get_type_hints

import attrs

from ._exceptions import UnknownNameError, ValidationError
from ._signature import with_keywords

__all__ = [
    "MODELS",
    "PARAMETERS",
    "RETIRED_ON_OPENAI",
    "Background",
    "Complexity",
    "EditParameters",
    "EditRules",
    "GenerationParameters",
    "ImageGenerationTool",
    "InputFidelity",
    "ModelSpec",
    "Moderation",
    "Operation",
    "OutputFormat",
    "Quality",
    "ResponseFormat",
    "ResponsesParameters",
    "Style",
    "allowed_summary",
    "free_size_ok",
    "keywords",
    "streams_by_default",
    "supports_streaming",
    "tool_request",
    "validate",
    "validate_tool",
]

Operation = Literal["generation", "edit"]

# The closed sets of the API, every model's values together (which model takes which value
# is the table's business, below). Vendors add values: one ttstream does not know yet goes
# through ``extra_body``, which is sent as it is.
Quality = Literal["auto", "low", "medium", "high", "xhigh", "max", "standard", "hd"]
Background = Literal["transparent", "opaque", "auto"]
OutputFormat = Literal["png", "jpeg", "webp", "gif", "svg"]
Moderation = Literal["low", "auto"]
ResponseFormat = Literal["url", "b64_json"]
Style = Literal["vivid", "natural"]
Complexity = Literal["low", "medium", "high"]
InputFidelity = Literal["high", "low"]


class GenerationParameters(TypedDict, total=False):
    """The Images API parameters of ``client.generate()`` besides ``prompt`` and ``model``:
    the one list of them (the client's keywords, :data:`PARAMETERS` and the emulator's
    check all read it). ``None`` counts as omitted. Which model takes which value:
    docs/models.md; the wire format: docs/sse.md.
    """

    n: int | None
    """Images to generate: 1 to 10 (dall-e-3 and ``svg``: 1)."""
    size: str | None
    """``"WxH"`` in pixels or ``"auto"``; gpt-image-2 and 2.5 take any multiple of 16."""
    quality: Quality | None
    """``xhigh`` and ``max``: the 2.5 family; ``standard`` and ``hd``: dall-e."""
    background: Background | None
    """``transparent`` needs ``output_format`` ``png`` or ``webp``."""
    output_format: OutputFormat | None
    """``png`` (default), ``jpeg``, ``webp``; ``gif`` and ``svg`` are not streamed."""
    output_compression: int | None
    """0 to 100, with ``jpeg`` or ``webp``."""
    moderation: Moderation | None
    response_format: ResponseFormat | None
    """dall-e only; the GPT Image models always return ``b64_json``."""
    style: Style | None
    """dall-e-3 only."""
    stream: bool | None
    """Default: ``True`` for models that stream, unless the format is gif or svg."""
    partial_images: int | None
    """Previews to stream, 0 to 3 (needs ``stream``)."""
    user: str | None
    """The end user's id; deprecated by the API in favour of ``safety_identifier``."""
    safety_identifier: str | None
    complexity: Complexity | None
    frame_count: int | None
    """Frames of a ``gif``: 2 to 16."""
    frame_duration_ms: int | None
    """Milliseconds per ``gif`` frame, >= 0."""
    svg: Mapping[str, object] | None
    """The options of ``output_format="svg"``."""


class EditParameters(GenerationParameters, total=False):
    """The parameters of ``client.edit()`` besides ``prompt``, ``model``, ``images`` and
    ``mask``: those of a generation, and ``input_fidelity``."""

    input_fidelity: InputFidelity | None
    """How closely the edit keeps the input's details (gpt-image-1.x; gpt-image-2 omits it)."""


class ImageGenerationTool(TypedDict, total=False):
    """The Responses API ``image_generation`` tool (``tools=[...]``): its options are the
    Images API parameters of the same names (docs/responses.md)."""

    type: Literal["image_generation"]
    model: str
    """The image model; default ``gpt-image-2``."""
    action: Literal["auto", "generate", "edit"]
    size: str
    quality: Quality
    background: Background
    output_format: OutputFormat
    output_compression: int
    moderation: Moderation
    partial_images: int
    input_fidelity: InputFidelity
    input_image_mask: Mapping[str, str]
    """``{"image_url": ...}`` or ``{"file_id": ...}``."""


class ResponsesParameters(TypedDict, total=False):
    """The Responses API body fields of ``client.responses.stream()`` besides ``model``,
    ``input``, ``tools`` and ``background`` (the OpenAI API reference, "Create a
    model response"). ``None`` counts as omitted."""

    instructions: str | None
    previous_response_id: str | None
    conversation: str | Mapping[str, object] | None
    include: Sequence[str] | None
    max_output_tokens: int | None
    max_tool_calls: int | None
    metadata: Mapping[str, str] | None
    parallel_tool_calls: bool | None
    prompt: Mapping[str, object] | None
    """A stored prompt template (``{"id": ..., "variables": ...}``)."""
    prompt_cache_key: str | None
    reasoning: Mapping[str, object] | None
    safety_identifier: str | None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None
    store: bool | None
    stream: Literal[True] | None
    """Always ``True`` here; anything else is a :class:`ValidationError`."""
    temperature: float | None
    text: Mapping[str, object] | None
    tool_choice: str | Mapping[str, object] | None
    top_logprobs: int | None
    top_p: float | None
    truncation: Literal["auto", "disabled"] | None
    user: str | None


_F = TypeVar("_F", bound=Callable[..., Any])


def keywords(parameters: Any) -> Callable[[_F], _F]:
    """A decorator for a method whose ``**params`` are typed ``Unpack[parameters]`` (a
    ``TypedDict`` whose keys all default to ``None``, e.g. of this module): a keyword
    that is neither the method's own nor one of ``parameters`` raises ``TypeError`` at
    the call, as Python does for a function with explicit keywords (type checkers report
    it too, through ``Unpack``), and
    ``inspect.signature`` (``help()``) lists every parameter as a keyword of its own."""
    hints = get_type_hints(parameters)
    typed = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hints[name]
        )
        for name in parameters.__annotations__
    ]
    return lambda method: with_keywords(method, typed, first=False)


@attrs.frozen
class EditRules:
    """What a model's edits take: at most ``max_images`` input images (0: the model takes
    no edits) and, when ``square_png_under`` is set, only square PNGs under that many
    bytes (dall-e-2)."""

    max_images: int = 0
    square_png_under: int | None = None


NO_EDITS = EditRules()


@attrs.frozen
class ModelSpec:
    """What one model takes: one row of the table in docs/models.md.

    Enumerations keep the sources' order; an empty tuple means the model refuses the
    parameter. ``output_formats[0]`` is the default format, and a model with output formats
    also takes ``output_compression``; a ``streaming`` model takes ``stream=True`` and
    ``partial_images``; ``edits`` says what its edits take.
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
    complexities: tuple[str, ...] = ()
    streaming: bool = False
    input_fidelities: tuple[str, ...] = ()  # edits only
    edits: EditRules = NO_EDITS
    free_sizes: bool = False  # any "WxH" within the rule of free_size_ok is also a size


# The GPT Image models. Source: official SDK 3.57 parameter docs (prompt "maximum length is
# 32000 characters", n "between 1 and 10", the three standard sizes and auto, quality low /
# medium / high / auto, background, moderation, output_format png / webp / jpeg / gif / svg
# "only supported for the GPT image models", complexity low / medium / high, partial_images
# with streaming, "up to 16 images" to edit); input_fidelity high / low: TTAPI docs and the
# SDK ("Supports high and low on gpt-image-1.5").
_GPT_IMAGE = ModelSpec(
    prompt_max=32000,
    n_max=10,
    sizes=("auto", "1024x1024", "1536x1024", "1024x1536"),
    qualities=("auto", "high", "medium", "low"),
    backgrounds=("transparent", "opaque", "auto"),
    output_formats=("png", "jpeg", "webp", "gif", "svg"),
    moderations=("low", "auto"),
    complexities=("low", "medium", "high"),
    streaming=True,
    input_fidelities=("high", "low"),
    edits=EditRules(max_images=16),
)
# Official SDK 3.57 parameter docs, size: "For gpt-image-2, gpt-image-2-2026-04-21, [the 2.5
# family], arbitrary resolutions are supported"; input_fidelity: "For gpt-image-2, omit
# this parameter".
_GPT_IMAGE_2 = attrs.evolve(_GPT_IMAGE, free_sizes=True, input_fidelities=())
# Official SDK 3.57 parameter docs, quality: "gpt-image-2.5-sunburst and gpt-image-2.5-flare,
# including their 2026-09-08 snapshots, also support xhigh and max"; the size rule as above.
_GPT_IMAGE_2_5 = attrs.evolve(
    _GPT_IMAGE, free_sizes=True, qualities=(*_GPT_IMAGE.qualities, "xhigh", "max")
)
# quality "auto" is also accepted for dall-e-2/3: the OpenAI reference says auto is the
# default for every model, so sending it explicitly must be fine.
MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        # The default: served by TTAPI and OpenAI (TTAPI docs; official SDK 3.57).
        "gpt-image-2": _GPT_IMAGE_2,
        "gpt-image-2-2026-04-21": _GPT_IMAGE_2,
        "gpt-image-2.5-sunburst": _GPT_IMAGE_2_5,
        "gpt-image-2.5-sunburst-2026-09-08": _GPT_IMAGE_2_5,
        "gpt-image-2.5-flare": _GPT_IMAGE_2_5,
        "gpt-image-2.5-flare-2026-09-08": _GPT_IMAGE_2_5,
        # The 2.6 models and chatgpt-image-latest: the SDK states no rule of their own, so
        # the GPT Image rules (chatgpt-image-latest "follows the same input constraints").
        "gpt-image-2.6-sunburst": _GPT_IMAGE,
        "gpt-image-2.6-flare": _GPT_IMAGE,
        "chatgpt-image-latest": _GPT_IMAGE,
        "gpt-image-1.5": _GPT_IMAGE,
        # Official SDK 3.57: "gpt-image-1-mini supports only low" input_fidelity.
        "gpt-image-1-mini": attrs.evolve(_GPT_IMAGE, input_fidelities=("low",)),
        # Official SDK 3.57: "GPT Image 1 was shut down on October 23, 2026"; TTAPI docs
        # still list it.
        "gpt-image-1": _GPT_IMAGE,
        # The OpenAI Images API reference and TTAPI docs (sizes, qualities, styles, n,
        # response_format); official SDK 3.57: "This model was retired on May 12, 2026".
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
            # "less than 4MB"; read as MiB (lenient)
            edits=EditRules(max_images=1, square_png_under=4 * 1024 * 1024),
        ),
    }
)

RETIRED_ON_OPENAI: Mapping[str, str] = MappingProxyType(
    {"gpt-image-1": "2026-10-23", "dall-e-3": "2026-05-12", "dall-e-2": "2026-05-12"}
)
"""The ISO date OpenAI stopped serving each retired model (TTAPI may still serve it;
official SDK 3.57: "This model was retired on ...")."""

PARAMETERS = frozenset({"prompt", "mask", *EditParameters.__optional_keys__})
"""Every request parameter of the two endpoints besides ``model`` and the edit images
(official SDK 3.57 parameter docs, the OpenAI Images API reference and TTAPI's pages): the
keys of :class:`EditParameters`, ``prompt`` and ``mask``.
:func:`validate` lets other names through for the server to judge; the API (and the
emulator) answers them with 400."""

_CHOICE_FIELDS: Mapping[str, str] = {  # enumerated parameter -> ModelSpec field of its values
    "quality": "qualities",
    "background": "backgrounds",
    "output_format": "output_formats",
    "moderation": "moderations",
    "response_format": "response_formats",
    "style": "styles",
    "complexity": "complexities",
    "input_fidelity": "input_fidelities",
}
_WHY_OMITTED: Mapping[str, str] = {"response_format": "; this model always returns b64_json"}
_TRANSPARENT_FORMATS = ("png", "webp")
_COMPRESSED_FORMATS = ("jpeg", "webp")
# Formats answered in one JSON body, never streamed, and what each refuses. Official SDK
# 3.57 parameter docs: "GIF output does not support streaming, partial images, masks, or
# custom output compression"; "SVG generation requires n=1 and does not support streaming,
# partial images, prompt_rewriter, or output_compression".
_UNSTREAMED_FORMATS: Mapping[str, tuple[str, ...]] = {
    "gif": ("stream", "partial_images", "mask", "output_compression"),
    "svg": ("stream", "partial_images", "output_compression"),
}
_FORMAT_N_MAX: Mapping[str, int] = {"svg": 1}
# Parameters that only go with one output_format (official SDK 3.57: frame_count and
# frame_duration_ms "Only supported with output_format=gif"; svg "Requires output_format=svg").
_FORMAT_PARAMETERS: Mapping[str, str] = {
    "frame_count": "gif",
    "frame_duration_ms": "gif",
    "svg": "svg",
}
_FRAME_COUNT = (2, 16)  # official SDK 3.57: "Accepts integers from 2 through 16"
_PARTIAL_IMAGES = (0, 3)  # official SDK 3.57: partial_images "between 0 and 3"
_COMPRESSION = (0, 100)  # official SDK 3.57: output_compression "0-100%"
# Canonical WxH only: ASCII digits, no sign or leading zero, lower-case x. Edges stay under a
# million pixels, which keeps int() far from Python's 4300-digit conversion limit.
_WXH = re.compile(r"([1-9][0-9]{0,5})x([1-9][0-9]{0,5})")
# Official SDK 3.57 parameter docs, size: "Width and height must both be divisible by 16 and
# the requested aspect ratio must be between 1:3 and 3:1 [...] the maximum supported
# resolution is 3840x2160": read as a long edge of at most 3840 and at most 3840*2160 pixels.
_SIZE_STEP = 16
_MAX_RATIO = 3
_MAX_LONG_EDGE = 3840
_MAX_PIXELS = 3840 * 2160  # 8,294,400
_FREE_SIZE_RULE = (
    ", or any 'WxH' with W and H positive multiples of 16, an aspect ratio between 1:3 and"
    f" 3:1 inclusive, a long edge of at most {_MAX_LONG_EDGE} and at most {_MAX_PIXELS}"
    " pixels (3840x2160)"
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def supports_streaming(model: str) -> bool:
    """Whether ``model`` takes ``stream=True`` (table row ``stream``); unknown models may."""
    spec = MODELS.get(model)
    return spec is None or spec.streaming


def streams_by_default(model: str, params: Mapping[str, object]) -> bool:
    """The ``stream`` a request gets when the caller leaves it out: ``True`` for a model
    that streams (unknown models included), unless ``params`` asks for an ``output_format``
    answered in one JSON body (``gif``, ``svg``: official SDK 3.57 parameter docs)."""
    return supports_streaming(model) and params.get("output_format") not in _UNSTREAMED_FORMATS


def free_size_ok(size: object) -> bool:
    """Whether ``size`` is an open ``"WxH"`` of gpt-image-2 and the 2.5 family: both edges
    multiples of 16, the ratio within 1:3 to 3:1, the long edge at most 3840 pixels and the
    area at most 8,294,400 pixels (3840x2160). Source: official SDK 3.57 parameter docs."""
    match = _WXH.fullmatch(size) if isinstance(size, str) else None
    if match is None:
        return False
    width, height = int(match[1]), int(match[2])
    long, short = max(width, height), min(width, height)
    return (
        width % _SIZE_STEP == 0
        and height % _SIZE_STEP == 0
        and long <= _MAX_RATIO * short
        and long <= _MAX_LONG_EDGE
        and width * height <= _MAX_PIXELS
    )


TOOL_MODEL = "gpt-image-2"
"""The image model of a Responses API ``image_generation`` tool that names none."""
# Tool options that are not Images API parameters: the tool's type and model, what it does
# (action), an edit's mask given as a file or URL reference, and the echoed n.
_NOT_IMAGE_OPTIONS = ("type", "model", "action", "input_image_mask", "n")


def tool_request(tool: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """The Images API model and parameters (no prompt) a Responses API
    ``image_generation`` tool stands for: its ``model`` (default :data:`TOOL_MODEL`) and
    its options under their Images API names, ``stream=True`` added when it asks for
    ``partial_images`` (which come with the response's stream) in a streamed format.
    docs/responses.md."""
    model = tool.get("model") or TOOL_MODEL
    params = {key: value for key, value in tool.items() if key not in _NOT_IMAGE_OPTIONS}
    if params.get("partial_images") is not None and (
        params.get("output_format") not in _UNSTREAMED_FORMATS
    ):
        params["stream"] = True
    return str(model), params


def validate_tool(tool: Mapping[str, object]) -> None:
    """Raise :class:`ValidationError` for an ``image_generation`` tool option its model
    does not take, by the Images API rules of :func:`validate` (the response's input is
    not the image prompt, so the prompt is not checked)."""
    model, params = tool_request(tool)
    validate("generation", model, {**params, "prompt": "(the response's input)"})


def validate(
    operation: Operation,
    model: str,
    params: Mapping[str, object],
    *,
    images: Sequence[bytes | None] = (),
) -> None:
    """Raise :class:`ValidationError` on the first parameter ``model`` does not take.

    ``params`` uses the API's own names; ``mask`` is checked for presence only (``gif``
    takes none), so any non-``None`` value stands for a mask. ``images`` has one entry per
    edit input image: its bytes, or ``None`` for a URL or file_id reference. Rules and their
    sources: the comments of this module, docs/models.md.
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
        if value not in spec.sizes and not (spec.free_sizes and free_size_ok(value)):
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
        if not _int_in(value, *_COMPRESSION):
            raise refuse(f"an int from {_COMPRESSION[0]} to {_COMPRESSION[1]}")
    elif name == "stream":
        if not isinstance(value, bool):
            raise ValidationError(name, value, "True or False")
        if value and not spec.streaming:
            raise refuse(f"False or omitted (only {_takers(lambda s: s.streaming)} stream=True)")
    elif name == "partial_images":
        if not spec.streaming:
            raise refuse(_omitted(name, lambda s: s.streaming))
        if not _int_in(value, *_PARTIAL_IMAGES):
            raise refuse(f"an int from {_PARTIAL_IMAGES[0]} to {_PARTIAL_IMAGES[1]}")
    elif name in ("user", "safety_identifier") and not isinstance(value, str):
        # Official SDK 3.57: safety_identifier is a str; user, its deprecated alias, too.
        raise ValidationError(name, value, "a string")
    elif name == "frame_count" and not _int_in(value, *_FRAME_COUNT):
        raise refuse(f"an int from {_FRAME_COUNT[0]} to {_FRAME_COUNT[1]}")
    elif name == "frame_duration_ms" and not _int_in(value, 0, None):
        # Official SDK 3.57: the server rounds to 10 ms and caps at 655,350 ms, refusing none.
        raise refuse("an int >= 0 (milliseconds per frame)")
    elif name == "svg" and not isinstance(value, Mapping):
        raise refuse("an object such as {'model': ...}")


def _check_combinations(model: str, spec: ModelSpec, given: Mapping[str, object]) -> None:
    """Rules between parameters, once each one is valid on its own."""
    fmt = given.get("output_format", spec.output_formats[0] if spec.output_formats else None)
    for name, only_with in _FORMAT_PARAMETERS.items():
        if name in given and fmt != only_with:
            allowed = f"omitted unless output_format={only_with!r}"
            if not spec.output_formats:
                allowed = _omitted(name, lambda s: s.output_formats)
            raise ValidationError(name, given[name], allowed, model=model)
    if fmt in _UNSTREAMED_FORMATS:
        _check_unstreamed(model, str(fmt), given)
    if spec.output_formats:
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


def _check_unstreamed(model: str, fmt: str, given: Mapping[str, object]) -> None:
    """The rules of ``gif`` and ``svg``: answered in one JSON body (no ``stream=True``, no
    ``partial_images``), no ``output_compression``, gif no ``mask``, svg one image."""
    why = f"(output_format={fmt!r} is answered in one JSON body, not streamed)"
    for name in _UNSTREAMED_FORMATS[fmt]:
        if name == "stream" and given.get(name) is True:
            raise ValidationError(name, True, f"False or omitted {why}", model=model)
        if name != "stream" and name in given:
            raise ValidationError(
                name, given[name], f"omitted with output_format={fmt!r}", model=model
            )
    n_max = _FORMAT_N_MAX.get(fmt)
    if n_max is not None and given.get("n", 1) != n_max:
        allowed = f"exactly {n_max} with output_format={fmt!r}"
        raise ValidationError("n", given["n"], allowed, model=model)


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
    count = spec.edits.max_images
    if not count:
        allowed = f"a model that takes edits ({_takers(lambda s: s.edits.max_images)} them)"
        raise ValidationError("model", model, allowed, model=model)
    if not 1 <= len(images) <= count:
        allowed = "exactly 1 input image" if count == 1 else f"1 to {count} input images"
        raise ValidationError("images", len(images), allowed, model=model)
    limit = spec.edits.square_png_under
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


def _int_in(value: object, low: int, high: int | None) -> bool:
    """An int (not a bool) from ``low`` to ``high`` (``None``: no upper bound)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return low <= value and (high is None or value <= high)


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


def allowed_summary(name: str, model: str = TOOL_MODEL) -> str | None:
    """What the table allows for parameter ``name``, in a few words for a help text (the
    command line's options, docs/cli.md): ``model``'s values or range first, then what
    other models take, all read from :data:`MODELS` and the rules of this module, never
    written twice. ``None`` for a parameter with no rule beyond its type (``user``).

    Raises:
        UnknownNameError: ``name`` is not a parameter of :class:`EditParameters` (which
            holds :class:`GenerationParameters`' too); the error lists them.
        ValidationError: ``model`` is not in :data:`MODELS`.
    """
    if name not in EditParameters.__annotations__:
        known = ", ".join(EditParameters.__annotations__)
        raise UnknownNameError("name", name, f"a parameter of the Images API: {known}")
    spec = MODELS.get(model)
    if spec is None:
        raise ValidationError("model", model, "a model of the table: " + ", ".join(MODELS))
    if name in _CHOICE_FIELDS:
        return _summary_of_values(model, _choices(spec, name), lambda s: _choices(s, name))
    if name == "size":
        text = _summary_of_values(model, spec.sizes, lambda s: s.sizes)
        if spec.free_sizes:
            free = (
                f"or any WxH: multiples of {_SIZE_STEP}, 1:{_MAX_RATIO} to {_MAX_RATIO}:1,"
                f" at most {_MAX_LONG_EDGE} wide or high and {_MAX_PIXELS} pixels"
            )
            own, _, others = text.partition("; ")
            text = f"{own}, {free}" + (f"; {others}" if others else "")
        return text
    if name == "n":
        differing = {other: s.n_max for other, s in MODELS.items() if s.n_max != spec.n_max}
        text = _range(1, spec.n_max)
        if 0 < len(differing) <= _FEW:
            text += " (" + ", ".join(f"{m}: {_range(1, n)}" for m, n in differing.items()) + ")"
        elif differing:
            text += f"; other models: up to {max(differing.values())}"
        return text
    formats = {
        "output_compression": f"output_format {' or '.join(_COMPRESSED_FORMATS)}",
        **{parameter: f"output_format {fmt}" for parameter, fmt in _FORMAT_PARAMETERS.items()},
    }
    ranges = {
        "output_compression": _COMPRESSION,
        "partial_images": _PARTIAL_IMAGES,
        "frame_count": _FRAME_COUNT,
    }
    if name in ranges:
        low, high = ranges[name]
        needs = formats.get(name, "with stream, on the models that stream")
        return f"{_range(low, high)} ({needs})"
    if name == "frame_duration_ms":
        return f">= 0 ({formats[name]})"
    if name == "svg":
        return f"an object of options ({formats[name]})"
    if name == "stream":
        unstreamed = [other for other, s in MODELS.items() if not s.streaming]
        names = ", ".join(unstreamed) if len(unstreamed) <= _FEW else "some models"
        formats_text = " or ".join(_UNSTREAMED_FORMATS)
        return f"streamed by default, except on {names} and with output_format {formats_text}"
    return None


_FEW = 3  # models a summary names; more are "some models" or "not <model>"


def _range(low: int, high: int) -> str:
    return str(low) if low == high else f"{low} to {high}"


def _summary_of_values(
    model: str, own: tuple[str, ...], values: Callable[[ModelSpec], tuple[str, ...]]
) -> str:
    """``model``'s values of an enumerated parameter, then the other models' values."""
    others = list(dict.fromkeys(v for s in MODELS.values() for v in values(s) if v not in own))
    if own:
        return ", ".join(own) + (f"; other models: {', '.join(others)}" if others else "")
    takers = [other for other, s in MODELS.items() if values(s)]
    who = ", ".join(takers) + " only" if len(takers) <= _FEW else f"not {model}"
    return f"{', '.join(others)} ({who})"
