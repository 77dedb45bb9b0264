"""benchmarks/fanout.py's own failures, with a real redis-server, on asyncio and trio: a
producer that starts late, and a process that fails instead of printing its answer."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import uuid
from types import ModuleType

import coredis
import pytest

from tests.support.paths import ROOT
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio
pytest_plugins = ["tests.support.redis_fixtures"]  # redis_server, redis, key, emulator, ...

FANOUT = ROOT / "benchmarks" / "fanout.py"


def load_fanout() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fanout_benchmark", FANOUT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_a_producer_that_starts_late_starts_at_once(
    redis: coredis.Redis[bytes], redis_server: RedisServer
) -> None:
    fanout = load_fanout()
    job = uuid.uuid4().hex
    late = time.time() - 5  # the moment every producer should have started has passed
    await fanout.produce(f"unix://{redis_server.unix_socket}", job, 2, 64, 0.0, late)
    written = [e.field_values[b"type"] for e in await redis.xrange(fanout.PREFIX + job)]
    assert written == [b"partial_image", b"completed", b"end"]


def test_a_process_that_fails_is_named_with_its_exit_code() -> None:
    fanout = load_fanout()
    failing = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('Traceback: boom'); sys.exit(1)"],
        stdout=subprocess.PIPE,
    )
    with pytest.raises(fanout.ProcessFailed, match=r"producer 1 failed \(exit code 1\)"):
        fanout.answer_of("producer 1", failing, 30)
    answering = subprocess.Popen(
        [sys.executable, "-c", 'print("{\\"cpu\\": 0.5}")'], stdout=subprocess.PIPE
    )
    assert fanout.answer_of("producer 2", answering, 30) == {"cpu": 0.5}
