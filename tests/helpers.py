"""Small helpers shared by the test modules."""

from __future__ import annotations

import time

from ttstream.emulator import EmulatorServer


def assert_no_stream_open(server: EmulatorServer, within: float = 1.0) -> None:
    """Asserts that the emulator has no stream open, polling up to ``within`` seconds:
    the server notices a closed connection a moment after the client closes it."""
    deadline = time.monotonic() + within
    while server.stream_stats.open_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.stream_stats.open_streams == 0, "a stream was left open"
