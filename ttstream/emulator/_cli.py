"""``ttstream emulator`` and ``python -m ttstream.emulator``: the emulator in the
foreground, until Ctrl+C (docs/emulator.md)."""

from __future__ import annotations

import argparse
import sys

from .._exceptions import ValidationError
from ._app import create_app
from ._faults import FaultSpecError
from ._server import base_url_for, bind_socket, serve_forever

__all__ = ["main"]

DEFAULT_STEP_DELAY = 0.5


_FAULTS_HELP = """\
faults (SPEC is NAME[=VALUE] items joined by ';', as in the X-Emulator-Fault header):
  drop-mid-event, drop-between-events, end-early, error-nested, error-flat
                         how the stream ends (at the final image)
  malformed-json, invalid-base64, oversized=BYTES
                         rewrites of the final image's event
  heartbeat-data, bomb=BYTES, stall=SECONDS, drip[=SECONDS]
                         noise, hostile bodies, timing
  status=CODE, retry-after=TEXT, retry-after-ms=MS, wrong-content-type, echo-headers
                         before the stream
  pad=BYTES, ids, retry=MS, azure, drop-after=K, times=N, key=TEXT
                         shape of the stream and control
  e.g. --fault 'ids;drop-after=2'  or  --fault 'status=500;times=1'
  A request's own X-Emulator-Fault header or ?fault= replaces the default.
  Every fault is described in docs/emulator.md."""


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Serve an emulation of the TTAPI / OpenAI Images API (generations, edits,\n"
            "streaming previews, the Responses API image tool) with locally drawn images."
        ),
        epilog=_FAULTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.add_argument(
        "--fault",
        metavar="SPEC",
        help="apply these faults to every request that names none of its own "
        "(the grammar of the X-Emulator-Fault header; see below)",
    )
    return parser


def main(argv: list[str] | None = None, *, prog: str = "python -m ttstream.emulator") -> int:
    """Runs the emulator in the foreground; returns the exit status (0 after Ctrl+C,
    2 for a command-line mistake, 1 when the address cannot be bound).

    ``argv`` defaults to ``sys.argv[1:]``; ``prog`` is the command's name in its help and
    error lines (``ttstream emulator`` from the ``ttstream`` command). Prints the base
    URL to give a client.
    """
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        app = create_app(step_delay=args.step_delay, api_key=args.api_key, default_fault=args.fault)
    except ValidationError as exc:
        print(f"{prog}: error: --step-delay must be {exc.allowed}", file=sys.stderr)
        return 2
    except FaultSpecError as exc:
        reason = str(exc).split("; known faults:")[0]  # the list is in --help
        print(
            f"{prog}: error: --fault {args.fault!r}: {reason} (faults: {prog} --help)",
            file=sys.stderr,
        )
        return 2
    try:
        sock = bind_socket(args.host, args.port)
    except ValidationError as exc:
        print(f"{prog}: error: --port must be {exc.allowed} (got {args.port})", file=sys.stderr)
        return 2
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"{prog}: error: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 1
    base_url = base_url_for(args.host, sock.getsockname()[1])
    keys = "only the key given with --api-key" if args.api_key else "any non-empty key"
    print(f"ttstream emulator: base URL {base_url}", flush=True)
    print(f"  accepts {keys} (TT-API-KEY or Authorization: Bearer); Ctrl+C stops", flush=True)
    # What a client that reads its settings from the environment (AsyncClient()) needs;
    # the --api-key value is not echoed.
    key = "<your --api-key>" if args.api_key else "any"
    print(f"  for a client: TTAPI_API_KEY={key} TTAPI_BASE_URL={base_url}", flush=True)
    if args.fault:
        print(f"  faults for every request that names none: {args.fault}", flush=True)
    try:
        serve_forever(app, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0
