"""Pillow rendering of the emulator's images: finals, previews, encodings.

Every image is real (it opens in any viewer at the requested size and format) and
deterministic: the same :class:`RenderSpec`, format and compression always give the same
bytes. A generation draws a gradient sky (unless the background is transparent), a sun,
hills, a few shapes placed by the prompt's hash and the prompt as a caption; a light grain
keeps file sizes closer to real model output. An edit derives from its first uploaded
image (fitted to the size, tinted from the prompt, the mask's transparent area marking what
changes); an edit of references only (URLs, file ids) is drawn from the prompt and the
references, framed. A preview (``partial_images``) is the final image pixelated and faded
towards its mean colour, less so as its index grows, so previews converge to the final
image, as the API's previews do.

Renders are cached, so repeated requests cost an encode at most; each cache is bounded in
bytes (docs/hostile-servers.md, "The emulator's limits"), and so are uploads: one of more
than :data:`MAX_UPLOAD_PIXELS` pixels is refused before it is decoded. All functions are
thread-safe and meant to run in a worker thread.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import random
import re
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from PIL import Image, ImageDraw, ImageFont, ImageOps, ImageStat, UnidentifiedImageError

__all__ = [
    "MAX_UPLOAD_PIXELS",
    "MEDIA_TYPES",
    "BytesBoundedCache",
    "InvalidImageError",
    "RenderSpec",
    "probe_size",
    "render_image",
    "render_preview",
]

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
"""``output_format`` -> media type of the encoded file."""

_GRAIN = 0.06  # weight of the noise layer: makes PNGs about as incompressible as photos
_FADE = 0.6  # how far the first preview is faded towards the mean colour
_CAPTION_CHARS = 240  # at most this much of the prompt is drawn
_CAPTION_LINES = 3
_FONT_LOCK = threading.Lock()  # FreeType faces are not safe to share between threads

MAX_UPLOAD_PIXELS = 4096 * 4096
"""The most pixels an uploaded image may have (the emulator renders at most 4096x4096)."""
_FINALS_BYTES = 256 * 1024 * 1024  # decoded final images kept for their previews
_ENCODED_BYTES = 128 * 1024 * 1024  # encoded finals, and encoded previews, each

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
RGB = tuple[int, int, int]
_K = TypeVar("_K")
_V = TypeVar("_V")


class BytesBoundedCache(Generic[_K, _V]):
    """A least-recently-used cache holding at most ``max_bytes`` (as ``size_of`` counts
    a key and its value); a value larger than that alone is not kept. Thread-safe; a
    value is computed outside the lock (two threads may compute the same one)."""

    def __init__(self, max_bytes: int, size_of: Callable[[_K, _V], int]) -> None:
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._items: OrderedDict[_K, tuple[_V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes_held(self) -> int:
        with self._lock:
            return self._bytes

    def get(self, key: _K, compute: Callable[[], _V]) -> _V:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found[0]
        value = compute()
        size = self._size_of(key, value)
        if size > self.max_bytes:
            return value
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


class InvalidImageError(ValueError):
    """Uploaded bytes that Pillow cannot read as an image."""


_OBJECT_REPR = re.compile(r"\s*<[^<>]*? object at 0x[0-9a-fA-F]+>")


def _unreadable(exc: BaseException) -> InvalidImageError:
    """The error for bytes Pillow could not read, in words for the client: Pillow's
    message without the repr of the in-memory file it was given
    (``<_io.BytesIO object at 0x...>`` means nothing to the sender and shows an address)."""
    if isinstance(exc, UnidentifiedImageError):
        reason = "it is not an image in a format the emulator reads (PNG, JPEG, WebP, GIF, ...)"
    else:
        reason = _OBJECT_REPR.sub("", str(exc)).strip() or type(exc).__name__
    return InvalidImageError(f"could not read the upload as an image: {reason}")


@dataclasses.dataclass(frozen=True)
class RenderSpec:
    """What determines one final image (apart from its file format).

    ``index`` is the image's position among the request's ``n`` images; ``source`` the
    bytes of an edit's first uploaded image, ``mask`` those of its mask; ``references``
    the edit inputs given as URLs or file ids (they only seed the drawing); ``edit`` says
    the image is an edit even when no bytes were uploaded.
    """

    prompt: str
    width: int
    height: int
    transparent: bool = False
    index: int = 0
    edit: bool = False
    source: bytes | None = dataclasses.field(default=None, repr=False)
    mask: bytes | None = dataclasses.field(default=None, repr=False)
    references: tuple[str, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


def probe_size(data: bytes) -> tuple[int, int]:
    """Width and height of an uploaded image, once it decoded completely; an image of
    more than :data:`MAX_UPLOAD_PIXELS` pixels is refused before it is decoded.

    Raises:
        InvalidImageError: Pillow does not recognise the bytes as an image, or the
            image has too many pixels.
    """
    try:
        image = Image.open(io.BytesIO(data))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _unreadable(exc) from exc
    except Image.DecompressionBombWarning as exc:  # raised where warnings are errors
        raise InvalidImageError(f"the upload has too many pixels: {exc}") from exc
    with image:
        width, height = image.size
        if width * height > MAX_UPLOAD_PIXELS:
            raise InvalidImageError(
                f"the upload is {width}x{height} ({width * height} pixels); "
                f"the emulator takes at most {MAX_UPLOAD_PIXELS} pixels"
            )
        try:
            image.load()  # a truncated file fails here, not later in a render
        except (OSError, ValueError, SyntaxError) as exc:
            raise _unreadable(exc) from exc
        return (int(width), int(height))


def _key_bytes(key: object) -> int:
    """The bytes a cache key holds: the upload and mask of its spec."""
    spec = key[0] if isinstance(key, tuple) else key
    assert isinstance(spec, RenderSpec)
    return len(spec.source or b"") + len(spec.mask or b"") + 256


_FINALS: BytesBoundedCache[RenderSpec, Image.Image] = BytesBoundedCache(
    _FINALS_BYTES, lambda spec, image: _key_bytes(spec) + image.width * image.height * 4
)
_IMAGES: BytesBoundedCache[tuple[RenderSpec, str, int | None], bytes] = BytesBoundedCache(
    _ENCODED_BYTES, lambda key, data: _key_bytes(key) + len(data)
)
_PREVIEWS: BytesBoundedCache[tuple[RenderSpec, str, int | None, int, int], bytes] = (
    BytesBoundedCache(_ENCODED_BYTES, lambda key, data: _key_bytes(key) + len(data))
)
CACHES = (_FINALS, _IMAGES, _PREVIEWS)
"""The render caches, for tests and stats: each has ``bytes_held`` and ``max_bytes``."""


def render_image(spec: RenderSpec, output_format: str, compression: int | None) -> bytes:
    """The final image of ``spec``, encoded as ``output_format`` (``png``, ``jpeg`` or
    ``webp``); ``compression`` (0-100, ``output_compression``) is the JPEG/WebP quality,
    ``None`` meaning 100."""
    # A copy: Image.save() sets attributes on the image, and the cached one is shared.
    return _IMAGES.get(
        (spec, output_format, compression),
        lambda: _encode(_final(spec).copy(), output_format, compression),
    )


def render_preview(
    spec: RenderSpec, output_format: str, compression: int | None, index: int, total: int
) -> bytes:
    """Preview ``index`` (0-based) of ``total`` of the image of ``spec``, encoded like the
    final image; the higher ``index``, the closer it is to :func:`render_image`."""
    return _PREVIEWS.get(
        (spec, output_format, compression, index, total),
        lambda: _encode(_degrade(_final(spec), index, total), output_format, compression),
    )


def _seed(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).digest()
    return random.Random(digest)


def _color(rng: random.Random, low: int = 0, high: int = 255) -> RGB:
    return (rng.randint(low, high), rng.randint(low, high), rng.randint(low, high))


def _final(spec: RenderSpec) -> Image.Image:
    """The final image as an ``RGBA`` (transparent) or ``RGB`` (opaque) Pillow image.

    Cached: callers must not modify the result.
    """
    return _FINALS.get(spec, lambda: _draw_final(spec))


def _draw_final(spec: RenderSpec) -> Image.Image:
    palette = _seed("palette", spec.prompt)  # shared by the n images of one prompt
    layout = _seed("layout", spec.prompt, str(spec.index), *spec.references)
    sky = (_color(palette, 0, 120), _color(palette, 120, 255))
    if spec.source is not None:
        image = _edit_upload(spec, palette, layout, sky)
    else:
        image = _background(spec.size, sky, transparent=spec.transparent)
        _draw_scene(image, palette, layout)
        if spec.edit:  # an edit of references: frame it so it reads as an edit
            border = max(2, min(spec.size) // 32)
            ImageDraw.Draw(image, "RGBA").rectangle(
                (0, 0, spec.width - 1, spec.height - 1),
                outline=(*_color(palette), 255),
                width=border,
            )
    _add_grain(image, layout)
    _draw_caption(image, spec.prompt)
    return image if spec.transparent else image.convert("RGB")


def _background(size: tuple[int, int], sky: tuple[RGB, RGB], *, transparent: bool) -> Image.Image:
    if transparent:
        return Image.new("RGBA", size, (0, 0, 0, 0))
    gradient = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    return ImageOps.colorize(gradient, sky[0], sky[1]).convert("RGBA")


def _draw_scene(image: Image.Image, palette: random.Random, layout: random.Random) -> None:
    """A sun, two ranges of hills and a few shapes, all placed by ``layout``."""
    width, height = image.size
    draw = ImageDraw.Draw(image, "RGBA")
    radius = max(2, int(min(width, height) * layout.uniform(0.08, 0.16)))
    cx, cy = int(width * layout.uniform(0.15, 0.85)), int(height * layout.uniform(0.12, 0.4))
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(255, 226, 130, 255))
    for depth in range(2):
        base = height * (0.6 + 0.15 * depth)
        points = [(0.0, float(height))]
        for step in range(7):
            x = width * step / 6
            points.append((x, base - height * layout.uniform(0.0, 0.2)))
        points.append((float(width), float(height)))
        draw.polygon(points, fill=(*_color(palette, 20, 160), 255))
    for _ in range(layout.randint(2, 4)):
        x0, y0 = width * layout.uniform(0.05, 0.75), height * layout.uniform(0.3, 0.8)
        x1 = x0 + width * layout.uniform(0.08, 0.22)
        y1 = y0 + height * layout.uniform(0.08, 0.22)
        fill = (*_color(palette), layout.randint(170, 255))
        kind = layout.choice(("ellipse", "rectangle", "triangle"))
        if kind == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif kind == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)


def _edit_upload(
    spec: RenderSpec, palette: random.Random, layout: random.Random, sky: tuple[RGB, RGB]
) -> Image.Image:
    """The first upload fitted to the size and tinted, changed only where the mask is clear."""
    assert spec.source is not None
    original = _open_fitted(spec.source, spec.size)
    if not spec.transparent:  # flatten the upload's own transparency onto the sky
        original = Image.alpha_composite(_background(spec.size, sky, transparent=False), original)
    red, green, blue, alpha = original.split()
    tint = Image.new("RGB", spec.size, _color(palette))
    tinted = Image.blend(Image.merge("RGB", (red, green, blue)), tint, 0.3)
    edited = Image.merge("RGBA", (*tinted.split(), alpha))
    draw = ImageDraw.Draw(edited, "RGBA")
    radius = max(2, int(min(spec.size) * layout.uniform(0.1, 0.2)))
    cx, cy = int(spec.width * layout.uniform(0.2, 0.8)), int(spec.height * layout.uniform(0.2, 0.6))
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(*_color(palette), 200))
    if spec.mask is None:
        return edited
    mask = _open_fitted(spec.mask, spec.size).getchannel("A")
    # OpenAI's rule: the fully transparent areas of the mask are what the edit changes.
    return Image.composite(original, edited, mask)


def _open_fitted(data: bytes, size: tuple[int, int]) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _unreadable(exc) from exc
    return ImageOps.fit(image, size, Image.Resampling.LANCZOS)


def _add_grain(image: Image.Image, layout: random.Random) -> None:
    """Blends deterministic noise into the colour channels, in place."""
    noise = Image.frombytes("L", image.size, layout.randbytes(image.width * image.height))
    red, green, blue, alpha = image.split()
    grained = Image.blend(Image.merge("RGB", (red, green, blue)), noise.convert("RGB"), _GRAIN)
    image.paste(Image.merge("RGBA", (*grained.split(), alpha)))


@functools.lru_cache(maxsize=32)
def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except ImportError:  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _draw_caption(image: Image.Image, prompt: str) -> None:
    """Draws the start of the prompt on a dark band at the bottom, in place."""
    width, height = image.size
    size = max(8, min(width, height) // 18)
    font = _font(size)
    margin = max(2, size // 3)
    columns = max(4, int((width - 2 * margin) / (size * 0.55)))
    lines = textwrap.wrap(" ".join(prompt[:_CAPTION_CHARS].split()), columns) or [""]
    if len(lines) > _CAPTION_LINES:
        lines = [*lines[: _CAPTION_LINES - 1], lines[_CAPTION_LINES - 1][: columns - 1] + "…"]
    line_height = int(size * 1.25)
    top = height - margin * 2 - line_height * len(lines)
    draw = ImageDraw.Draw(image, "RGBA")
    draw.rectangle((0, top, width, height), fill=(0, 0, 0, 150))
    with _FONT_LOCK:
        for number, line in enumerate(lines):
            draw.text(
                (margin, top + margin + number * line_height),
                line,
                font=font,
                fill=(255, 255, 255, 255),
            )


def _degrade(image: Image.Image, index: int, total: int) -> Image.Image:
    """Pixelates and fades ``image`` towards its mean colour; less as ``index`` grows."""
    progress = (index + 1) / (total + 1)  # in (0, 1): never the final image itself
    width, height = image.size
    scale = progress / 2
    small = image.resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX
    )
    coarse = small.resize(image.size, Image.Resampling.NEAREST)
    mean = tuple(round(channel) for channel in ImageStat.Stat(image).mean)
    flat = Image.new(image.mode, image.size, mean)
    return Image.blend(coarse, flat, _FADE * (1 - progress))


def _encode(image: Image.Image, output_format: str, compression: int | None) -> bytes:
    """Encodes as PNG, JPEG or WebP; ``compression`` is the JPEG/WebP quality (0-100)."""
    quality = 100 if compression is None else max(0, min(100, compression))
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, "PNG", compress_level=3)
    elif output_format == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
    elif output_format == "webp":
        image.save(buffer, "WEBP", quality=quality, method=0)
    else:
        raise ValueError(f"unknown output_format {output_format!r}; expected one of {MEDIA_TYPES}")
    return buffer.getvalue()
