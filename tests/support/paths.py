"""Where the repository's files are, for tests that read them (examples, docs, benchmarks)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root: the folder holding ``pyproject.toml``."""
