"""``ttstream.testing``: a pytest plugin for testing your own code against the emulator.

Installed with ttstream, it is loaded by pytest through the ``pytest11`` entry point (it
needs the ``emulator`` extra only when a test uses its fixtures). docs/testing.md is the
guide. Fixtures:

``ttstream_emulator``
    The emulator (:class:`ttstream.emulator.EmulatorServer`, no delay between events)
    on a free loopback port, started once per test session: ``.base_url`` for a
    client, ``.stream_stats`` for assertions (``requests(spec)`` counts since the
    session started). A client sees a stream end a moment before the emulator's thread
    has closed it: ``await ttstream_emulator.wait_closed(timeout=...)`` (or, in
    synchronous code, ``ttstream_emulator.stream_stats.wait_closed(timeout=...)``)
    returns once the emulator has seen every stream close, after which
    ``stream_stats.open_streams`` is 0.
``ttstream_client``
    A ready :class:`ttstream.AsyncClient` pointing at it, with ``max_retries`` from
    ``ttstream_max_retries`` (0 by default: a ``status=500`` fault fails at once, with
    no real backoff). It keeps no idle connection, so it needs no closing, and works
    under any async test runner (anyio, trio, pytest-asyncio).
``ttstream_max_retries``
    The ``max_retries`` of ``ttstream_client``: 0. To test your retry handling, set it
    per test with ``@pytest.mark.parametrize("ttstream_max_retries", [2])`` or override
    the fixture in a ``conftest.py``; give the fault a ``retry-after-ms=0`` to retry
    without waiting (``status=500;retry-after-ms=0;times=1``).
``ttstream_env``
    Sets ``TTAPI_API_KEY`` and ``TTAPI_BASE_URL`` for the test (and removes the
    ``OPENAI_*`` ones), so code that builds its own ``ttstream.AsyncClient()`` reaches
    the emulator; returns the base URL. Such a client has the default ``max_retries``
    of 2.
``ttstream_faults``
    The fault spec of the test (docs/emulator.md, "Faults"), or ``None``: from the marker
    ``@pytest.mark.ttstream_faults("ids;drop-after=2")``, or set directly with
    ``@pytest.mark.parametrize("ttstream_faults", ["end-early", "error-flat"])``. The
    emulator applies it to every request of the test that names no fault of its own
    (no ``X-Emulator-Fault`` header, no ``?fault=``), whichever client sends it
    (:attr:`ttstream.emulator.EmulatorServer.default_fault`). A spec that cannot be
    read fails the test at setup.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .client import AsyncClient
    from .emulator import EmulatorServer

__all__ = ["DEFAULT_MAX_RETRIES", "EMULATOR_KEY", "MARKER"]

MARKER = "ttstream_faults"
EMULATOR_KEY = "emulator-key"
"""The key the fixtures use: the emulator accepts any non-empty key."""
DEFAULT_MAX_RETRIES = 0
"""``max_retries`` of ``ttstream_client`` unless ``ttstream_max_retries`` says otherwise."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(spec): the emulator fault spec for this test's requests, "
        "e.g. 'ids;drop-after=2' (ttstream.testing)",
    )


@pytest.fixture(scope="session")
def _ttstream_emulator_session() -> Iterator[EmulatorServer]:
    from .emulator import EmulatorServer

    with EmulatorServer(step_delay=0.0) as server:
        yield server


@pytest.fixture
def ttstream_faults(request: pytest.FixtureRequest) -> str | None:
    """The test's fault spec: the ``ttstream_faults`` marker's argument, or ``None``."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return None
    if len(marker.args) != 1 or not isinstance(marker.args[0], str) or marker.kwargs:
        raise pytest.UsageError(
            f"@pytest.mark.{MARKER} takes one fault spec string, e.g. 'ids;drop-after=2'"
        )
    spec: str = marker.args[0]
    return spec


@pytest.fixture
def ttstream_emulator(
    _ttstream_emulator_session: EmulatorServer, ttstream_faults: str | None
) -> Iterator[EmulatorServer]:
    """The session's emulator, applying this test's faults (``ttstream_faults``)."""
    from .emulator import FaultSpecError

    server = _ttstream_emulator_session
    try:
        server.default_fault = ttstream_faults
    except FaultSpecError as exc:
        raise pytest.UsageError(f"{MARKER} {ttstream_faults!r}: {exc}") from None
    try:
        yield server
    finally:
        server.default_fault = None


@pytest.fixture
def ttstream_max_retries() -> int:
    """``max_retries`` of ``ttstream_client``: :data:`DEFAULT_MAX_RETRIES` (0)."""
    return DEFAULT_MAX_RETRIES


@pytest.fixture
def ttstream_client(ttstream_emulator: EmulatorServer, ttstream_max_retries: int) -> AsyncClient:
    """An :class:`~ttstream.AsyncClient` for the emulator, with its faults, retrying
    ``ttstream_max_retries`` times (0 unless the test says otherwise)."""
    import httpx2

    from .client import DEFAULT_TIMEOUT, AsyncClient

    http = httpx2.AsyncClient(
        timeout=DEFAULT_TIMEOUT, limits=httpx2.Limits(max_keepalive_connections=0)
    )
    return AsyncClient(
        EMULATOR_KEY,
        base_url=ttstream_emulator.base_url,
        http_client=http,
        max_retries=ttstream_max_retries,
    )


@pytest.fixture
def ttstream_env(ttstream_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points ``ttstream.AsyncClient()`` (no arguments) at the emulator for this test."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TTAPI_API_KEY", EMULATOR_KEY)
    monkeypatch.setenv("TTAPI_BASE_URL", ttstream_emulator.base_url)
    return ttstream_emulator.base_url
