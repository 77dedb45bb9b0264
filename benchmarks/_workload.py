"""The Images API streams every benchmark serves: deterministic bytes, fixed chunking.

A stream is what gpt-image-2 sends for ``partial_images=3``: three previews and the final
image, each one ``data:`` line of compact JSON as the emulator writes it (type, b64_json,
created_at, size, quality, background, output_format, then partial_image_index or
usage). Images are random bytes (incompressible, like PNG data), so their base64 is the
realistic 4/3 of the image size.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass, field

KiB, MiB, MB = 1024, 1024 * 1024, 1_000_000
CHUNK = 64 * KiB  # what httpcore reads from a socket at a time, and what the mocks serve
SEED = 20240611

_FIELDS = {"size": "1024x1024", "quality": "high", "background": "opaque", "output_format": "png"}
_USAGE = {
    "input_tokens": 52,
    "input_tokens_details": {"image_tokens": 0, "text_tokens": 52},
    "output_tokens": 4160,
    "total_tokens": 4212,
}


@dataclass
class Stream:
    """One SSE body: its bytes, where each event ends, and each event's data and image."""

    name: str
    body: bytes
    event_ends: list[int]  # offset just past each event's blank line
    datas: list[str] = field(repr=False)  # each event's data (for the json + base64 floor)
    b64s: list[str] = field(repr=False)  # each event's b64_json (for the base64 floor)
    image_bytes: int  # all images, decoded

    @property
    def largest_event(self) -> int:
        starts = [0, *self.event_ends[:-1]]
        return max(end - start for start, end in zip(starts, self.event_ends, strict=True))

    def chunks(self, size: int = CHUNK) -> list[bytes]:
        return [self.body[i : i + size] for i in range(0, len(self.body), size)]


def event_data(kind: str, b64: str, index: int) -> str:
    obj = {"type": f"image_generation.{kind}", "b64_json": b64, "created_at": 1_700_000_000}
    obj.update(_FIELDS)
    if kind == "partial_image":
        obj["partial_image_index"] = index
    else:
        obj["usage"] = _USAGE
    return json.dumps(obj, separators=(",", ":"))


def make_stream(image_sizes: list[int], *, seed: int = SEED, name: str = "") -> Stream:
    """Previews for all but the last size, then the completed image of the last size."""
    rng = random.Random(seed)
    frames: list[bytes] = []
    ends, datas, b64s = [], [], []
    for index, size in enumerate(image_sizes):
        kind = "completed" if index == len(image_sizes) - 1 else "partial_image"
        b64 = base64.b64encode(rng.randbytes(size)).decode("ascii")
        data = event_data(kind, b64, index)
        frames.append(f"event: image_generation.{kind}\ndata: {data}\n\n".encode())
        ends.append(sum(map(len, frames)))
        datas.append(data)
        b64s.append(b64)
    return Stream(name, b"".join(frames), ends, datas, b64s, sum(image_sizes))


def four_events(image_size: int) -> Stream:
    """Three previews and a final image, every image ``image_size`` bytes."""
    stream = make_stream([image_size] * 4)
    stream.name = (
        f"3 previews + final, {image_size / MB:g} MB images ({len(stream.body) / MB:.1f} MB)"
    )
    return stream


def one_event(event_mb: float) -> Stream:
    """One completed event of about ``event_mb`` MB on the wire."""
    stream = make_stream([round(event_mb * MB * 3 / 4)])
    stream.name = f"1 event of {len(stream.body) / MB:.0f} MB"
    return stream
