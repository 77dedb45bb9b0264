"""examples/multi_worker as a product: its launcher stops Redis and every worker on
SIGTERM and SIGINT, a job that cannot start is answered with an error (not 202), and
its page (ttstream's browser module) shows a job started on one worker from another,
with links for every worker and a cancel that reaches the worker running the job."""

from __future__ import annotations

import gc
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx2
import pytest

from tests.support.chromium import (
    closed_soon,
    load_file,
    open_page,
    part,
    screenshot,
    text,
    until,
)
from tests.support.paths import ROOT
from tests.support.ports import free_port
from tests.support.redis_server import COREDIS_LEAK, MISSING, REDIS_SERVER, RedisServer
from tests.support.uvicorn_thread import ServerThread
from ttstream.emulator import EmulatorServer

pytest_plugins = ["tests.support.chromium"]  # the browser fixture

APP = ROOT / "examples" / "multi_worker" / "app.py"
needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason=MISSING)
pytestmark = pytest.mark.filterwarnings(COREDIS_LEAK)  # coredis's own, on disconnects
STEP_DELAY = 0.6  # seconds before each event: a cancel lands between two previews


def load_example() -> ModuleType:
    return load_file(APP, "multi_worker_app")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@needs_redis
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_the_launcher_stops_redis_and_every_worker_on_a_signal(signal_number: int) -> None:
    ports = [free_port(), free_port(), free_port()]
    command = [sys.executable, str(APP), "--step-delay", "0"]
    command += ["--ports", ",".join(map(str, ports))]
    launcher = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert launcher.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any("Ctrl+C stops" in line for line in lines):
            assert time.monotonic() < deadline, lines
            line = launcher.stdout.readline()
            assert line, lines  # the launcher ended early
            lines.append(line)
        redis_port = int(re.search(r"Redis: redis://127.0.0.1:(\d+)", "".join(lines))[1])  # type: ignore[index]
        page_line = next(line for line in lines if line.startswith("The preview page"))
        assert all(f"http://127.0.0.1:{port}/" in page_line for port in ports)
        assert all(listening(port) for port in [*ports, redis_port])
        launcher.send_signal(signal_number)
        assert launcher.wait(30) != 0 or signal_number == signal.SIGINT
        assert not any(listening(port) for port in [*ports, redis_port])
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        if launcher.stdout is not None:
            launcher.stdout.close()


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=STEP_DELAY) as server:
        yield server


def test_a_job_that_cannot_start_is_an_error_not_202(emulator: EmulatorServer) -> None:
    example = load_example()
    dead = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    app = example.create_app(
        redis_url=dead, cluster=False, base_url=emulator.base_url, name="w", ports=[1, 2]
    )
    with ServerThread(app, lifespan="on") as server:
        answer = httpx2.post(f"{server.url}/jobs", json={"prompt": "a kite"}, timeout=30)
    gc.collect()  # coredis's leaked streams warn here, under COREDIS_LEAK
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "this job could not be started: the job store did not answer; try again"
    }
    assert emulator.stream_stats.generations == 0


@pytest.fixture(scope="module")
def workers(emulator: EmulatorServer) -> Iterator[tuple[list[str], Any]]:
    """Two workers on one real Redis (TCP), in this process."""
    if REDIS_SERVER is None:
        pytest.skip(MISSING)
    example = load_example()
    with RedisServer(tcp=True) as redis:
        apps = [
            example.create_app(
                redis_url=redis.url,
                cluster=False,
                base_url=f"{emulator.base_url}",
                name=f"worker {n}",
                ports=[],
            )
            for n in (1, 2)
        ]
        with (
            ServerThread(apps[0], lifespan="on") as one,
            ServerThread(apps[1], lifespan="on") as two,
        ):
            yield [one.url, two.url], emulator
    gc.collect()  # coredis's leaked streams warn here, under COREDIS_LEAK


def test_the_page_watches_a_job_from_another_worker_and_cancels_it(
    browser: Any,
    workers: tuple[list[str], EmulatorServer],
) -> None:
    (one, two), emulator = workers
    streams = emulator.stream_stats
    ports = [int(url.rpartition(":")[2]) for url in (one, two)]
    prompt = f"a kite {time.time()}"
    started = httpx2.post(f"{one}/jobs", json={"prompt": prompt}, timeout=30)
    assert started.status_code == 202
    job = started.json()["job"]
    workers_param = ",".join(map(str, ports))
    open_page(browser, f"{two}/?job={job}&workers={workers_param}", "phone")
    assert (
        browser.execute_script("return document.querySelector('meta[name=viewport]').content")
        == "width=device-width, initial-scale=1"
    )
    until(browser, "window.livePreview.previewsShown")
    # A link to the job on the other worker, whatever its port.
    hrefs = browser.execute_script(
        "return [...document.querySelectorAll('#links a')].map((a) => a.href)"
    )
    assert hrefs == [f"{one}/?job={job}&workers={ports[0]}%2C{ports[1]}"]
    # No horizontal overflow at 390 px.
    assert browser.execute_script("return document.documentElement.scrollWidth") == 390
    screenshot(browser, "multi-worker-phone")
    # Cancel on worker 2 stops the generation running on worker 1 (through Redis).
    assert streams.open_streams == 1
    part(browser, "cancel").click()
    until(browser, "window.livePreview.cancelled")
    assert text(browser, "status") == "Cancelled"
    assert closed_soon(streams)
    assert browser.execute_script("return window.livePreview.finalShown") is False
    # A cancelled job is not done: the same prompt again starts it anew (and it is
    # cancelled again, from the other worker).
    again = httpx2.post(f"{two}/jobs", json={"prompt": prompt}, timeout=30)
    assert (again.status_code, again.json()["attached"]) == (202, False)
    assert httpx2.delete(f"{one}/previews/{job}", timeout=30).status_code == 202
    assert closed_soon(streams)
