"""A quiet library: retries, reconnections and skipped heartbeats are logged on the
``ttstream`` logger at INFO or DEBUG, never WARNING, so a script that configured no
logging prints nothing of them (Python's last-resort handler shows WARNING and above)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import httpx2
import pytest

from tests.support.paths import ROOT
from ttstream import AsyncClient, Completed
from ttstream.emulator import EmulatorServer

pytestmark = pytest.mark.anyio

SCRIPT = """
import sys
import anyio, httpx2, ttstream

async def main() -> None:
    http = httpx2.AsyncClient(headers={"X-Emulator-Fault": sys.argv[2]})
    async with ttstream.AsyncClient("k", base_url=sys.argv[1], http_client=http) as client:
        async with client.generate("a kite", size="64x48", partial_images=1) as stream:
            kinds = [type(event).__name__ async for event in stream]
    await http.aclose()
    print(" ".join(kinds))

anyio.run(main)
"""


def test_a_retried_429_writes_nothing_to_stderr(server: EmulatorServer, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    spec = f"status=429;retry-after-ms=1;times=1;key=quiet-{uuid.uuid4()}"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        [sys.executable, str(script), server.base_url, spec],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "PartialImage Completed\n", "")
    assert server.stream_stats.requests(spec) == 2  # the 429, then the stream


async def test_the_retry_line_is_info(
    server: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ttstream")
    # A fault key of its own per run: the asyncio and trio runs share the emulator, and
    # an id() can be the same object address in both (the second run then had no 429).
    spec = f"status=429;retry-after-ms=1;times=1;key=info-{uuid.uuid4()}"
    http = httpx2.AsyncClient(headers={"X-Emulator-Fault": spec})
    client = AsyncClient("k", base_url=server.base_url, http_client=http)
    async with client, client.generate("a kite", size="64x48") as stream:
        events = [event async for event in stream]
    await http.aclose()
    assert isinstance(events[-1], Completed)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.INFO]
    assert all(r.levelno < logging.WARNING for r in caplog.records if r.name == "ttstream")
