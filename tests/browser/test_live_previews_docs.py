"""docs/live-previews.md's three FastAPI backends, extracted from the page and run against
the emulator (and a real redis-server): the page, the module, a generation watched to its
end, a viewer without a token refused, a cancel that closes the API stream, errors."""

from __future__ import annotations

import gc
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.support.chromium import load_file
from tests.support.paths import ROOT
from tests.support.redis_server import COREDIS_LEAK, MISSING, REDIS_SERVER, RedisServer
from tests.support.uvicorn_thread import ServerThread
from ttstream.emulator import EmulatorServer
from ttstream.sinks import BROWSER_MODULE, sign_viewer_token
from ttstream.sse import SSEDecoder

PAGE = ROOT / "docs" / "live-previews.md"
SECRET = b"v" * 32
FORBIDDEN = "You are not allowed to watch this job.\n"
NAMES = ["partial_image", "partial_image", "partial_image", "completed", "end"]
pytestmark = pytest.mark.filterwarnings(COREDIS_LEAK)


def example(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> ModuleType:
    """The python block of the page that starts with ``# <name>``, imported."""
    blocks = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), flags=re.S | re.M)
    [code] = [block for block in blocks if block.startswith(f"# {name}")]
    monkeypatch.setenv("TTAPI_API_KEY", "emulator-key")
    monkeypatch.setenv("TTAPI_BASE_URL", url)
    monkeypatch.setenv("VIEWER_SECRET", SECRET.decode())
    path = tmp_path / name
    path.write_text(code)
    return load_file(path, name.removesuffix(".py"))


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(step_delay=0.3) as server:
        yield server


def names(body: bytes) -> list[str]:
    return [event.event for event in SSEDecoder().feed(body)]


def closed_soon(emulator: EmulatorServer) -> bool:
    deadline = time.monotonic() + 10
    while emulator.stream_stats.open_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(emulator.stream_stats.open_streams == 0)


def first_event_then_cancel(http: httpx2.Client, events: str) -> list[str]:
    """Watches ``events`` until its first event, cancels, reads the rest."""
    seen: list[str] = []
    decoder = SSEDecoder()
    with http.stream("GET", events) as response:
        for chunk in response.iter_raw():
            for event in decoder.feed(chunk):
                seen.append(event.event)
                if len(seen) == 1:
                    assert http.delete(events).status_code == 202
    return seen


def test_fastapi_over_server_sent_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer
) -> None:
    module = example("live_sse.py", tmp_path, monkeypatch, emulator.base_url)
    with (
        ServerThread(module.app, lifespan="on") as server,
        httpx2.Client(base_url=server.url, timeout=30) as http,
    ):
        assert "<ttstream-preview" in http.get("/").text
        assert http.get("/ttstream.js").content == BROWSER_MODULE.read_bytes()
        started = http.post("/generations", json={"prompt": "a kite"}).json()
        events = started["events"]
        assert names(http.get(events).content) == NAMES
        bare = events.partition("?")[0]
        refused = [
            http.get(bare),
            http.get(f"{bare}?token=" + sign_viewer_token("other", secret=SECRET)),
            http.delete(bare),
        ]
        assert [(r.status_code, r.text) for r in refused] == [(403, FORBIDDEN)] * 3
        # Cancel: the viewers' end says so, and the API stream is closed at once.
        cancelled = http.post("/generations", json={"prompt": "a boat"}).json()["events"]
        assert first_event_then_cancel(http, cancelled) == ["partial_image", "end"]
        assert closed_soon(emulator)
        # A bad parameter is a 400 with ttstream's sentence, before anything is billed.
        bad = http.post("/generations", json={"prompt": ""})
        assert bad.status_code == 400
        assert "prompt" in bad.json()["error"]


def test_fastapi_over_websockets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer
) -> None:
    module = example("live_ws.py", tmp_path, monkeypatch, emulator.base_url)
    token = sign_viewer_token("ws", secret=SECRET)
    with TestClient(module.app) as client:
        page = client.get("/").text
        assert "<ttstream-preview" in page
        assert re.search(r'searchParams.set\("token", "[0-9]+\.[0-9a-f]{64}"\)', page)
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
            pass
        assert refused.value.code == 1008
        with client.websocket_connect(f"/ws?token={token}") as ws:
            ws.send_json({"type": "start", "job": "a", "params": {"prompt": "a kite"}})
            kinds: list[str] = []
            while not kinds or kinds[-1] not in ("end", "error"):
                header: dict[str, Any] = json.loads(ws.receive_text())
                kinds.append(header["type"])
                for _ in range(header.get("frames", 0)):
                    ws.receive_bytes()
            assert kinds == ["preview", "preview", "completed", "end"]
            ws.send_json({"type": "start", "job": "b", "params": {"prompt": ""}})
            error = json.loads(ws.receive_text())
            assert (error["type"], error["job"]) == ("error", "b")
            assert "prompt" in error["message"]
            ws.send_json({"type": "start", "job": "c", "params": {"prompt": "a boat"}})
            assert json.loads(ws.receive_text())["type"] == "preview"
            ws.send_json({"type": "cancel", "job": "c"})
            while (frame := ws.receive())["type"] == "websocket.send" and "bytes" in frame:
                pass
            assert json.loads(frame["text"]) == {
                "type": "end",
                "job": "c",
                "images": 0,
                "cancelled": True,
            }
        assert closed_soon(emulator)


@pytest.mark.skipif(REDIS_SERVER is None, reason=MISSING)
def test_fastapi_across_workers_with_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer
) -> None:
    with RedisServer(tcp=True) as redis:
        monkeypatch.setenv("REDIS_URL", redis.url)
        module = example("live_redis.py", tmp_path, monkeypatch, emulator.base_url)
        other = example("live_redis.py", tmp_path, monkeypatch, emulator.base_url)
        with (
            ServerThread(module.app, lifespan="on") as one,
            ServerThread(other.app, lifespan="on") as two,
            httpx2.Client(timeout=30) as http,
        ):
            started = http.post(f"{one.url}/jobs", json={"prompt": "a kite"})
            assert started.status_code == 202
            events = started.json()["events"]
            # Watched from the other worker, to the end.
            assert names(http.get(f"{two.url}{events}").content) == NAMES
            assert http.get(f"{two.url}/previews/ttstream.js").status_code == 200
            bare = events.partition("?")[0]
            refused = http.get(f"{two.url}{bare}")
            assert (refused.status_code, refused.text) == (403, FORBIDDEN)
            # Cancelled from the other worker: the first worker's API stream closes.
            job = http.post(f"{one.url}/jobs", json={"prompt": "a boat"}).json()["events"]
            seen = first_event_then_cancel(http, f"{two.url}{job}")
            # the cancel crosses Redis to the first worker: a preview on its way may come
            # before the end, the final image never
            assert seen[0] == "partial_image"
            assert seen[-1] == "error"
            assert set(seen[1:-1]) <= {"partial_image"}
            assert closed_soon(emulator)
        gc.collect()  # coredis's leaked streams warn here, under COREDIS_LEAK
