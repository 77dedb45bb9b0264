"""examples/celery: two real Celery worker processes, a real redis-server as broker, the
emulator as API. One worker is killed (SIGKILL) in the middle of a generation; every job
still ends with exactly one final image, and the emulator generated one image per job
plus the one that was cut."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.support.redis_server import MISSING, REDIS_SERVER, RedisServer
from ttstream.emulator import EmulatorServer

pytest.importorskip("celery")

HERE = ROOT / "examples" / "celery"
JOBS = 5
CLAIM_TTL = 2.0
VISIBILITY_TIMEOUT = 3.0


@pytest.fixture
def broker() -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip(MISSING)
    with RedisServer(tcp=True) as server:
        yield server


@pytest.fixture
def slow_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=0.25) as server:  # a generation takes about a second
        yield server


def environment(broker: RedisServer, emulator: EmulatorServer, out: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(
        CELERY_BROKER_URL=f"redis://127.0.0.1:{broker.port}/0",
        TTSTREAM_OUT=str(out),
        TTSTREAM_CLAIM_TTL=str(CLAIM_TTL),
        TTSTREAM_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
        TTAPI_API_KEY="emulator-key",
        TTAPI_BASE_URL=emulator.base_url,
        PYTHONPATH=str(HERE),
    )
    return env


def worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "ttstream_tasks",
        "worker",
        "--pool=solo",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
        "-n",
        f"{name}@%h",
    ]
    with log.open("wb") as file:
        return subprocess.Popen(command, cwd=HERE, env=env, stdout=file, stderr=subprocess.STDOUT)


def wait_for(condition: object, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.02)


def test_a_killed_worker_costs_one_image_and_every_job_is_done_once(
    broker: RedisServer,
    slow_emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    env = environment(broker, slow_emulator, out)
    for name in ("CELERY_BROKER_URL", "TTSTREAM_OUT", "TTSTREAM_CLAIM_TTL", "PYTHONPATH"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(HERE))
    sys.modules.pop("ttstream_tasks", None)
    import ttstream_tasks

    before = slow_emulator.stream_stats.generations
    workers = [worker("a", env, tmp_path / "a.log")]
    try:
        results = [
            ttstream_tasks.generate.delay(f"job-{i}", f"kite {i}", size="64x48", partial_images=2)
            for i in range(JOBS)
        ]
        # Worker a alone takes the first job; once its stream is open, b starts and a dies.
        wait_for(lambda: slow_emulator.stream_stats.open_streams >= 1, "worker a's stream")
        workers.append(worker("b", env, tmp_path / "b.log"))
        time.sleep(0.3)
        assert slow_emulator.stream_stats.open_streams >= 1, "a finished too early"
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        paths = [Path(result.get(timeout=60)) for result in results]
    finally:
        for process in workers:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        ttstream_tasks.app.close()
    assert sorted(p.name for p in paths) == [f"job-{i}-final.png" for i in range(JOBS)]
    # One file per job: a second generation of a job would have written job-N_2-final.png.
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)
    # Each job generated once, and the one cut by the kill once more.
    assert slow_emulator.stream_stats.generations - before == JOBS + 1


@pytest.mark.parametrize("key", ["sku[1]", "kite*"])
def test_a_key_with_glob_characters_finds_its_own_final_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    # The key was a glob pattern: "sku[1]" found no file (the task failed with a bare
    # RuntimeError after paying for the image), "kite*" found another job's image.
    out = tmp_path / "out"
    out.mkdir()
    for name in ("kite!-final.png", "sku1-final.png", f"{key}-final.png"):
        (out / name).write_bytes(b"image")
    monkeypatch.setenv("TTSTREAM_OUT", str(out))
    monkeypatch.syspath_prepend(str(HERE))
    sys.modules.pop("ttstream_tasks", None)
    import ttstream_tasks

    try:
        assert ttstream_tasks.final_path(key) == out / f"{key}-final.png"
    finally:
        ttstream_tasks.app.close()
        sys.modules.pop("ttstream_tasks", None)
