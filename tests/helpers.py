"""Small helpers shared by the test modules."""

from __future__ import annotations

from ttstream.emulator import EmulatorServer


def assert_no_stream_open(server: EmulatorServer, within: float = 1.0) -> None:
    """Asserts that the emulator has no stream open, waiting up to ``within`` seconds
    (``StreamStats.wait_closed``): the server notices a closed connection a moment
    after the client closes it."""
    try:
        server.stream_stats.wait_closed(timeout=within)
    except TimeoutError as exc:
        raise AssertionError(f"a stream was left open: {exc}") from None
