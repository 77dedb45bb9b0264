"""examples/multi_worker/app.py runs as its README says: one command, a real Redis, two
uvicorn workers; a generation started on one is watched, resumed and finished on the
other, and asking again for the same job starts no second generation."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import ROOT
from tests.support.ports import free_port
from tests.support.redis_server import MISSING, REDIS_SERVER

APP = ROOT / "examples" / "multi_worker" / "app.py"


@pytest.mark.skipif(REDIS_SERVER is None, reason=MISSING)
def test_the_multi_worker_example_runs_end_to_end() -> None:
    ports = f"{free_port()},{free_port()}"
    command = [sys.executable, str(APP), "--once", "--step-delay", "0", "--ports", ports]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    relayed = [line.split(" (id ")[0].strip() for line in lines if " relayed " in line]
    assert relayed == [
        "worker 2 relayed partial_image",
        "worker 2 relayed partial_image",
        "worker 1 relayed partial_image",
        "worker 1 relayed completed",
        "worker 1 relayed end",
    ]
    # The resumption is after the last event worker 2 relayed.
    resumed_after = next(line for line in lines if "Last-Event-ID" in line).rpartition(" ")[2]
    last_on_worker_2 = [line for line in lines if "worker 2 relayed" in line][-1]
    assert f"(id {resumed_after}," in last_on_worker_2
    assert "already claimed: attached, no new generation" in done.stderr
