"""The one version source: the installed package's metadata (``pyproject.toml``'s
``version``), read once; ``ttstream.__version__``, the CLI's ``--version`` and the
``User-Agent`` header all come from here. Imports nothing of the client stack."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["USER_AGENT", "VERSION"]

try:
    VERSION = version("ttstream")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"

USER_AGENT = f"ttstream/{VERSION}"
"""The ``User-Agent`` of every request ttstream sends."""
