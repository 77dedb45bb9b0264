"""The emulator's output files in every ``output_format``: the Pillow images of
``_images.py`` (png, jpeg, webp), an animated GIF and a small SVG document.

Sources: the official SDK 3.57 parameter docs (docs/models.md): ``gif`` has
``frame_count`` frames (2-16, default 9) of ``frame_duration_ms`` each (default 200,
rounded to 10 ms, capped at 655,350 ms); ``svg`` is one vector document. Both are answered
in one JSON body, never streamed. Deterministic like ``_images.py``: the same request gives
the same bytes. Meant to run in a worker thread.
"""

from __future__ import annotations

import functools
import io
import re
from xml.sax.saxutils import escape

from PIL import Image, ImageChops

from ._images import RenderSpec, render_image

__all__ = ["render_file", "render_gif", "render_svg"]

_MAX_FRAME_MS = 655_350  # a GIF delay is 16 bits of centiseconds
_SVG_CELLS = 12  # the SVG is a mosaic this many cells wide
_SVG_CAPTION_CHARS = 80
# Characters XML 1.0 does not allow in a document (its "Char" production).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_file(
    spec: RenderSpec,
    output_format: str,
    compression: int | None,
    *,
    frame_count: int,
    frame_duration_ms: int,
) -> bytes:
    """The final image file of ``spec`` in ``output_format``; ``compression`` applies to
    jpeg and webp, ``frame_count`` and ``frame_duration_ms`` to gif."""
    if output_format == "gif":
        return render_gif(spec, frame_count, frame_duration_ms)
    if output_format == "svg":
        return render_svg(spec)
    return render_image(spec, output_format, compression)


def _still(spec: RenderSpec) -> Image.Image:
    """The final image of ``spec`` as an RGB Pillow image."""
    with Image.open(io.BytesIO(render_image(spec, "png", None))) as image:
        still: Image.Image = image.convert("RGB")
    return still


@functools.lru_cache(maxsize=16)
def render_gif(spec: RenderSpec, frame_count: int, frame_duration_ms: int) -> bytes:
    """An animated GIF (looping forever) of ``frame_count`` frames: the final image panned
    sideways by a further ``1/frame_count`` of its width per frame, each frame shown
    ``frame_duration_ms`` milliseconds (rounded to 10 ms by the GIF format)."""
    still = _still(spec)
    step = max(1, still.width // frame_count)
    frames = [
        ImageChops.offset(still, index * step, 0).quantize(colors=128)
        for index in range(frame_count)
    ]
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=min(frame_duration_ms, _MAX_FRAME_MS),
        loop=0,
        optimize=False,
    )
    return buffer.getvalue()


@functools.lru_cache(maxsize=16)
def render_svg(spec: RenderSpec) -> bytes:
    """A small SVG 1.1 document of the requested size: the final image as a mosaic of
    coloured cells (its mean colours), and the start of the prompt as a text caption."""
    still = _still(spec)
    caption = escape(_NOT_XML.sub("", spec.prompt[:_SVG_CAPTION_CHARS]))
    columns = min(_SVG_CELLS, still.width)
    rows = max(1, min(still.height, round(columns * still.height / still.width)))
    cells = still.resize((columns, rows), Image.Resampling.BOX)
    cell_w, cell_h = still.width / columns, still.height / rows
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{still.width}" '
        f'height="{still.height}" viewBox="0 0 {still.width} {still.height}">',
        f"<title>{caption}</title>",
    ]
    for y in range(rows):
        for x in range(columns):
            red, green, blue = cells.getpixel((x, y))  # type: ignore[misc]
            parts.append(
                f'<rect x="{x * cell_w:.1f}" y="{y * cell_h:.1f}" width="{cell_w + 0.5:.1f}" '
                f'height="{cell_h + 0.5:.1f}" fill="#{red:02x}{green:02x}{blue:02x}"/>'
            )
    size = max(8, min(still.width, still.height) // 18)
    parts.append(
        f'<text x="{size // 2}" y="{still.height - size // 2}" font-family="sans-serif" '
        f'font-size="{size}" fill="#ffffff">{caption}</text>'
    )
    parts.append("</svg>")
    return ("\n".join(parts) + "\n").encode("utf-8")
