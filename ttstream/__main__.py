"""``python -m ttstream`` and the ``ttstream`` command: the command line of
:mod:`ttstream.cli`. ``--version`` alone is answered here, from the package's metadata,
without importing the client stack (httpx2, anyio, aiohttp, rich)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status. ``ttstream --version`` prints ``ttstream <version>`` and returns 0."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--version"]:
        from ._version import VERSION

        print(f"ttstream {VERSION}")
        return 0
    from .cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
