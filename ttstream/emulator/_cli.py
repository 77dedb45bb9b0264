"""``python -m ttstream.emulator``: the emulator in the foreground, until Ctrl+C."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._app import create_app
from ._server import base_url_for, bind_socket, serve_forever

__all__ = ["main"]

DEFAULT_STEP_DELAY = 0.5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        # The name it was started by: the `ttstream emulator` command, or the module.
        prog="ttstream emulator"
        if Path(sys.argv[0]).name == "ttstream"
        else "python -m ttstream.emulator",
        description=(
            "Serve an emulation of the TTAPI / OpenAI Images API (generations, edits, "
            "streaming previews) with locally drawn images."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free)")
    parser.add_argument(
        "--step-delay",
        type=float,
        default=DEFAULT_STEP_DELAY,
        metavar="SECONDS",
        help=f"pause before each streamed event (default {DEFAULT_STEP_DELAY})",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="accept only this key (default: any non-empty key)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the emulator in the foreground; returns the exit status (0 after Ctrl+C).

    ``argv`` defaults to ``sys.argv[1:]``; prints the base URL to give a client.
    """
    args = _parser().parse_args(argv)
    if args.step_delay < 0:
        print("error: --step-delay must be >= 0", file=sys.stderr)
        return 2
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    app = create_app(step_delay=args.step_delay, api_key=args.api_key)
    base_url = base_url_for(args.host, sock.getsockname()[1])
    keys = "only the key given with --api-key" if args.api_key else "any non-empty key"
    print(f"ttstream emulator: base URL {base_url}", flush=True)
    print(f"  accepts {keys} (TT-API-KEY or Authorization: Bearer); Ctrl+C stops", flush=True)
    # What a client that reads its settings from the environment (AsyncClient()) needs;
    # the --api-key value is not echoed.
    key = "<your --api-key>" if args.api_key else "any"
    print(f"  for a client: TTAPI_API_KEY={key} TTAPI_BASE_URL={base_url}", flush=True)
    try:
        serve_forever(app, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0
