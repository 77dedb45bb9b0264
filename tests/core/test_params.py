"""ttstream.params against its sources: the official SDK 3.57 parameter docs, the OpenAI
Images API reference and TTAPI's docs (docs/models.md). The tables here are written from
those sources, not from ttstream.params.MODELS."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from ttstream import TTStreamError, ValidationError
from ttstream.params import (
    MODELS,
    RETIRED_ON_OPENAI,
    ModelSpec,
    free_size_ok,
    streams_by_default,
    supports_streaming,
    validate,
)

GPT_2 = ("gpt-image-2", "gpt-image-2-2026-04-21")
GPT_2_5 = ("gpt-image-2.5-sunburst", "gpt-image-2.5-sunburst-2026-09-08")
GPT_2_5 += ("gpt-image-2.5-flare", "gpt-image-2.5-flare-2026-09-08")
FREE = (*GPT_2, *GPT_2_5)  # the models that take any WxH within the rule
FIXED = ("gpt-image-2.6-sunburst", "gpt-image-2.6-flare", "chatgpt-image-latest")
FIXED += ("gpt-image-1.5", "gpt-image-1-mini", "gpt-image-1")
GPT = (*FREE, *FIXED)
NOT_2_5 = (*GPT_2, *FIXED)
DALL_E = ("dall-e-3", "dall-e-2")
ALL = (*GPT, *DALL_E)
PROMPT_MAX = dict.fromkeys(GPT, 32000) | {"dall-e-3": 4000, "dall-e-2": 1000}
FIDELITY = {"gpt-image-1.5": ("high", "low"), "gpt-image-1": ("high", "low")}
FIDELITY |= {"gpt-image-1-mini": ("low",)}
FIDELITY |= dict.fromkeys((*GPT_2_5, *FIXED[:3]), ("high", "low"))  # the SDK is silent: open
RETIRED = {"gpt-image-1": "2026-10-23", "dall-e-3": "2026-05-12", "dall-e-2": "2026-05-12"}
GIF, SVG = {"output_format": "gif"}, {"output_format": "svg"}
MIB = 1024 * 1024
PNG_WEBP, HL, URL_B64 = ("png", "webp"), ("high", "low"), ("url", "b64_json")
JPEG_FORMAT = {"output_format": "jpeg"}
JPEG = "output_format='jpeg'"


def png(width: int, height: int, *, padding: int = 0) -> bytes:
    """A minimal PNG by hand: signature, IHDR, an optional filler chunk, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    filler = chunk(b"teXt", b"x" * padding) if padding else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + filler + chunk(b"IEND", b"")


def pillow(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, fmt)
    return out.getvalue()


def ok(
    model: str,
    params: Mapping[str, object],
    images: Sequence[object] | None = None,
) -> object:
    """An accepted request: a generation, or an edit when ``images`` is given."""
    operation = "generation" if images is None else "edit"
    return pytest.param(operation, model, {"prompt": "a cat", **params}, tuple(images or ()))


def bad(
    model: str,
    params: Mapping[str, object],
    param: str,
    mention: str,
    *,
    images: Sequence[object] | None = None,
    op: str = "",
    any_model: bool = False,
    prompt: object = "a cat",
) -> object:
    """A refused request (an edit when ``images`` is given): the error is on ``param``, has
    ``model`` unless the rule holds for any model, and its text mentions ``mention``."""
    operation = op or ("generation" if images is None else "edit")
    full = {"prompt": prompt, **params}
    name = f"{operation}-{model}-{param}-{params!r:.60}-{prompt!r:.12}"
    expected_model = None if any_model else model
    args = (operation, model, full, tuple(images or ()), param, expected_model, mention)
    return pytest.param(*args, id=name)


FREE_SIZES = ("2048x1152", "1792x1024", "16x48", "48x16", "3840x1280", "1536x864")
FREE_SIZES += ("3840x2160", "2160x3840", "2880x2880", "2560x1440", "1280x3840")

ACCEPTED = [
    *(ok(m, {}) for m in ALL),
    *(ok(m, {"prompt": "x" * PROMPT_MAX[m]}) for m in ALL),
    *(ok(m, {"n": n}) for m in (*GPT, "dall-e-2") for n in (1, 2, 10)),
    ok("dall-e-3", {"n": 1}),
    *(ok(m, {"size": s}) for m in GPT for s in ("auto", "1024x1024", "1536x1024", "1024x1536")),
    *(ok(m, {"size": s}) for m in FREE for s in FREE_SIZES),
    *(ok("dall-e-3", {"size": s}) for s in ("1024x1024", "1792x1024", "1024x1792")),
    *(ok("dall-e-2", {"size": s}) for s in ("256x256", "512x512", "1024x1024")),
    *(ok(m, {"quality": q}) for m in GPT for q in ("auto", "high", "medium", "low")),
    *(ok(m, {"quality": q}) for m in GPT_2_5 for q in ("xhigh", "max")),
    *(ok(m, {"complexity": c}) for m in GPT for c in ("low", "medium", "high")),
    *(ok("dall-e-3", {"quality": q}) for q in ("hd", "standard", "auto")),
    *(ok("dall-e-2", {"quality": q}) for q in ("standard", "auto")),
    *(ok("dall-e-3", {"style": s}) for s in ("vivid", "natural")),
    *(ok(m, {"background": b}) for m in GPT for b in ("transparent", "opaque", "auto")),
    *(ok(m, {"background": "transparent", "output_format": f}) for m in GPT for f in PNG_WEBP),
    ok("gpt-image-2", {"background": "opaque", "output_format": "jpeg"}),
    ok("gpt-image-1", {"background": "auto", "output_format": "jpeg"}),
    *(ok(m, {"output_format": f}) for m in GPT for f in ("png", "jpeg", "webp")),
    *(ok(m, {"output_format": "jpeg", "output_compression": c}) for m in GPT for c in (0, 55, 100)),
    ok("gpt-image-2", {"output_format": "webp", "output_compression": 0}),
    # 100 with png: TTAPI's documented example request sends exactly that.
    ok("gpt-image-2", {"output_format": "png", "output_compression": 100}),
    ok("gpt-image-1.5", {"output_compression": 100}),
    *(ok(m, {"moderation": v}) for m in GPT for v in ("low", "auto")),
    *(ok(m, {"response_format": f}) for m in DALL_E for f in ("url", "b64_json")),
    ok("dall-e-2", {"response_format": "url"}, [None]),
    *(ok(m, {"stream": True}) for m in GPT),
    *(ok(m, {"stream": False}) for m in ALL),
    *(ok(m, {"stream": True, "partial_images": p}) for m in GPT for p in range(4)),
    ok("gpt-image-2", {"stream": True, "partial_images": 2}, [None]),
    *(ok(m, {"input_fidelity": f}, [None]) for m, fs in FIDELITY.items() for f in fs),
    *(ok(m, {"user": "user-1234"}) for m in ALL),
    *(ok(m, {"safety_identifier": "hash-of-user"}) for m in ALL),
    *(ok(m, {"safety_identifier": "", "user": "u"}) for m in ALL),
    # gif: frame_count 2-16, frame_duration_ms; answered in one body (stream False)
    *(ok(m, GIF) for m in GPT),
    *(ok(m, {**GIF, "frame_count": c}) for m in GPT for c in (2, 9, 16)),
    *(ok(m, {**GIF, "frame_duration_ms": d}) for m in GPT for d in (0, 200, 700_000)),
    ok("gpt-image-2", {**GIF, "frame_count": 3, "frame_duration_ms": 50, "stream": False}),
    ok("gpt-image-2", {**GIF, "n": 4, "background": "opaque", "size": "512x256"}),
    ok("gpt-image-2.5-flare", {**GIF, "quality": "max", "complexity": "low"}, [None]),
    ok("gpt-image-2", {**GIF, "mask": None}, [None]),
    # svg: n=1, an svg object
    *(ok(m, SVG) for m in GPT),
    ok("gpt-image-2", {**SVG, "n": 1, "stream": False, "svg": {"model": "gpt-5"}}),
    ok("gpt-image-2", {**SVG, "mask": b"m"}, [None]),
    # None counts as omitted, mask is not checked here, unknown names pass through.
    ok("dall-e-2", {"style": None, "n": None, "stream": None, "background": None}),
    ok("gpt-image-1", {"output_compression": None, "output_format": None, "prompt": "p"}),
    ok("gpt-image-2", {"input_fidelity": None}, [None]),
    ok("dall-e-2", {"mask": b"anything at all"}, [png(8, 8)]),
    *(ok(m, {"future_param": object(), "seed": "x"}) for m in ALL),
    # Edits: counts, references, dall-e-2's square PNG under 4 MiB.
    *(ok(m, {}, [None]) for m in (*GPT, "dall-e-2")),
    *(ok(m, {}, [png(8, 8), None] * 8) for m in GPT),
    ok("gpt-image-1", {}, [png(30, 10), b"not even a PNG"]),
    ok("dall-e-2", {}, [png(1024, 1024)]),
    ok("dall-e-2", {}, [pillow(16, 16)]),
    ok("dall-e-2", {}, [png(8, 8, padding=4 * MIB - 100)]),
    # Unknown models pass through unchecked entirely.
    pytest.param("generation", "gpt-image-3", {"n": 99, "size": "7x7"}, (b"x",), id="unknown"),
    pytest.param("edit", "some-vendor/model", {}, (), id="unknown-edit"),
]


@pytest.mark.parametrize(("operation", "model", "params", "images"), ACCEPTED)
def test_accepted(
    operation: str, model: str, params: Mapping[str, object], images: Sequence[bytes | None]
) -> None:
    validate(operation, model, params, images=images)  # type: ignore[arg-type]


WXH_RULE = "multiples of 16"
BAD_WXH = ["1024X1024", "1024x", "x1024", " 1024x1024", "1024x1024 ", "1024x1024\n", "0x0"]
BAD_WXH += ["-16x32", "16x-32", "1000x1000", "16x64", "64x16", "0016x32", "", "16 x 16"]
BAD_WXH += ["\uff11\uff10\uff12\uff14x1024", "1024x1024x16", "16.0x16", "1e3x16"]
ONLY_GPT = "chatgpt-image-latest, gpt-image-1.5, gpt-image-1-mini, gpt-image-1 take"
OVER_LIMIT = ("3856x1296", "4096x2048", "3840x2176", "2176x3840", "2896x2896", "999984x333328")
ONE_BODY = "answered in one JSON body"

BAD_FRAMES = (1, 17, 0, True, 3.0, "3")
BAD_MS = (-1, 1.5, "200", False)
GIF_SVG = ("gif", "svg")
REFUSED = [
    # prompt
    *(bad(m, {}, "prompt", str(PROMPT_MAX[m]), prompt=None) for m in ALL),
    *(bad(m, {}, "prompt", str(PROMPT_MAX[m]), prompt="x" * (PROMPT_MAX[m] + 1)) for m in ALL),
    bad("gpt-image-1", {}, "prompt", "non-empty", prompt=""),
    bad("dall-e-2", {}, "prompt", "string", prompt=123),
    bad("gpt-image-1", {}, "prompt", "32000", prompt=None, images=[None]),
    # n (bool is not an int)
    *(bad(m, {"n": n}, "n", "1 to 10") for m in GPT for n in (0, 11, True, 1.0, "1")),
    *(bad("dall-e-2", {"n": n}, "n", "1 to 10") for n in (0, 11, -1)),
    *(bad("dall-e-3", {"n": n}, "n", "exactly 1") for n in (0, 2, 10, True)),
    # size
    *(bad(m, {"size": "2048x1152"}, "size", "'1536x1024'") for m in FIXED),
    *(bad(m, {"size": "1792x1024"}, "size", "'auto'") for m in FIXED),
    *(bad(m, {"size": s}, "size", WXH_RULE) for m in FREE for s in BAD_WXH),
    *(bad(m, {"size": s}, "size", "3840x2160") for m in FREE for s in OVER_LIMIT),
    bad("gpt-image-2", {"size": 1024}, "size", "'1024x1536'"),
    *(bad("dall-e-3", {"size": s}, "size", "'1792x1024'") for s in ("256x256", "auto")),
    *(bad("dall-e-2", {"size": s}, "size", "'512x512'") for s in ("1792x1024", "2048x2048")),
    # quality
    *(bad(m, {"quality": q}, "quality", "'medium'") for m in GPT for q in ("hd", "standard")),
    *(bad(m, {"quality": q}, "quality", "'low'") for m in NOT_2_5 for q in ("xhigh", "max")),
    *(bad(m, {"quality": q}, "quality", "'standard'") for m in DALL_E for q in ("xhigh", "max")),
    bad("gpt-image-2.5-sunburst", {"quality": "ultra"}, "quality", "'xhigh', 'max'"),
    # complexity
    *(bad(m, {"complexity": "extreme"}, "complexity", "'medium'") for m in GPT),
    *(bad(m, {"complexity": "low"}, "complexity", ONLY_GPT) for m in DALL_E),
    *(bad("dall-e-3", {"quality": q}, "quality", "'hd'") for q in ("high", "low", "HD")),
    *(bad("dall-e-2", {"quality": q}, "quality", "'standard'") for q in ("hd", "high")),
    # style
    *(bad(m, {"style": "vivid"}, "style", "only dall-e-3 takes style") for m in GPT),
    bad("dall-e-2", {"style": "natural"}, "style", "only dall-e-3 takes style"),
    bad("dall-e-3", {"style": "vibrant"}, "style", "'natural'"),
    # background; transparent needs png (the default) or webp
    *(bad(m, {"background": "opaque"}, "background", ONLY_GPT) for m in DALL_E),
    *(bad(m, {"background": "none"}, "background", "'transparent'") for m in GPT),
    *(
        bad(m, {"background": "transparent", "output_format": "jpeg"}, "background", JPEG)
        for m in GPT
    ),
    # output_format
    *(bad(m, {"output_format": "tiff"}, "output_format", "'gif', 'svg'") for m in GPT),
    bad("gpt-image-2", {"output_format": "PNG"}, "output_format", "'png'"),
    *(bad(m, {"output_format": "png"}, "output_format", ONLY_GPT) for m in DALL_E),
    # output_compression: 0-100, only with jpeg or webp (100 alone is let through with png)
    *(bad(m, {"output_compression": 50}, "output_compression", ONLY_GPT) for m in DALL_E),
    *(
        bad(m, {**JPEG_FORMAT, "output_compression": c}, "output_compression", "0 to 100")
        for m in GPT
        for c in (101, -1, True, 50.0, "50")
    ),
    *(bad(m, {"output_compression": 50}, "output_compression", "'jpeg' or 'webp'") for m in GPT),
    bad(
        "gpt-image-2",
        {"output_format": "png", "output_compression": 0},
        "output_compression",
        "output_format='png'",
    ),
    # moderation
    *(bad(m, {"moderation": "high"}, "moderation", "'low'") for m in GPT),
    *(bad(m, {"moderation": "low"}, "moderation", ONLY_GPT) for m in DALL_E),
    # response_format: gpt-image models always return b64_json
    *(bad(m, {"response_format": f}, "response_format", "b64_json") for m in GPT for f in URL_B64),
    bad("gpt-image-1", {"response_format": "url"}, "response_format", "dall-e-2", images=[None]),
    *(bad(m, {"response_format": "file"}, "response_format", "'url'") for m in DALL_E),
    # stream
    *(bad(m, {"stream": True}, "stream", "False or omitted") for m in DALL_E),
    *(
        bad(m, {"stream": v}, "stream", "True or False", any_model=True)
        for m in ALL
        for v in ("yes", 1)
    ),
    # partial_images: 0-3, only with stream=True
    *(
        bad(m, {"stream": True, "partial_images": p}, "partial_images", "0 to 3")
        for m in GPT
        for p in (4, -1, True, "2")
    ),
    *(bad(m, {"partial_images": 2}, "partial_images", "stream=True") for m in GPT),
    *(bad(m, {"partial_images": 0, "stream": False}, "partial_images", "stream=True") for m in GPT),
    *(bad(m, {"partial_images": 1}, "partial_images", ONLY_GPT) for m in DALL_E),
    # input_fidelity: edits only; gpt-image-1.5 / gpt-image-1 only
    *(
        bad(m, {"input_fidelity": "high"}, "input_fidelity", "edit-only", any_model=True)
        for m in ALL
    ),
    bad("gpt-image-2", {"input_fidelity": "high"}, "input_fidelity", "omitted", images=[None]),
    bad("gpt-image-1", {"input_fidelity": "medium"}, "input_fidelity", "'low'", images=[None]),
    bad("gpt-image-1-mini", {"input_fidelity": "high"}, "input_fidelity", "'low'", images=[None]),
    *(bad(m, {"input_fidelity": "low"}, "input_fidelity", "omitted", images=[None]) for m in GPT_2),
    bad("dall-e-2", {"input_fidelity": "low"}, "input_fidelity", "gpt-image-1", images=[None]),
    # user
    *(bad(m, {"user": 42}, "user", "a string", any_model=True) for m in ALL),
    *(bad(m, {"safety_identifier": 7}, "safety_identifier", "string", any_model=True) for m in ALL),
    # gif: its own parameters, and what it refuses
    *(bad(m, {**GIF, "frame_count": c}, "frame_count", "2 to 16") for m in GPT for c in BAD_FRAMES),
    *(bad(m, {"frame_count": 3}, "frame_count", "output_format='gif'") for m in GPT),
    *(bad(m, {**SVG, "frame_count": 3}, "frame_count", "output_format='gif'") for m in GPT),
    *(bad(m, {"frame_count": 3}, "frame_count", ONLY_GPT) for m in DALL_E),
    *(
        bad(m, {**GIF, "frame_duration_ms": d}, "frame_duration_ms", ">= 0")
        for m in GPT
        for d in BAD_MS
    ),
    bad("gpt-image-2", {"frame_duration_ms": 100}, "frame_duration_ms", "output_format='gif'"),
    *(bad(m, {**GIF, "stream": True}, "stream", ONE_BODY) for m in GPT),
    *(bad(m, {**GIF, "stream": True, "partial_images": 1}, "stream", ONE_BODY) for m in GPT),
    *(bad(m, {**GIF, "partial_images": 0}, "partial_images", "'gif'") for m in GPT),
    *(
        bad(m, {**GIF, "output_compression": c}, "output_compression", "'gif'")
        for m in GPT
        for c in (0, 100)
    ),
    *(bad(m, {**GIF, "mask": b"m"}, "mask", "output_format='gif'", images=[None]) for m in GPT),
    bad("gpt-image-2", {**GIF, "background": "transparent"}, "background", "'gif'"),
    *(bad(m, {"output_format": f}, "output_format", ONLY_GPT) for m in DALL_E for f in GIF_SVG),
    # svg: n=1, no stream, no partials, no compression; the svg object goes with it only
    *(
        bad(m, {**SVG, "n": n}, "n", "exactly 1 with output_format='svg'")
        for m in GPT
        for n in (2, 10)
    ),
    *(bad(m, {**SVG, "stream": True}, "stream", ONE_BODY) for m in GPT),
    bad("gpt-image-2", {**SVG, "partial_images": 2}, "partial_images", "'svg'"),
    bad("gpt-image-2", {**SVG, "output_compression": 100}, "output_compression", "'svg'"),
    bad("gpt-image-2", {"svg": {"model": "gpt-5"}}, "svg", "output_format='svg'"),
    bad("gpt-image-2", {**GIF, "svg": {"model": "gpt-5"}}, "svg", "output_format='svg'"),
    bad("gpt-image-2", {**SVG, "svg": "gpt-5"}, "svg", "an object"),
    bad("dall-e-2", {"svg": {}}, "svg", ONLY_GPT),
    # edit input images
    bad("dall-e-3", {}, "model", "dall-e-2", images=[None]),
    *(bad(m, {}, "images", "1 to 16", images=[]) for m in GPT),
    *(bad(m, {}, "images", "1 to 16", images=[None] * 17) for m in GPT),
    bad("dall-e-2", {}, "images", "exactly 1", images=[]),
    bad("dall-e-2", {}, "images", "exactly 1", images=[None, None]),
    bad("dall-e-2", {}, "images", "not a PNG", images=[pillow(16, 16, "JPEG")]),
    bad("dall-e-2", {}, "images", "not a PNG", images=[png(16, 16)[:20]]),
    bad("dall-e-2", {}, "images", "512x256", images=[png(512, 256)]),
    bad("dall-e-2", {}, "images", "16x32", images=[pillow(16, 32)]),
    bad("dall-e-2", {}, "images", "4194304", images=[png(8, 8, padding=4 * MIB)]),
    *(
        bad(m, {}, "images", "generation", op="generation", images=[None], any_model=True)
        for m in ALL
    ),
    # model and operation
    bad("", {}, "model", "gpt-image-2", any_model=True),
    bad("dall-e-2", {}, "operation", "'edit'", op="variation", any_model=True),
]


@pytest.mark.parametrize(
    ("operation", "model", "params", "images", "param", "expected_model", "mention"), REFUSED
)
def test_refused(
    operation: str,
    model: str,
    params: Mapping[str, object],
    images: Sequence[bytes | None],
    param: str,
    expected_model: str | None,
    mention: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(operation, model, params, images=images)  # type: ignore[arg-type]
    err = caught.value
    assert (err.param, err.model) == (param, expected_model)
    assert isinstance(err, ValueError)
    assert isinstance(err, TTStreamError)
    text = str(err)
    assert text.startswith(f"{param}=")
    assert f"{param} must be" in text
    assert mention in text
    assert mention in err.allowed or mention in repr(err.value)


def test_model_must_be_a_non_empty_string() -> None:
    for model in (None, 3, ""):
        with pytest.raises(ValidationError) as caught:
            validate("generation", model, {"prompt": "a cat"})  # type: ignore[arg-type]
        assert caught.value.param == "model"


def test_a_huge_prompt_is_not_echoed() -> None:
    with pytest.raises(ValidationError) as caught:
        validate("generation", "dall-e-3", {"prompt": "y" * 40_000})
    assert len(str(caught.value)) < 300
    assert "4000" in str(caught.value)
    assert caught.value.value == "y" * 40_000


def test_gpt_image_2_size_rule_is_described() -> None:
    with pytest.raises(ValidationError) as caught:
        validate("generation", "gpt-image-2", {"prompt": "p", "size": "10x10"})
    assert "'1536x1024'" in str(caught.value)
    assert "WxH" in caught.value.allowed
    assert "1:3 and 3:1" in caught.value.allowed


def test_dall_e_2_png_errors_say_what_was_wrong() -> None:
    cases = {
        b"GIF89a" + bytes(40): "not a PNG (46 bytes)",
        png(300, 200): "300x200, not square",
        png(8, 8, padding=5 * MIB): f"{len(png(8, 8, padding=5 * MIB))} bytes",
    }
    for data, said in cases.items():
        with pytest.raises(ValidationError) as caught:
            validate("edit", "dall-e-2", {"prompt": "p"}, images=[data])
        assert said in str(caught.value)
        assert "square PNG" in str(caught.value)


def free_size_expected(width: int, height: int) -> bool:
    """The free-size rule as the SDK 3.57 docs state it, written independently of ttstream:
    both divisible by 16, aspect 1:3 to 3:1, at most 3840x2160 (long edge 3840, 8,294,400
    pixels)."""
    positive = width > 0 and height > 0
    on_grid = width % 16 == 0 and height % 16 == 0
    within = max(width, height) <= 3840 and width * height <= 8_294_400
    return positive and on_grid and within and 1 / 3 <= width / height <= 3


def check_free_size(size: str, expected: bool, model: str = "gpt-image-2") -> None:
    assert free_size_ok(size) is expected
    if expected:
        validate("generation", model, {"prompt": "p", "size": size})
    else:
        with pytest.raises(ValidationError) as caught:
            validate("generation", model, {"prompt": "p", "size": size})
        assert caught.value.param == "size"


EDGES = st.integers(min_value=-64, max_value=999_999) | st.integers(1, 62_499).map(lambda k: 16 * k)
SMALL_EDGES = st.integers(1, 300).map(lambda k: 16 * k)


@pytest.mark.parametrize("model", FREE)
@given(width=EDGES | SMALL_EDGES, height=EDGES | SMALL_EDGES)
def test_free_sizes(model: str, width: int, height: int) -> None:
    check_free_size(f"{width}x{height}", free_size_expected(width, height), model)


@given(st.text(alphabet="0123456789x-+ 16\n\uff11", max_size=14))
def test_free_sizes_from_any_text(size: str) -> None:
    width, sep, height = size.partition("x")
    canonical = [part.isascii() and part.isdigit() and part[:1] != "0" for part in (width, height)]
    well_formed = bool(sep) and all(canonical) and max(len(width), len(height)) <= 6
    free = well_formed and free_size_expected(int(width), int(height))
    if size in MODELS["gpt-image-2"].sizes:
        validate("generation", "gpt-image-2", {"prompt": "p", "size": size})
    else:
        check_free_size(size, free)


@pytest.mark.parametrize("side", [16 * k for k in range(1, 81)])
def test_free_sizes_at_the_ratio_edges(side: int) -> None:
    for width, height in ((side, 3 * side), (3 * side, side)):
        check_free_size(f"{width}x{height}", True)
    for width, height in ((side, 3 * side + 16), (3 * side + 16, side)):
        check_free_size(f"{width}x{height}", False)


@pytest.mark.parametrize("model", FIXED)
def test_fixed_size_models_take_no_free_size(model: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate("generation", model, {"prompt": "p", "size": "1536x864"})
    assert "WxH" not in caught.value.allowed


@pytest.mark.parametrize(
    ("model", "streams"),
    [*((m, True) for m in GPT), *((m, False) for m in DALL_E), ("gpt-image-9", True), ("x", True)],
)
def test_supports_streaming(model: str, streams: bool) -> None:
    assert supports_streaming(model) is streams


@pytest.mark.parametrize(
    ("model", "params", "streams"),
    [
        *((m, {}, True) for m in GPT),
        *((m, {"output_format": f}, True) for m in GPT for f in ("png", "jpeg", "webp", None)),
        *((m, {"output_format": f}, False) for m in GPT for f in GIF_SVG),
        *((m, {}, False) for m in DALL_E),
        ("gpt-image-9", {}, True),
        ("gpt-image-9", {"output_format": "gif"}, False),
    ],
)
def test_streams_by_default(model: str, params: Mapping[str, object], streams: bool) -> None:
    assert streams_by_default(model, params) is streams
    if model in MODELS:  # the default it gives is one the model takes
        validate("generation", model, {"prompt": "p", "stream": streams, **params})


def test_models_table() -> None:
    assert set(MODELS) == set(ALL)
    assert all(isinstance(spec, ModelSpec) for spec in MODELS.values())
    with pytest.raises(TypeError):
        MODELS["dall-e-4"] = MODELS["dall-e-3"]  # type: ignore[index]
    assert {m: MODELS[m].prompt_max for m in ALL} == PROMPT_MAX
    edits = {m: MODELS[m].edits.max_images for m in ALL}
    assert edits == dict.fromkeys(GPT, 16) | {"dall-e-3": 0, "dall-e-2": 1}
    assert dict(RETIRED_ON_OPENAI) == RETIRED
    assert {m for m in ALL if MODELS[m].free_sizes} == set(FREE)
