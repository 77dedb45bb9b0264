"""Runs a test once per base64 backend: pybase64 (the speedups extra) and binascii (the
standard library), switched in-process, so one test run covers both paths."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ttstream import _base64

NAMES = ["binascii", "pybase64"]


@contextmanager
def using(name: str) -> Iterator[_base64.Codec]:
    """Makes ``name`` the backend for the duration; skips if it is not installed."""
    if name not in _base64.BACKENDS:
        pytest.skip(f"{name} is not installed (pip install 'ttstream[speedups]')")
    previous = _base64.set_backend(name)
    try:
        yield _base64.BACKENDS[name]
    finally:
        _base64.set_backend(previous.name)
