"""Live preview: a web page that shows an image's previews as they stream in, then the
final image in their place, scaled to fit the window, with a download link and a cancel
button; the page is ttstream's browser module (``<ttstream-preview>``) and a form.

    python examples/live_preview/app.py --port 8001      # then open http://127.0.0.1:8001

The browser POSTs a prompt to ``/generations``; the server starts the generation and
feeds it with ``pump`` into a new ``SSERelay`` kept by generation id; the page then
reads ``/generations/<id>/events`` with ``EventSource``. When a generation fails,
the page shows one sentence for people (:func:`describe`), never a Python repr.
Any number of tabs may watch one generation, and a tab that reconnects (or opens the
events URL late) gets the buffered events again without a new, billed generation.

With ``TTAPI_API_KEY`` or ``OPENAI_API_KEY`` set it uses the real API; otherwise it
starts the built-in emulator in-process (``pip install 'ttstream[emulator]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import secrets
import urllib.parse
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskGroup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import ttstream
from ttstream.emulator import api_or_emulator
from ttstream.sinks import BROWSER_MODULE, SSERelay, pump

logger = logging.getLogger("live_preview")

HERE = Path(__file__).parent
MODEL = "gpt-image-2"
SIZES = ("1024x1024", "1536x1024", "1024x1536")  # standard sizes; gpt-image-2 takes any WxH
PARTIAL_IMAGES = 3
KEEP = 16  # relays kept for late and reconnecting browsers; the oldest go first
MAX_PROMPT = 32_000  # characters: gpt-image-2's limit on the prompt
RETRY_MS = 1000  # a browser that lost the events stream reconnects after this long


def describe(error: BaseException, host: str) -> str:
    """What the page says when a generation fails: one sentence for people, made from
    the error's fields (the API's own message, the HTTP status, which timeout), never
    from its repr. ``host`` is the API's host name."""
    if isinstance(error, ttstream.APITimeoutError):
        return f"{host} did not answer in time (the {error.timeout} timeout ran out)."
    if isinstance(error, ttstream.APIConnectionError):
        return f"The connection to {host} failed before the final image. Try again."
    if isinstance(error, ttstream.APIStatusError):
        return f"{host} refused the request (HTTP {error.status_code}): {error.message}"
    if isinstance(error, ttstream.StreamError):
        return f"{host} could not make this image: {error.message}"
    if isinstance(error, ttstream.IncompleteStreamError):
        return f"{host} ended the stream before the final image. Try again."
    if isinstance(error, ttstream.TTStreamError):
        return f"{host} sent an answer this page could not read. Try again."
    return "This server hit an unexpected error; its log has the details."


class PageRelay(SSERelay):
    """The relay of one generation, whose error event carries :func:`describe`'s
    sentence instead of the exception's text. A viewer's cancel button (an HTTP
    ``DELETE`` of the events URL) calls ``on_cancel``."""

    def __init__(self, host: str, on_cancel: Callable[[], object] | None = None) -> None:
        super().__init__(replay=PARTIAL_IMAGES + 1, retry=RETRY_MS, on_cancel=on_cancel)
        self.host = host

    async def fail(self, error: BaseException | str) -> None:
        await super().fail(error if isinstance(error, str) else describe(error, self.host))


class Generation:
    """One generation: its relay and the cancel scope of the task that feeds it (which
    the relay cancels when a viewer presses Cancel: the API stream is closed at once)."""

    def __init__(self, prompt: str, size: str, host: str) -> None:
        self.prompt = prompt
        self.size = size
        self.scope = anyio.CancelScope()
        self.relay = PageRelay(host, on_cancel=self.scope.cancel)


class Generations:
    """The generations started by this server, by id: at most ``keep`` of them. Adding
    one more forgets the oldest and cancels it if it is still running (its browsers get
    an ``error`` event)."""

    def __init__(self, client: ttstream.AsyncClient, tasks: TaskGroup, keep: int) -> None:
        self.client = client
        self.tasks = tasks
        self.keep = keep
        self.started = 0
        self._by_id: OrderedDict[str, Generation] = OrderedDict()

    def get(self, generation_id: str) -> Generation | None:
        return self._by_id.get(generation_id)

    def start(self, prompt: str, size: str) -> str:
        """Starts a generation in the background; returns its id.

        Raises:
            ttstream.ValidationError: the model does not take these parameters.
        """
        stream = self.client.generate(prompt, model=MODEL, partial_images=PARTIAL_IMAGES, size=size)
        generation_id = secrets.token_urlsafe(9)
        host = urllib.parse.urlsplit(self.client.base_url).hostname or "the API"
        generation = Generation(prompt, size, host)
        self._by_id[generation_id] = generation
        while len(self._by_id) > self.keep:
            _, oldest = self._by_id.popitem(last=False)
            oldest.scope.cancel()
        self.started += 1
        self.tasks.start_soon(self._run, generation, stream)
        return generation_id

    async def _run(self, generation: Generation, stream: ttstream.ImageStream) -> None:
        with generation.scope:
            try:
                await pump(stream, generation.relay)
            except Exception:  # the relay told the browsers; the server goes on
                logger.exception("generation %r failed", generation.prompt[:60])


async def create_generation(request: Request) -> Response:
    """``POST /generations`` with ``{"prompt": str, "size": str}``: 201 with
    ``{"id", "events", "partial_images"}``, or 400 with ``{"error": message}``."""
    try:
        body: Any = await request.json()
    except ValueError:
        return JSONResponse({"error": "the body must be JSON"}, status_code=400)
    prompt = body.get("prompt") if isinstance(body, dict) else None
    size = body.get("size", SIZES[0]) if isinstance(body, dict) else None
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT:
        return JSONResponse(
            {"error": f"prompt must be 1 to {MAX_PROMPT} characters"}, status_code=400
        )
    if size not in SIZES:
        return JSONResponse({"error": f"size must be one of {', '.join(SIZES)}"}, status_code=400)
    generations: Generations = request.app.state.generations
    try:
        generation_id = generations.start(prompt.strip(), size)
    except ttstream.ValidationError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(
        {
            "id": generation_id,
            "events": f"/generations/{generation_id}/events",
            "partial_images": PARTIAL_IMAGES,
        },
        status_code=201,
    )


class GenerationEvents:
    """``GET /generations/{id}/events``: the generation's relay (Server-Sent Events)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        generations: Generations = scope["app"].state.generations
        generation = generations.get(scope["path_params"]["generation_id"])
        if generation is None:
            # 404 also stops the browser's EventSource from reconnecting.
            response = PlainTextResponse("no such generation", status_code=404)
            await response(scope, receive, send)
            return
        await generation.relay(scope, receive, send)


async def index(request: Request) -> Response:
    """``GET /``: the page (its favicon is inline, so there is no ``/favicon.ico``)."""
    return FileResponse(HERE / "index.html", headers={"cache-control": "no-cache"})


async def browser_module(request: Request) -> Response:
    """``GET /ttstream.js``: the browser module ttstream ships (the relays also serve it
    under their own path)."""
    return FileResponse(BROWSER_MODULE, media_type="text/javascript")


def create_app(*, api_key: str | None, base_url: str | None = None, keep: int = KEEP) -> Starlette:
    """The application: ``GET /`` (the page), ``POST /generations``,
    ``GET /generations/{id}/events``. ``api_key`` and ``base_url`` go to
    ``ttstream.AsyncClient``; the client and the generations' task group live as long
    as the application (its lifespan)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            ttstream.AsyncClient(api_key, base_url=base_url) as client,
            anyio.create_task_group() as tasks,
        ):
            app.state.generations = Generations(client, tasks, keep)
            yield
            tasks.cancel_scope.cancel()  # stopping the server stops the generations

    return Starlette(
        routes=[
            Route("/", index),
            Route("/ttstream.js", browser_module),
            Route("/generations", create_generation, methods=["POST"]),
            Route("/generations/{generation_id}/events", GenerationEvents()),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    with api_or_emulator(step_delay=0.5) as (api_key, base_url):
        print(f"Live preview at http://{args.host}:{args.port}/")
        app = create_app(api_key=api_key, base_url=base_url)
        # Open event streams of running generations hold a graceful shutdown: 2 s at most.
        uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
