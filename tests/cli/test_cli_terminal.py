"""The ``ttstream`` command on a terminal: run under a pseudo-terminal (pexpect), it shows
a spinner with elapsed time and bytes received, rewrites one status line per preview,
and ends with a summary; Ctrl-C exits 130, keeps the files already written and lists
them. What stays on the screen is read through a terminal emulator (pyte), as a person
would see it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pyte
import pytest

from ttstream.emulator import EmulatorServer

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # rich's "dots"
CURSOR_UP = "\x1b[1A"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=0.3) as server:
        yield server


def spawn(
    emulator: EmulatorServer, cwd: Path, *args: str, columns: int = 160, rows: int = 24
) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(TERM="xterm-256color", TTAPI_API_KEY="any-key", COLUMNS=str(columns))
    argv = ["-m", "ttstream", "generate", "a kite", "--model", "gpt-image-2", "--size", "64x48"]
    return pexpect.spawn(
        sys.executable,
        [*argv, "--base-url", emulator.base_url, *args],
        cwd=str(cwd),
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(rows, columns),
    )


def screen_of(output: str, columns: int, rows: int) -> list[str]:
    """The lines a person sees once ``output`` was written to a terminal of that size."""
    screen = pyte.Screen(columns, rows)
    pyte.Stream(screen).feed(output.replace("\n", "\r\n") if "\r\n" not in output else output)
    return [line.rstrip() for line in screen.display if line.strip()]


def test_the_live_display_shows_a_spinner_the_bytes_and_one_status_line(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    child = spawn(emulator, tmp_path, "--partial-images", "2")
    child.expect(pexpect.EOF)
    child.close()
    screen = child.before
    assert child.exitstatus == 0
    waiting = screen[: screen.index("preview 1 of 2")]
    assert "Generating with gpt-image-2" in waiting
    assert len({c for c in waiting if c in SPINNER}) >= 2  # the spinner turned
    assert "0 KiB received" in waiting
    assert "s  0 KiB received" in waiting  # the elapsed time stands before it
    # Each preview rewrites the status line in place (cursor up, erase), not a new line.
    between = screen[screen.index("preview 1 of 2") : screen.index("preview 2 of 2")]
    assert CURSOR_UP in between
    assert "-> ttstream-out/a-kite-" in between
    assert "-partial-1.png" in between  # the file is numbered as the line is
    assert "KiB" in between
    final = screen[screen.index("final image") :]
    assert "-final.png" in final
    assert "tokens" in final
    assert "Done: 3 files in ttstream-out/, first preview after " in screen
    assert ", total " in screen
    assert len(list((tmp_path / "ttstream-out").iterdir())) == 3


def test_ctrl_c_exits_130_and_lists_the_files_kept(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    child = spawn(emulator, tmp_path, "--partial-images", "3")
    child.expect("preview 1 of 3")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert "Traceback" not in child.before
    kept = sorted((tmp_path / "ttstream-out").iterdir())
    assert len(kept) >= 1
    assert all("-partial-" in path.name for path in kept)
    lines = screen_of(child.before, 160, 24)
    line = next(line for line in lines if line.startswith("ttstream: interrupted"))
    files = "1 preview" if len(kept) == 1 else f"{len(kept)} previews"
    assert line.startswith("ttstream: interrupted after preview ")
    assert line.endswith(f" of 3; {files} kept in ttstream-out/:")
    listed = lines[lines.index(line) + 1 :]
    assert listed == [f"  ttstream-out/{path.name}" for path in kept]


def test_long_paths_are_shortened_in_the_middle_not_wrapped(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    out = tmp_path / ("a-directory-with-a-rather-long-name-" * 2) / "and-more"
    child = spawn(emulator, tmp_path, "--partial-images", "1", "--out", str(out), columns=80)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    lines = screen_of(child.before, 80, 24)
    final = next(line for line in lines if "final image" in line)
    assert "…" in final
    assert final.endswith(" tokens)")
    assert "-final.png  (" in final  # the end of the name is kept whole
    assert final.split("-> ")[1].startswith(str(tmp_path)[:8])  # and the start of the path
    done = next(line for line in lines if line.startswith("Done: 2 files in "))
    assert "…" in done
    # No line is the continuation of a path broken at the edge.
    assert all(line.startswith(("[", "Done:", "Generating")) for line in lines), lines


def test_verbose_log_lines_leave_no_spinner_fragment(tmp_path: Path) -> None:
    """Each retry line is printed through the live display: on the screen it stands on
    a line of its own, with nothing of the spinner line before or after it."""
    spec = "status=500;retry-after-ms=200;times=2"
    with EmulatorServer(step_delay=0.3, default_fault=spec) as emulator:
        child = spawn(emulator, tmp_path, "-v", "--partial-images", "1", columns=120, rows=30)
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 0
    lines = screen_of(child.before, 120, 30)
    retries = [line for line in lines if "retrying" in line]
    assert len(retries) == 2, lines
    for line in retries:
        assert line.startswith("ttstream: retrying POST "), line
        assert not any(c in line for c in SPINNER), line
        assert "received" not in line, line
    assert not any("received" in line for line in lines), lines  # the spinner is gone
