"""A websocket backend: previews streamed to the browser over one websocket, rendered by
ttstream's browser module (``<ttstream-preview src="ws://...">``).

    python examples/websocket_backend.py --port 8002            # then open http://127.0.0.1:8002
    python examples/websocket_backend.py --port 8002 --client "a lighthouse at dusk"

The protocol on ``ws://<host>:<port>/ws`` is ttstream's (``docs/live-previews.md``, "The
websocket protocol"), spoken by :func:`ttstream.sinks.serve_generations`: the browser
sends ``{"type": "start", "job": "j1", "params": {"prompt": "...", "size":
"1024x1024"}}``; for each preview and the final image the server sends one JSON text
frame (``{"type": "preview" | "completed", "job": "j1", "frames": k, ...}``) and the
image in ``k`` binary frames of at most 64 KiB, then ``{"type": "end", "job": "j1",
"images": 1}`` or ``{"type": "error", "job": "j1", "message": "..."}``. Several jobs may
share the socket. ``{"type": "cancel", "job": "j1"}``, or closing the tab, stops the
generation at once: its API stream is closed.

With ``--token-secret``, the socket needs ``?token=<sign_viewer_token("ws", ...)>`` (the
page at ``/`` gets one); without it, anyone who reaches the server may generate.

Serving websockets needs ``wsproto`` or ``websockets`` next to uvicorn (``pip install
wsproto``). With ``TTAPI_API_KEY`` or ``OPENAI_API_KEY`` set the server uses the real
API; otherwise it starts the built-in emulator in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import ttstream
from ttstream.emulator import api_or_emulator
from ttstream.sinks import BROWSER_MODULE, serve_generations, sign_viewer_token, verify_viewer_token

MODEL = "gpt-image-2"
SIZES = ("1024x1024", "1536x1024", "1024x1536")
PARTIAL_IMAGES = 2
MAX_PROMPT = 32_000
SOCKET_KEY = "ws"  # what the viewer tokens of this server are signed for

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark">
<title>ttstream over a websocket</title>
<link rel="icon" href="data:,">
<script type="module" src="/ttstream.js"></script>
<style>
  html, body { margin: 0; height: 100%; background: #0d1017; color: #e8ecf3;
    font: 15px/1.4 system-ui, sans-serif; }
  .app { height: 100dvh; display: grid; gap: 12px; padding: 12px 16px;
    grid-template-rows: auto minmax(0, 1fr); box-sizing: border-box; }
  form { display: flex; gap: 8px; flex-wrap: wrap; }
  input, select, button { font: inherit; color: inherit; background: #161b24;
    border: 1px solid #262d3a; border-radius: 10px; padding: 9px 12px; min-width: 0; }
  input { flex: 1 1 16rem; }
  button { background: #7c5cff; border-color: #7c5cff; font-weight: 600; cursor: pointer; }
</style>
</head>
<body>
<div class="app">
  <form id="form">
    <input id="prompt" required maxlength="32000" aria-label="prompt"
           placeholder="Describe an image: a lighthouse at dusk">
    <select id="size" aria-label="size">
      <option value="1024x1024">1024 &times; 1024</option>
      <option value="1536x1024">1536 &times; 1024</option>
      <option value="1024x1536">1024 &times; 1536</option>
    </select>
    <button id="generate">Generate</button>
  </form>
  <ttstream-preview id="preview" previews="PARTIAL_IMAGES" size="1024x1024"></ttstream-preview>
</div>
<script type="module">
import "/ttstream.js";
const preview = document.getElementById("preview");
Object.defineProperty(window, "livePreview", { get: () => preview.stats });
const socket = new URL("/ws", location.href);
socket.protocol = location.protocol === "https:" ? "wss:" : "ws:";
const token = TOKEN;
if (token) socket.searchParams.set("token", token);
preview.src = socket.href;
document.getElementById("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const prompt = document.getElementById("prompt").value.trim();
  const size = document.getElementById("size").value;
  preview.setAttribute("size", size);
  preview.setAttribute("label", prompt);
  preview.start({ prompt, size });
});
</script>
</body>
</html>
"""


def make_start(client: ttstream.AsyncClient) -> Any:
    """``start(params)`` for :func:`serve_generations`: checks the browser's parameters
    and returns the generation's stream (a ``ValidationError`` goes back to the browser
    as the job's error frame)."""

    def start(params: dict[str, Any]) -> ttstream.ImageStream:
        prompt = params.get("prompt")
        size = params.get("size", SIZES[0])
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT:
            raise ttstream.ValidationError("prompt", "…", f"1 to {MAX_PROMPT} characters")
        if size not in SIZES:
            raise ttstream.ValidationError("size", size, f"one of {', '.join(SIZES)}")
        return client.generate(
            prompt.strip(), model=MODEL, partial_images=PARTIAL_IMAGES, size=size
        )

    return start


async def generations(websocket: WebSocket) -> None:
    """``/ws``: ttstream's websocket protocol, until the browser leaves."""
    secret: bytes | None = websocket.app.state.token_secret
    if secret is not None:
        token = websocket.query_params.get("token", "")
        if not verify_viewer_token(token, SOCKET_KEY, secret=secret):
            await websocket.close(code=1008)  # policy violation: no upgrade for strangers
            return
    await serve_generations(websocket, make_start(websocket.app.state.client))


async def index(request: Request) -> Response:
    secret: bytes | None = request.app.state.token_secret
    token = "null" if secret is None else json.dumps(sign_viewer_token(SOCKET_KEY, secret=secret))
    page = PAGE.replace("TOKEN", token).replace("PARTIAL_IMAGES", str(PARTIAL_IMAGES))
    return HTMLResponse(page, headers={"cache-control": "no-cache"})


async def browser_module(request: Request) -> Response:
    return FileResponse(BROWSER_MODULE, media_type="text/javascript")


def create_app(
    *, api_key: str | None, base_url: str | None = None, token_secret: bytes | None = None
) -> Starlette:
    """``GET /`` (the page), ``GET /ttstream.js``, ``/ws`` (the websocket)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with ttstream.AsyncClient(api_key, base_url=base_url) as client:
            app.state.client = client
            app.state.token_secret = token_secret
            yield

    return Starlette(
        routes=[
            Route("/", index),
            Route("/ttstream.js", browser_module),
            WebSocketRoute("/ws", generations),
        ],
        lifespan=lifespan,
    )


def serve(host: str, port: int, token_secret: bytes | None) -> None:
    import uvicorn

    with api_or_emulator(step_delay=0.5) as (api_key, base_url):
        print(f"Websocket backend at http://{host}:{port}/ (socket: ws://{host}:{port}/ws)")
        app = create_app(api_key=api_key, base_url=base_url, token_secret=token_secret)
        uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=2)


async def run_client(url: str, prompt: str, size: str, out: Path) -> int:
    """Sends one prompt, prints each text frame, writes each image to ``out``."""
    import httpx2

    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    stem = "-".join(re.findall(r"[a-z0-9]+", prompt.lower()))[:40] or "image"
    async with httpx2.AsyncClient() as http, http.websocket(url) as ws:
        await ws.send_json(
            {"type": "start", "job": "j1", "params": {"prompt": prompt, "size": size}}
        )
        while True:
            frame = json.loads(await ws.receive_text())
            print(json.dumps(frame))
            if frame["type"] in ("preview", "completed"):
                image = b"".join([await ws.receive_bytes() for _ in range(frame["frames"])])
                kind = f"partial-{frame['index'] + 1}" if "index" in frame else "final"
                path = out / f"{stem}-{kind}.png"
                await anyio.Path(path).write_bytes(image)
                print(f"  -> {path} ({len(image)} bytes)")
            elif frame["type"] == "end":
                return 0
            elif frame["type"] == "error":
                return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--client", metavar="PROMPT", help="run the client with this prompt")
    parser.add_argument("--size", default=SIZES[0], choices=SIZES)
    parser.add_argument("--out", default="out/websocket", help="where --client writes images")
    parser.add_argument("--token-secret", help="require viewer tokens signed with this secret")
    args = parser.parse_args()
    if args.client:
        url = f"ws://{args.host}:{args.port}/ws"
        return anyio.run(run_client, url, args.client, args.size, Path(args.out))
    secret = args.token_secret.encode() if args.token_secret else None
    serve(args.host, args.port, secret)
    return 0


if __name__ == "__main__":
    sys.exit(main())
