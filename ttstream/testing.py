"""``ttstream.testing``: a pytest plugin for testing your own code against the emulator.

Installed with ttstream, it is loaded by pytest through the ``pytest11`` entry point (it
needs the ``emulator`` extra only when a test uses its fixtures). Fixtures:

``ttstream_emulator``
    The emulator (:class:`ttstream.emulator.EmulatorServer`, no delay between events)
    on a free loopback port, started once per test session: ``.base_url`` for a
    client, ``.stream_stats`` for assertions (``open_streams`` is 0 once every stream
    was closed; ``requests(spec)`` counts since the session started).
``ttstream_client``
    A ready :class:`ttstream.AsyncClient` pointing at it. It keeps no idle connection,
    so it needs no closing, and works under any async test runner (anyio, trio,
    pytest-asyncio).
``ttstream_env``
    Sets ``TTAPI_API_KEY`` and ``TTAPI_BASE_URL`` for the test (and removes the
    ``OPENAI_*`` ones), so code that builds its own ``ttstream.AsyncClient()`` reaches
    the emulator; returns the base URL.
``ttstream_faults``
    The fault spec of the test (README.md, "Faults"), or ``None``: from the marker
    ``@pytest.mark.ttstream_faults("ids;drop-after=2")``, or set directly with
    ``@pytest.mark.parametrize("ttstream_faults", ["end-early", "error-flat"])``. The
    emulator applies it to every request of the test that names no fault of its own
    (no ``X-Emulator-Fault`` header, no ``?fault=``), whichever client sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .client import AsyncClient
    from .emulator import EmulatorServer

__all__ = ["EMULATOR_KEY", "MARKER"]

MARKER = "ttstream_faults"
EMULATOR_KEY = "emulator-key"
"""The key the fixtures use: the emulator accepts any non-empty key."""

_Scope = dict[str, Any]
_ASGI = Callable[[_Scope, Any, Any], Any]


class _Faults:
    """The fault spec the emulator applies to requests that name none: the test's."""

    def __init__(self) -> None:
        self.spec: str | None = None


class _DefaultFaults:
    """ASGI middleware: adds ``X-Emulator-Fault: <spec>`` to a request that has no
    fault header and no ``fault`` query parameter, while a spec is set."""

    def __init__(self, app: _ASGI, faults: _Faults, header: str, query: str) -> None:
        self.app = app
        self.faults = faults
        self.header = header.lower().encode("latin-1")
        self.query = query.encode("latin-1") + b"="

    async def __call__(self, scope: _Scope, receive: Any, send: Any) -> None:
        spec = self.faults.spec
        if spec is not None and scope["type"] == "http":
            headers = scope["headers"]
            asked = any(name == self.header for name, _ in headers)
            queried = any(
                part.startswith(self.query) for part in scope.get("query_string", b"").split(b"&")
            )
            if not (asked or queried):
                scope = {**scope, "headers": [*headers, (self.header, spec.encode("latin-1"))]}
        await self.app(scope, receive, send)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(spec): the emulator fault spec for this test's requests, "
        "e.g. 'ids;drop-after=2' (ttstream.testing)",
    )


@pytest.fixture(scope="session")
def _ttstream_emulator_session() -> Iterator[tuple[EmulatorServer, _Faults]]:
    from .emulator import EmulatorServer
    from .emulator._faults import FAULT_HEADER, FAULT_QUERY

    faults = _Faults()
    server = EmulatorServer(step_delay=0.0)
    server.app.add_middleware(_DefaultFaults, faults=faults, header=FAULT_HEADER, query=FAULT_QUERY)
    with server:
        yield server, faults


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
    _ttstream_emulator_session: tuple[EmulatorServer, _Faults], ttstream_faults: str | None
) -> Iterator[EmulatorServer]:
    """The session's emulator, applying this test's faults (``ttstream_faults``)."""
    server, faults = _ttstream_emulator_session
    faults.spec = ttstream_faults
    try:
        yield server
    finally:
        faults.spec = None


@pytest.fixture
def ttstream_client(ttstream_emulator: EmulatorServer) -> AsyncClient:
    """An :class:`~ttstream.AsyncClient` for the emulator, with its faults."""
    import httpx2

    from .client import DEFAULT_TIMEOUT, AsyncClient

    http = httpx2.AsyncClient(
        timeout=DEFAULT_TIMEOUT, limits=httpx2.Limits(max_keepalive_connections=0)
    )
    return AsyncClient(EMULATOR_KEY, base_url=ttstream_emulator.base_url, http_client=http)


@pytest.fixture
def ttstream_env(ttstream_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points ``ttstream.AsyncClient()`` (no arguments) at the emulator for this test."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TTAPI_API_KEY", EMULATOR_KEY)
    monkeypatch.setenv("TTAPI_BASE_URL", ttstream_emulator.base_url)
    return ttstream_emulator.base_url
