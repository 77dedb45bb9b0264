"""``mypy --strict`` on a snippet of user code: the lines it reports against the lines
the snippet marks with ``# error:``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.paths import ROOT


def mypy_errors(source: str, tmp_path: Path) -> tuple[set[int], set[int], str]:
    """Runs ``mypy --strict`` on ``source`` (dedented) in ``tmp_path``; returns the line
    numbers it reported errors on, those marked ``# error:``, and its output."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent(source))
    mypy = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]
    command = [*mypy, "--cache-dir", str(tmp_path / "cache"), str(snippet)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    found = {int(line.split(":")[1]) for line in done.stdout.splitlines() if ": error:" in line}
    lines = snippet.read_text().splitlines()
    expected = {number for number, line in enumerate(lines, 1) if "# error:" in line}
    return found, expected, done.stdout
