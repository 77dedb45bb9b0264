"""The ``ttstream`` command on a terminal: run under a pseudo-terminal (pexpect), it shows
a spinner with elapsed time and bytes received, rewrites one status line per preview,
and ends with a summary; Ctrl-C exits 130 and keeps the files already written."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from ttstream.emulator import EmulatorServer

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # rich's "dots"
CURSOR_UP = "\x1b[1A"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=0.3) as server:
        yield server


def spawn(emulator: EmulatorServer, cwd: Path, *args: str) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(TERM="xterm-256color", TTAPI_API_KEY="any-key", COLUMNS="160")
    argv = ["-m", "ttstream", "generate", "a kite", "--model", "gpt-image-2", "--size", "64x48"]
    return pexpect.spawn(
        sys.executable,
        [*argv, "--base-url", emulator.base_url, *args],
        cwd=str(cwd),
        env=env,
        encoding="utf-8",
        timeout=20,
        dimensions=(24, 160),
    )


def test_the_live_display_shows_a_spinner_the_bytes_and_one_status_line(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    child = spawn(emulator, tmp_path, "--partial-images", "2")
    child.expect(pexpect.EOF)
    child.close()
    screen = child.before
    assert child.exitstatus == 0
    waiting = screen[: screen.index("preview #0")]
    assert "Generating with gpt-image-2" in waiting
    assert len({c for c in waiting if c in SPINNER}) >= 2  # the spinner turned
    assert "0 KiB received" in waiting
    assert "s  0 KiB received" in waiting  # the elapsed time stands before it
    # Each preview rewrites the status line in place (cursor up, erase), not a new line.
    between = screen[screen.index("preview #0") : screen.index("preview #1")]
    assert CURSOR_UP in between
    assert "-> ttstream-out/a-kite-" in between
    assert "KiB" in between
    final = screen[screen.index("final image") :]
    assert "-final.png" in final
    assert "tokens" in final
    assert "Done: 3 file(s) in ttstream-out/, first preview after " in screen
    assert ", total " in screen
    assert len(list((tmp_path / "ttstream-out").iterdir())) == 3


def test_ctrl_c_exits_130_and_keeps_the_files_written(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    child = spawn(emulator, tmp_path, "--partial-images", "3")
    child.expect("preview #0")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert "ttstream: interrupted" in child.before
    assert "Traceback" not in child.before
    kept = [p.name for p in (tmp_path / "ttstream-out").iterdir()]
    assert len(kept) >= 1
    assert all("-partial-" in name for name in kept)
