"""A websocket backend: each prompt a client sends is streamed back as it is generated.

    python examples/websocket_backend.py --port 8002            # the server
    python examples/websocket_backend.py --port 8002 --client "a lighthouse at dusk"

Protocol on ``ws://<host>:<port>/ws``: the client sends ``{"prompt": "...", "size":
"1024x1024"}`` (``size`` optional); the server answers with the frames of
``WebSocketSink`` (for each preview and the final image, one JSON text frame with its
metadata, then one binary frame with the PNG), then ``{"type": "done", "images": 1}``,
or ``{"type": "error", "message": "..."}``. The socket stays open for the next prompt.

Serving websockets needs ``wsproto`` or ``websockets`` next to uvicorn
(``pip install wsproto``); ``--client`` needs ``httpx-ws`` (``pip install httpx-ws``).
Without it, open ``http://<host>:<port>/`` in a browser and paste the snippet that page
shows into the developer console.

With ``TTAPI_API_KEY`` or ``OPENAI_API_KEY`` set the server uses the real API; otherwise
it starts the built-in emulator in-process.
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
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import ttstream
from ttstream.emulator import api_or_emulator
from ttstream.sinks import SinkError, WebSocketSink, pump

MODEL = "gpt-image-2"
SIZES = ("1024x1024", "1536x1024", "1024x1536")

BROWSER_SNIPPET = """\
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.onmessage = (m) => typeof m.data === "string"
  ? console.log(JSON.parse(m.data))
  : console.log("image:", URL.createObjectURL(m.data), m.data.size, "bytes");
ws.onopen = () => ws.send(JSON.stringify({prompt: "a lighthouse at dusk"}));"""


async def generations(websocket: WebSocket) -> None:
    """``/ws``: one generation per JSON message received, streamed back in order."""
    await websocket.accept()
    client: ttstream.AsyncClient = websocket.app.state.client
    while True:
        try:
            request: Any = await websocket.receive_json()
        except WebSocketDisconnect:
            return
        except ValueError:
            await websocket.send_json({"type": "error", "message": "send a JSON object"})
            continue
        prompt = request.get("prompt") if isinstance(request, dict) else None
        size = request.get("size", SIZES[0]) if isinstance(request, dict) else None
        if not isinstance(prompt, str) or not prompt.strip() or size not in SIZES:
            message = f'send {{"prompt": "...", "size": one of {", ".join(SIZES)}}}'
            await websocket.send_json({"type": "error", "message": message})
            continue
        try:
            stream = client.generate(prompt, model=MODEL, partial_images=2, size=size)
            completed = await pump(stream, WebSocketSink(websocket))
        except SinkError:
            return  # the client went away mid-stream: nobody is left to tell
        except ttstream.TTStreamError as exc:
            await websocket.send_json({"type": "error", "message": str(exc)})
            continue
        await websocket.send_json({"type": "done", "images": len(completed)})


async def index(request: Request) -> PlainTextResponse:
    return PlainTextResponse(
        "A websocket backend: connect to /ws. From this page's developer console:\n\n"
        + BROWSER_SNIPPET
        + "\n"
    )


def create_app(*, api_key: str | None, base_url: str | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with ttstream.AsyncClient(api_key, base_url=base_url) as client:
            app.state.client = client
            yield

    return Starlette(
        routes=[Route("/", index), WebSocketRoute("/ws", generations)], lifespan=lifespan
    )


def serve(host: str, port: int) -> None:
    import uvicorn

    with api_or_emulator(step_delay=0.5) as (api_key, base_url):
        print(f"Websocket backend at ws://{host}:{port}/ws")
        uvicorn.run(create_app(api_key=api_key, base_url=base_url), host=host, port=port)


async def run_client(url: str, prompt: str, size: str, out: Path) -> int:
    """Sends one prompt, prints each metadata frame, writes each image to ``out``."""
    try:
        import httpx2
    except ImportError:
        print("--client needs httpx-ws (pip install httpx-ws). Or open the server's / page")
        print("in a browser and paste this into its developer console:\n")
        print(BROWSER_SNIPPET)
        return 1
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    stem = "-".join(re.findall(r"[a-z0-9]+", prompt.lower()))[:40] or "image"
    async with (
        httpx2.AsyncClient() as http,
        http.websocket(url, max_message_size_bytes=64 * 1024 * 1024) as ws,
    ):
        await ws.send_json({"prompt": prompt, "size": size})
        while True:
            frame = json.loads(await ws.receive_text())
            print(json.dumps(frame))
            if frame["type"] in ("partial_image", "completed"):
                image = await ws.receive_bytes()
                kind = f"partial-{frame['index']}" if "index" in frame else "final"
                path = out / f"{stem}-{kind}.png"
                await anyio.Path(path).write_bytes(image)
                print(f"  -> {path} ({len(image)} bytes)")
            elif frame["type"] == "done":
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
    args = parser.parse_args()
    if args.client:
        url = f"ws://{args.host}:{args.port}/ws"
        return anyio.run(run_client, url, args.client, args.size, Path(args.out))
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
