"""FileSink: names that say which image, and atomic writes."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest

from ttstream import Completed, PartialImage, TTStreamError
from ttstream.sinks import FileSink, Sink

pytestmark = pytest.mark.anyio


def partial(index: int, data: bytes, fmt: str | None = "png") -> PartialImage:
    return PartialImage(
        b64_json=base64.b64encode(data).decode(),
        operation="generation",
        index=index,
        output_format=fmt,
    )


def completed(data: bytes, fmt: str | None = "png") -> Completed:
    return Completed(
        b64_json=base64.b64encode(data).decode(), operation="generation", output_format=fmt
    )


def test_file_sink_is_a_sink(tmp_path: Path) -> None:
    assert isinstance(FileSink(tmp_path), Sink)


async def test_previews_and_finals_are_named_clearly(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "out", stem="cat")
    for event in (
        partial(0, b"p0"),
        partial(1, b"p1"),
        completed(b"f1"),
        partial(0, b"q0", "jpeg"),
        completed(b"f2", "jpeg"),
    ):
        await sink.send(event)
    await sink.aclose()
    names = [path.name for path in sink.written]
    assert names == [
        "cat-partial-0.png",
        "cat-partial-1.png",
        "cat-final.png",
        "cat-2-partial-0.jpg",
        "cat-2-final.jpg",
    ]
    assert (tmp_path / "out" / "cat-final.png").read_bytes() == b"f1"
    assert (tmp_path / "out" / "cat-2-final.jpg").read_bytes() == b"f2"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)  # no temp files


async def test_files_get_the_permissions_of_the_umask(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        sink = FileSink(tmp_path)
        await sink.send(completed(b"x"))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(sink.written[0].stat().st_mode) == 0o644


async def test_missing_output_format_means_png(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    await sink.send(completed(b"x", fmt=None))
    assert sink.written == [tmp_path / "image-final.png"]


async def test_url_only_result_is_a_clear_error(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    with pytest.raises(TTStreamError, match="URL"):
        await sink.send(Completed(b64_json=None, url="https://x/y.png", operation="generation"))
    assert list(tmp_path.iterdir()) == []


async def test_a_concurrent_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, stem="big")
    versions = [bytes([i]) * 2_000_000 for i in range(1, 9)]
    path = tmp_path / "big-partial-0.png"
    seen: set[bytes] = set()
    torn: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if data != data[:1] * 2_000_000:  # a torn read: short, or two versions mixed
                torn.append(len(data))
            seen.add(data)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in versions:  # the same preview name, rewritten over and over
            await sink.send(partial(0, version))
    finally:
        stop.set()
        thread.join()
    assert torn == []
    assert seen  # the reader did read while the files were being replaced
    assert seen <= set(versions)
    assert path.read_bytes() == versions[-1]
