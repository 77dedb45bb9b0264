"""FileSink: names that say which image, and atomic writes."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from ttstream import Completed, PartialImage, TTStreamError, ValidationError
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


async def test_a_name_taken_gets_a_counter_and_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "cat-partial-0.png").write_bytes(b"someone else's")
    sink = FileSink(tmp_path, stem="cat")
    for event in (partial(0, b"p0"), partial(0, b"p0 again"), completed(b"f")):
        await sink.send(event)
    assert [path.name for path in sink.written] == [
        "cat_2-partial-0.png",
        "cat_2-partial-0.png",  # its own file, replaced in place
        "cat_2-final.png",  # the counter sticks: one run's files share a stem
    ]
    assert (tmp_path / "cat-partial-0.png").read_bytes() == b"someone else's"
    assert (tmp_path / "cat_2-partial-0.png").read_bytes() == b"p0 again"


async def test_two_sinks_with_one_stem_keep_both_images(tmp_path: Path) -> None:
    first, second = FileSink(tmp_path, stem="fox"), FileSink(tmp_path, stem="fox")
    await first.send(completed(b"one"))
    await second.send(completed(b"two"))
    assert {p.read_bytes() for p in tmp_path.iterdir()} == {b"one", b"two"}
    assert second.written == [tmp_path / "fox_2-final.png"]


def test_racing_sinks_never_share_a_file(tmp_path: Path) -> None:
    """Eight threads write the same name at once: the claim is exclusive (os.link),
    not a check followed by a write, so each image survives in a file of its own."""
    barrier = threading.Barrier(8)

    def run(i: int) -> None:
        sink = FileSink(tmp_path, stem="race")
        barrier.wait()
        anyio.run(sink.send, completed(bytes([i]) * 100_000))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    contents = sorted(p.read_bytes()[:1] for p in tmp_path.iterdir())
    assert contents == [bytes([i]) for i in range(8)]


async def test_names_up_to_255_characters_work(tmp_path: Path) -> None:
    stem = "s" * (255 - len("-final.png"))
    sink = FileSink(tmp_path, stem=stem)
    await sink.send(completed(b"long"))
    assert sink.written[0].name == stem + "-final.png"
    assert len(sink.written[0].name) == 255
    assert sink.written[0].read_bytes() == b"long"


async def test_after_a_failed_preview_the_final_image_is_still_written(tmp_path: Path) -> None:
    stem = "s" * (254 - len("-final.png"))  # "-partial-0.png" makes the preview 258 long
    sink = FileSink(tmp_path, stem=stem)
    await sink.send(partial(0, b"preview"))  # ENAMETOOLONG: logged and kept, not raised
    await sink.send(completed(b"final"))
    assert [p.name for p, _ in sink.failed] == [stem + "-partial-0.png"]
    assert sink.written == [tmp_path / (stem + "-final.png")]
    assert sink.written[0].read_bytes() == b"final"


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("png/../../x", "image-final.bin"),
        ("p\x00ng", "image-final.bin"),
        ("jpeg", "image-final.jpg"),
        ("webp", "image-final.webp"),
        ("gif", "image-final.gif"),
        ("svg", "image-final.svg"),
    ],
)
async def test_suffix_comes_from_a_fixed_map_never_from_the_server(
    tmp_path: Path, fmt: str, name: str
) -> None:
    sink = FileSink(tmp_path / "out")
    await sink.send(completed(b"x", fmt=fmt))
    assert sink.written == [tmp_path / "out" / name]
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing escaped


@pytest.mark.parametrize("where", ["stem", "directory"])
def test_a_nul_in_a_name_is_a_validation_error(tmp_path: Path, where: str) -> None:
    kwargs = {"stem": "a\x00b"} if where == "stem" else {}
    directory = tmp_path / "x\x00y" if where == "directory" else tmp_path
    with pytest.raises(ValidationError, match=f"{where}=.*NUL"):
        FileSink(directory, **kwargs)


@pytest.mark.parametrize(
    ("directory", "stem", "param"), [(5, "image", "directory"), (b"out", "image", "directory"),
                                     (None, "image", "directory"), (".", 5, "stem")]
)  # fmt: skip
def test_a_directory_or_stem_of_the_wrong_type_is_a_validation_error(
    directory: object, stem: object, param: str
) -> None:
    # a bare TypeError from os.fspath or from `"\0" in stem`
    with pytest.raises(ValidationError) as caught:
        FileSink(directory, stem=stem)  # type: ignore[arg-type]
    assert caught.value.param == param


def test_a_path_separator_in_the_stem_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="path separators"):
        FileSink(tmp_path, stem="../escape")


WRITER = """
import base64, os, sys, time
import anyio
from ttstream import Completed
from ttstream.sinks import FileSink

directory, marker = sys.argv[1], sys.argv[2]
open(os.path.join(directory, "..", "ready-" + marker), "w").close()
while not os.path.exists(os.path.join(directory, "..", "go")):
    time.sleep(0.001)

async def main():
    for i in range(10):
        data = (marker + str(i)).encode() * 10_000
        event = Completed(b64_json=base64.b64encode(data).decode(), operation="generation")
        await FileSink(directory, stem="same").send(event)

anyio.run(main)
"""


def test_two_processes_with_one_stem_never_collide(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(out), marker]) for marker in "ab"
    ]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"ready-{m}").exists() for m in "ab"):  # both waiting
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (tmp_path / "go").touch()
    assert [writer.wait(timeout=30) for writer in writers] == [0, 0]
    contents = sorted(path.read_bytes()[:2] for path in out.iterdir())
    assert contents == sorted(f"{m}{i}".encode() for m in "ab" for i in range(10))
