"""An ASGI server that speaks the Images API wire format, with locally drawn images.

For demos (the CLI runs it when no API key is set), tests over real loopback HTTP and
benchmarks. It serves ``POST /v1/images/generations`` and ``POST /v1/images/edits``
(streaming and synchronous), TTAPI's legacy ``POST /openai/v1/images/generations``, the
images of URL answers, and the Responses API image tool (``POST /v1/responses``,
``GET /v1/responses/{id}``; docs/responses.md). Nothing in the client layers imports it.

- :func:`create_app` builds the Starlette application;
- :class:`EmulatorServer` runs it on a loopback port in a background thread;
- :func:`api_or_emulator` gives the real API when a key is set, else a running emulator;
- :func:`main` is ``python -m ttstream.emulator`` (the foreground server).

A request can ask for faults (dropped connections, error events, HTTP errors, stalls,
malformed events, ...) with an ``X-Emulator-Fault`` header (:data:`FAULT_HEADER`) or
``?fault=`` (:data:`FAULT_QUERY`); a server can apply one spec to every request that
names none (``default_fault``, ``ttstream emulator --fault SPEC``). The grammar and the
faults: docs/emulator.md. :class:`StreamStats` counts the streams, and
``EmulatorServer.wait_closed()`` waits until the emulator has closed every one.

Needs the ``emulator`` extra: ``pip install 'ttstream[emulator]'``.
"""

from __future__ import annotations

_EXTRA = ("starlette", "uvicorn", "PIL", "multipart", "python_multipart")

try:
    from ._app import create_app
    from ._cli import main
    from ._faults import (
        FAULT_HEADER,
        FAULT_QUERY,
        FaultSpec,
        FaultSpecError,
        StreamRecord,
        StreamStats,
    )
    from ._server import EmulatorServer, api_or_emulator
except ImportError as exc:  # pragma: no cover - depends on the environment
    if exc.name is None or exc.name.split(".")[0] not in _EXTRA:
        raise
    raise ImportError(
        f"ttstream.emulator needs {exc.name!r}: pip install 'ttstream[emulator]'"
    ) from exc

__all__ = [
    "FAULT_HEADER",
    "FAULT_QUERY",
    "EmulatorServer",
    "FaultSpec",
    "FaultSpecError",
    "StreamRecord",
    "StreamStats",
    "api_or_emulator",
    "create_app",
    "main",
]
