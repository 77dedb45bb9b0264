"""The live preview example in a real browser: headless Chromium driven by Selenium.

The example app (examples/live_preview/app.py) is served by uvicorn on a loopback port,
talking to an emulator on another; one Chromium serves every test of this module. At a
desktop (1366x900) and a phone (390x844) viewport, for square and landscape images, the
test types a prompt, presses Generate and checks what a user sees: the elapsed time
while waiting, the previews and then the final image in the same frame, scaled to fit
the viewport with no scrollbars, the size and tokens, a download link to the final
image's bytes, human error text, the reconnect indicator, and no request answered 404
(the favicon is inline). Then what the page (ttstream's browser module,
``<ttstream-preview>``) must never get wrong, with the emulator's pauses between events:
a stream cut after a preview (the error shown, the preview kept, no broken image),
Cancel (the emulator sees its stream closed), and the same element over the websocket
example (examples/websocket_backend.py). Screenshots go to artifacts/live_preview-*.png.
The error sentences the server puts in its error events are checked without a browser.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` and the ``selenium``
package; they are skipped, with that reason, without them. Selenium is pointed at
/usr/bin/chromedriver and the system Chromium, so it never downloads a driver or a
browser.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx2
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import ttstream
from tests.support.chromium import (
    VIEWPORTS,
    closed_soon,
    load_file,
    open_page,
    part,
    screenshot,
    text,
    until,
)
from tests.support.paths import ROOT
from tests.support.uvicorn_thread import ServerThread
from ttstream.emulator import create_app as create_emulator
from ttstream.sse import SSEDecoder

pytest_plugins = ["tests.support.chromium"]  # the browser fixture

STEP_DELAY = 0.1  # seconds the emulator waits before each event
FIRST_PREVIEW_PAUSE = 0.5  # seconds more after the first preview: the crossfade ends


def load_example() -> ModuleType:
    """examples/live_preview/app.py as a module."""
    return load_file(ROOT / "examples" / "live_preview" / "app.py", "live_preview_app")


class Faults:
    """In front of the emulator: while ``spec`` is set, every request asks for those
    faults (the ``X-Emulator-Fault`` header)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.spec: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.spec is not None:
            headers = [h for h in scope["headers"] if h[0].lower() != b"x-emulator-fault"]
            scope = {**scope, "headers": [*headers, (b"x-emulator-fault", self.spec.encode())]}
        await self.app(scope, receive, send)


class Requests:
    """In front of the example app: records ``(method, path, status)`` of every answer,
    and, when ``drop_events`` is set, cuts the next events stream after its first image
    event (the browser sees its connection break, as when a proxy restarts)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int]] = []
        self.drop_events = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        drop = self.drop_events and scope["path"].endswith("/events")
        self.drop_events = self.drop_events and not drop
        cut = False

        async def recording_send(message: Message) -> None:
            nonlocal cut
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], message["status"]))
            if cut:
                raise OSError("cut by the test")  # the relay takes it as a browser gone
            await send(message)
            cut = drop and b"event: partial_image" in message.get("body", b"")

        # An answer left unfinished makes uvicorn close the connection.
        await self.app(scope, receive, recording_send)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, Faults, Requests]]:
    example = load_example()
    faults = Faults(create_emulator(step_delay=STEP_DELAY, api_key="emulator-key"))
    with ServerThread(faults) as emulator:
        app = example.create_app(api_key="emulator-key", base_url=f"{emulator.url}/v1")
        requests = Requests(app)
        with ServerThread(requests, lifespan="on") as server:
            yield server.url, faults, requests


@pytest.fixture
def page(servers: tuple[str, Faults, Requests]) -> tuple[str, Faults, Requests]:
    _, faults, requests = servers
    faults.spec = None
    requests.seen.clear()
    requests.drop_events = False
    return servers


def generate(browser: Any, prompt: str, size: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.find_element(By.ID, "prompt").send_keys(prompt)
    Select(browser.find_element(By.ID, "size")).select_by_value(size)
    browser.find_element(By.ID, "generate").click()


# Records every (status, elapsed) pair the status bar shows, as window.statusBar.
WATCH_STATUS_BAR = """
window.statusBar = [];
const bar = document.querySelector('#preview .tts-bar');
const text = (part) => document.querySelector('#preview .tts-' + part).innerText;
new MutationObserver(() => window.statusBar.push([text('status'), text('elapsed')]))
  .observe(bar, {subtree: true, childList: true, characterData: true});
"""


# The image on top of the frame and where it is drawn: an <img> with object-fit:
# contain draws its picture centred in its box, scaled by the smaller of the two ratios.
GEOMETRY = """
const frame = document.querySelector('#preview .tts-frame');
const shown = [...frame.querySelectorAll('img.tts-shown')];
const img = shown[0];
const box = img.getBoundingClientRect();
const scale = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);
const [w, h] = [img.naturalWidth * scale, img.naturalHeight * scale];
return {
  shown: shown.length, id: img.id, src: img.currentSrc, fit: getComputedStyle(img).objectFit,
  natural: [img.naturalWidth, img.naturalHeight],
  box: [box.left, box.top, box.width, box.height],
  drawn: [box.left + (box.width - w) / 2, box.top + (box.height - h) / 2, w, h],
  withSrc: [...document.querySelectorAll('img[src]')].filter((i) => frame.contains(i)).length,
  images: document.querySelectorAll('img').length,
  scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
  client: [document.documentElement.clientWidth, document.documentElement.clientHeight],
};
"""

FADED_IN = (
    "getComputedStyle(document.querySelector('#preview .tts-frame img.tts-shown')).opacity === '1'"
)


def assert_inside(rect: list[float], width: int, height: int, slack: float = 0.0) -> None:
    left, top, w, h = rect
    assert min(left, top) >= 0, rect
    assert left + w <= width + slack, rect
    assert top + h <= height + slack, rect


def assert_fits(geometry: dict[str, Any], viewport: str) -> None:
    """The drawn image lies inside the viewport, aspect ratio kept, and fills most of it;
    the page does not scroll."""
    width, height, _ = VIEWPORTS[viewport]
    assert geometry["fit"] == "contain"
    assert geometry["scroll"] == geometry["client"] == [width, height]  # no scrollbars
    assert_inside(geometry["box"], width, height)
    assert_inside(geometry["drawn"], width, height, slack=0.5)  # sub-pixel rounding
    _, _, w, h = geometry["drawn"]
    natural_w, natural_h = geometry["natural"]
    assert w / h == pytest.approx(natural_w / natural_h, rel=1e-3)
    # Not a thumbnail: the limiting side spans most of the viewport.
    assert w >= 0.85 * width or h >= 0.6 * height, geometry


@pytest.mark.parametrize("size", ["1024x1024", "1536x1024"])
@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_previews_then_the_final_image_fit_the_viewport_in_one_frame(
    browser: Any, page: tuple[str, Faults, Requests], viewport: str, size: str
) -> None:
    url, faults, requests = page
    faults.spec = f"stall={FIRST_PREVIEW_PAUSE}"  # the first preview fades in fully
    open_page(browser, url, viewport)
    if size == "1024x1024":
        screenshot(browser, f"{viewport}-idle")
    browser.execute_script(WATCH_STATUS_BAR)
    generate(browser, "a lighthouse at dusk", size)

    until(browser, "window.livePreview.previewsShown")
    until(browser, FADED_IN)
    preview = browser.execute_script(GEOMETRY)
    assert preview["src"].startswith("data:image/png;base64,")
    assert_fits(preview, viewport)
    assert text(browser, "status").startswith("Preview ")
    screenshot(browser, f"{viewport}-{size}-preview")

    until(browser, "window.livePreview.finalShown")
    # The crossfade ends with the final image alone in the frame.
    until(browser, "document.querySelectorAll('#preview .tts-frame img[src]').length === 1")
    until(browser, FADED_IN)
    final = browser.execute_script(GEOMETRY)
    assert final["natural"] == [int(n) for n in size.split("x")]
    assert final["src"].startswith("blob:")
    assert final["shown"] == final["withSrc"] == 1
    assert final["images"] == 3  # the logo and the frame's two layers: no other image
    assert final["box"] == preview["box"]  # in place: the same frame, the same spot
    assert_fits(final, viewport)

    state = browser.execute_script("return window.livePreview")
    assert state["errors"] == []
    assert state["finalSize"] == size
    # The first preview was on screen through the emulator's pause before the final
    # image came (a page that got everything at the end would show them together).
    assert state["finalShownAt"] - state["firstPreviewAt"] > 1000 * FIRST_PREVIEW_PAUSE
    assert text(browser, "status") == "Done"
    shown_size, tokens = text(browser, "meta").split(" · ")  # not cut short by an ellipsis
    assert shown_size == size.replace("x", " \N{MULTIPLICATION SIGN} ")
    assert re.fullmatch(r"[0-9,]+ tokens", tokens)
    assert browser.execute_script(
        "const m = document.querySelector('#preview .tts-meta');"
        "return m.scrollWidth <= m.clientWidth"
    )
    size_text = browser.execute_script(
        "return document.querySelector('#preview .tts-download').textContent"
    )
    assert re.fullmatch(r"\s*Download [0-9.]+ (KiB|MiB)", size_text)
    assert text(browser, "elapsed").startswith("in ")
    # While waiting for the first preview, the elapsed time counted up.
    waiting = [
        float(elapsed.removesuffix(" s"))
        for status, elapsed in browser.execute_script("return window.statusBar")
        if status == "Waiting for the first preview" and elapsed.endswith(" s")
    ]
    assert len(waiting) >= 2, waiting
    assert waiting == sorted(waiting)
    assert waiting[-1] >= waiting[0] + 0.1

    # The download link holds the final image's bytes.
    link = browser.execute_script(
        "const a = document.querySelector('#preview .tts-download');"
        "return {href: a.href, download: a.download, shown: a.checkVisibility()};"
    )
    assert link == {"href": final["src"], "download": "a-lighthouse-at-dusk.png", "shown": True}
    download = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(document.querySelector('#preview .tts-download').href).then((r) => r.blob())"
        "  .then(async (b) => { const bmp = await createImageBitmap(b);"
        "                       done([b.type, bmp.width, bmp.height]); });"
    )
    assert download == ["image/png", final["natural"][0], final["natural"][1]]

    screenshot(browser, f"{viewport}-{size}")
    assert browser.get_log("browser") == []  # no script error, no failed request
    assert requests.seen[0] == ("GET", "/", 200)
    assert [status for _, _, status in requests.seen if status >= 400] == []


def test_a_failed_generation_is_told_in_a_sentence_not_a_repr(
    browser: Any, page: tuple[str, Faults, Requests]
) -> None:
    url, faults, _ = page
    faults.spec = "error-nested"
    open_page(browser, url, "desktop")
    generate(browser, "a lighthouse at dusk", "1024x1024")
    until(browser, "window.livePreview.errors.length")
    assert part(browser, "error").is_displayed()
    message = text(browser, "error-text")
    assert message == (
        "127.0.0.1 could not make this image: The emulator failed this stream as "
        "X-Emulator-Fault asked (error-nested)."
    )
    assert text(browser, "status") == "Failed"
    assert not part(browser, "download").is_displayed()
    screenshot(browser, "error")


def test_the_page_says_when_it_reconnects_and_goes_on_where_it_was(
    browser: Any, page: tuple[str, Faults, Requests]
) -> None:
    url, _, requests = page
    requests.drop_events = True
    open_page(browser, url, "phone")
    generate(browser, "a lighthouse at dusk", "1024x1024")
    until(browser, "window.livePreview.notices.includes('Reconnecting…')")
    pill = part(browser, "connection")
    assert pill.is_displayed()
    assert pill.text == "Reconnecting…"
    until(browser, FADED_IN)
    screenshot(browser, "reconnecting")
    until(browser, "window.livePreview.finalShown")
    state = browser.execute_script("return window.livePreview")
    assert state["reconnects"] == 1
    assert state["notices"] == ["Reconnecting…", "Reconnected"]
    assert state["errors"] == []
    events = [path for method, path, _ in requests.seen if path.endswith("/events")]
    assert len(events) == 2
    assert len(set(events)) == 1  # the same generation, resumed: not a new one


def test_the_page_says_when_the_server_resumes_its_stream_from_the_api(
    browser: Any, page: tuple[str, Faults, Requests]
) -> None:
    url, faults, _ = page
    # The emulator cuts the API stream after its second event, once; ttstream resumes it.
    faults.spec = "ids;drop-after=2;times=1;key=api-resume"
    open_page(browser, url, "desktop")
    generate(browser, "a lighthouse at dusk", "1536x1024")
    until(browser, "window.livePreview.finalShown")
    until(browser, FADED_IN)
    state = browser.execute_script("return window.livePreview")
    assert state["errors"] == []
    assert len(state["notices"]) == 2, state["notices"]
    assert state["notices"][0].startswith("API connection lost · ")
    assert state["notices"][1] == "API connection back"
    assert part(browser, "connection").text == "API connection back"
    screenshot(browser, "api-resumed")


# The sentences of the error events, without a browser.

HOST = "api.example"


@pytest.mark.parametrize(
    ("error", "sentence"),
    [
        (
            ttstream.APITimeoutError("read timed out: ReadTimeout('')", timeout="read"),
            f"{HOST} did not answer in time (the read timeout ran out).",
        ),
        (
            ttstream.APIConnectionError(
                "connection failed: ConnectError('All connection attempts failed')"
            ),
            f"The connection to {HOST} failed before the final image. Try again.",
        ),
        (
            ttstream.APIStatusError(
                "Billing hard limit has been reached", status_code=400, code="billing_limit"
            ),
            f"{HOST} refused the request (HTTP 400): Billing hard limit has been reached",
        ),
        (
            ttstream.StreamError("Your request was rejected.", code="moderation_blocked"),
            f"{HOST} could not make this image: Your request was rejected.",
        ),
        (
            ttstream.IncompleteStreamError("the body ended after 2 events"),
            f"{HOST} ended the stream before the final image. Try again.",
        ),
        (
            ttstream.MalformedEventError("not JSON", event="image_generation.completed"),
            f"{HOST} sent an answer this page could not read. Try again.",
        ),
        (
            RuntimeError("database password is hunter2"),
            "This server hit an unexpected error; its log has the details.",
        ),
    ],
)
def test_describe_tells_a_failure_in_a_sentence_from_the_errors_fields(
    error: BaseException, sentence: str
) -> None:
    assert load_example().describe(error, HOST) == sentence


@pytest.mark.anyio
async def test_the_page_relay_sends_that_sentence_in_its_error_event() -> None:
    relay = load_example().PageRelay(HOST)
    await relay.fail(ttstream.StreamError("Your request was rejected.", code="blocked"))
    transport = httpx2.ASGITransport(app=relay)
    async with httpx2.AsyncClient(transport=transport, base_url="http://page") as client:
        response = await client.get("/events")
    frames = list(SSEDecoder().feed(response.content))
    assert [(frame.event, json.loads(frame.data)) for frame in frames] == [
        (
            "error",
            {
                "type": "error",
                "message": f"{HOST} could not make this image: Your request was rejected.",
            },
        )
    ]
    assert "retry: 1000" in response.text


# The element's behaviour that a user must never miss: a cut stream, cancel, websockets.

# Every image in the element: a layer with a src is decoded (never a broken image) and
# the one on top is visible.
IMAGES_IN_FRAME = """
const frame = document.querySelector('#preview .tts-frame');
return [...frame.querySelectorAll('img')].map((img) => ({
  src: (img.getAttribute('src') || '').slice(0, 22), shown: img.classList.contains('tts-shown'),
  complete: img.complete, width: img.naturalWidth,
  visible: img.hasAttribute('src') && getComputedStyle(img).visibility === 'visible',
  opacity: Number(getComputedStyle(img).opacity),
}));
"""


def assert_no_broken_image(images: list[dict[str, Any]]) -> None:
    for image in images:
        if image["src"]:
            assert image["complete"], image
            assert image["width"] > 0, image  # decoded: not a broken-image icon
        else:
            assert not image["visible"], image


def test_a_cut_stream_shows_the_error_and_keeps_the_last_preview(
    browser: Any, page: tuple[str, Faults, Requests]
) -> None:
    url, faults, _ = page
    # The API connection breaks after the second preview, with a pause before it, as a
    # real cut comes: the preview is on screen when the error arrives.
    faults.spec = f"stall={FIRST_PREVIEW_PAUSE};drop-after=2"
    open_page(browser, url, "phone")
    generate(browser, "a lighthouse at dusk", "1024x1024")
    until(browser, "window.livePreview.previewsShown")
    until(browser, "window.livePreview.errors.length")
    until(browser, "window.livePreview.previewsShown === 2")
    # Dimmed, not hidden, once its crossfade ended.
    until(
        browser, "getComputedStyle(document.querySelector('#preview img.tts-shown')).opacity > 0.3"
    )
    images = browser.execute_script(IMAGES_IN_FRAME)
    assert_no_broken_image(images)
    [kept] = [image for image in images if image["shown"]]
    assert kept["src"].startswith("data:image/png;base64")  # the last preview, kept
    assert kept["opacity"] > 0.3
    assert part(browser, "error").is_displayed()
    assert "Try again" in text(browser, "error-text")
    assert text(browser, "status") == "Failed"
    assert not part(browser, "download").is_displayed()
    assert not part(browser, "cancel").is_displayed()
    screenshot(browser, "cut-stream")


def test_cancel_ends_the_generation_on_the_server(
    browser: Any, page: tuple[str, Faults, Requests]
) -> None:
    url, faults, requests = page
    faults.spec = "stall=30"  # after the first preview, the API stays silent for 30 s
    streams = faults.app.state.stream_stats
    open_page(browser, url, "desktop")
    generate(browser, "a lighthouse at dusk", "1024x1024")
    until(browser, "window.livePreview.previewsShown")
    assert streams.open_streams == 1
    cancel = part(browser, "cancel")
    assert cancel.is_displayed()
    cancel.click()
    until(browser, "window.livePreview.cancelled")
    assert text(browser, "status") == "Cancelled"
    # The server closed its API stream: the emulator sees it closed, long before 30 s.
    assert closed_soon(streams)
    assert ("DELETE", requests.seen[-1][1], 202) == requests.seen[-1]
    assert_no_broken_image(browser.execute_script(IMAGES_IN_FRAME))
    assert not part(browser, "error").is_displayed()
    screenshot(browser, "cancelled")


def load_websocket_example() -> ModuleType:
    return load_file(ROOT / "examples" / "websocket_backend.py", "websocket_backend")


@pytest.fixture(scope="module")
def websocket_servers() -> Iterator[tuple[str, Faults]]:
    example = load_websocket_example()
    faults = Faults(create_emulator(step_delay=STEP_DELAY, api_key="emulator-key"))
    with ServerThread(faults) as emulator:
        app = example.create_app(api_key="emulator-key", base_url=f"{emulator.url}/v1")
        with ServerThread(app, lifespan="on", ws="wsproto") as server:
            yield server.url, faults


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_the_element_over_a_websocket_shows_previews_then_the_final_image(
    browser: Any, websocket_servers: tuple[str, Faults], viewport: str
) -> None:
    url, faults = websocket_servers
    faults.spec = f"stall={FIRST_PREVIEW_PAUSE}"
    open_page(browser, url, viewport)
    generate(browser, "a lighthouse at dusk", "1536x1024")
    until(browser, "window.livePreview.previewsShown")
    preview = browser.execute_script(GEOMETRY)
    assert preview["src"].startswith("blob:")
    until(browser, "window.livePreview.finalShown")
    until(browser, FADED_IN)
    final = browser.execute_script(GEOMETRY)
    assert final["natural"] == [1536, 1024]
    assert final["box"] == preview["box"]
    assert_fits(final, viewport)
    state = browser.execute_script("return window.livePreview")
    assert state["errors"] == []
    assert state["finalShownAt"] - state["firstPreviewAt"] > 1000 * FIRST_PREVIEW_PAUSE
    assert text(browser, "status") == "Done"
    assert re.fullmatch(
        r"1536 \N{MULTIPLICATION SIGN} 1024 · [0-9,]+ tokens", text(browser, "meta")
    )
    assert part(browser, "download").is_displayed()
    screenshot(browser, f"websocket-{viewport}")
    assert browser.get_log("browser") == []


def test_cancel_over_a_websocket_closes_the_api_stream(
    browser: Any, websocket_servers: tuple[str, Faults]
) -> None:
    url, faults = websocket_servers
    faults.spec = "stall=30"
    streams = faults.app.state.stream_stats
    open_page(browser, url, "phone")
    generate(browser, "a lighthouse at dusk", "1024x1024")
    until(browser, "window.livePreview.previewsShown")
    assert streams.open_streams == 1
    part(browser, "cancel").click()
    until(browser, "window.livePreview.cancelled")
    assert closed_soon(streams)
    assert text(browser, "status") == "Cancelled"
    assert_no_broken_image(browser.execute_script(IMAGES_IN_FRAME))
    screenshot(browser, "websocket-cancelled")


def test_a_failed_generation_over_a_websocket_is_told_in_words(
    browser: Any, websocket_servers: tuple[str, Faults]
) -> None:
    url, faults = websocket_servers
    faults.spec = "error-nested"
    open_page(browser, url, "desktop")
    generate(browser, "a lighthouse at dusk", "1024x1024")
    until(browser, "window.livePreview.errors.length")
    assert part(browser, "error").is_displayed()
    assert "error-nested" in text(browser, "error-text")
    assert_no_broken_image(browser.execute_script(IMAGES_IN_FRAME))


# A page of its own, with none of the example's CSS (no `* { box-sizing: border-box }`):
# the element must lay itself out whatever the page's box model.
BARE_PAGE = """<!doctype html>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script type="module" src="/ttstream.js"></script>
<link rel="icon" href="data:,">
<style>body { margin: 0; height: 100dvh; display: grid; }</style>
<ttstream-preview id="preview" previews="3" size="SIZE"></ttstream-preview>"""

PLACEHOLDER = """
const rect = (selector) => {
  const r = document.querySelector('#preview ' + selector).getBoundingClientRect();
  return [r.left, r.top, r.width, r.height];
};
return {frame: rect('.tts-frame'), ghost: rect('.tts-ghost')};
"""


def bare_page_app() -> ASGIApp:
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, HTMLResponse
    from starlette.routing import Route

    from ttstream.sinks import BROWSER_MODULE

    async def page(request: Any) -> HTMLResponse:
        return HTMLResponse(BARE_PAGE.replace("SIZE", request.query_params["size"]))

    async def module(request: Any) -> FileResponse:
        return FileResponse(BROWSER_MODULE, media_type="text/javascript")

    return Starlette(routes=[Route("/", page), Route("/ttstream.js", module)])


@pytest.mark.parametrize("size", ["1024x1024", "1536x1024", "1024x1536"])
@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_the_placeholder_stays_inside_the_frame_on_a_page_without_border_box(
    browser: Any, viewport: str, size: str
) -> None:
    with ServerThread(bare_page_app()) as server:
        open_page(browser, f"{server.url}/?size={size}", viewport)
        until(browser, "document.querySelector('#preview .tts-ghost')")
        rects = browser.execute_script(PLACEHOLDER)
    assert_inside(rects["ghost"], *rects["frame"][2:])  # the frame starts at (0, 0)
    assert rects["frame"][:2] == [0, 0], rects
    assert browser.get_log("browser") == []


@contextlib.contextmanager
def one_final_shown(
    browser: Any,
    final: ttstream.Completed,
    script: str = "",
    attributes: str = "",
    then: ttstream.Completed | None = None,
) -> Iterator[None]:
    """A page of one ``<ttstream-preview>`` (with ``attributes``, ``script`` after it)
    open in ``browser`` while its SSERelay, served with the page, holds ``final`` and the
    end; with ``then``, a second relay at ``/next/events`` holds that final and the end."""
    import anyio
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Mount, Route

    from ttstream.sinks import SSERelay

    relays = {"live": final, **({"next": then} if then is not None else {})}
    page = (
        '<!doctype html><script type="module" src="/live/ttstream.js"></script>'
        f'<ttstream-preview id="preview" src="/live/events" {attributes}></ttstream-preview>'
        + script
    )

    async def index(request: Any) -> HTMLResponse:
        return HTMLResponse(page)

    async def fill(relay: SSERelay, item: ttstream.Completed) -> None:
        await relay.send(item)
        await relay.aclose()

    routes: list[Any] = [Route("/", index)]
    for name, item in relays.items():
        relay = SSERelay()
        anyio.run(fill, relay, item)
        routes.append(Mount(f"/{name}", relay))
    app = Starlette(routes=routes)
    with ServerThread(app) as server:
        open_page(browser, server.url + "/", "desktop")
        yield


SVG_WITH_SCRIPT = (
    b"<svg xmlns='http://www.w3.org/2000/svg' width='8' height='8'"
    b" onload='document.documentElement.dataset.ran = document.domain'>"
    b"<rect width='8' height='8' fill='red'/></svg>"
)


def test_an_svg_final_image_is_shown_but_linked_as_bytes_that_cannot_run(browser: Any) -> None:
    # The download link was a blob: URL of type image/svg+xml, which has the page's
    # origin: opened in a tab, the SVG's script ran as the page (a model asked for an
    # SVG can be asked for a script too)
    import base64

    svg = base64.b64encode(SVG_WITH_SCRIPT).decode()
    final = ttstream.Completed(b64_json=svg, operation="generation", output_format="svg")
    with one_final_shown(browser, final):
        until(browser, "document.querySelector('#preview').stats.finalShown")
        link = until(browser, "document.querySelector('#preview .tts-download').href")
        kind = browser.execute_async_script(
            "fetch(arguments[0]).then((r) => r.blob()).then((b) => arguments[1](b.type))", link
        )
        name = browser.execute_script(
            "return document.querySelector('#preview .tts-download').download"
        )
    assert link.startswith("blob:")
    assert kind == "application/octet-stream"
    assert name == "image.svg"


def _blue_final(size: tuple[int, int]) -> ttstream.Completed:
    """A final image event: a blue PNG of ``size``, inline."""
    import base64
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", size, (0, 120, 200)).save(png, "PNG")
    return ttstream.Completed(
        b64_json=base64.b64encode(png.getvalue()).decode(), operation="generation"
    )


def test_the_end_event_comes_once_the_final_image_is_shown(browser: Any) -> None:
    # `end` fired while the final image was still being decoded: stats.finalShown was
    # false in an `end` listener, and the image appeared a moment later
    final = _blue_final((1536, 1024))
    script = (
        "<script>const p = document.getElementById('preview'); window.atEnd = null;"
        "p.addEventListener('end', () => { window.atEnd = {"
        "finalShown: p.stats.finalShown, finalSize: p.stats.finalSize,"
        "download: !p.querySelector('.tts-download').hidden}; });</script>"
    )
    with one_final_shown(browser, final, script):
        at_end = until(browser, "window.atEnd")
    assert at_end == {"finalShown": True, "finalSize": "1536x1024", "download": True}


@contextlib.contextmanager
def _final_url_never_answered() -> Iterator[ttstream.Completed]:
    """A final image given as a loopback URL whose server accepts and never answers
    (connections wait in its listen backlog)."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/final.png"
        yield ttstream.Completed(b64_json=None, url=url, operation="generation")


def test_a_final_url_that_never_answers_ends_after_finaltimeout(browser: Any) -> None:
    # A final given as the server's URL held `end` back until the browser's own network
    # timeout (minutes) when that URL never answered
    import time

    script = (
        "<script>const p = document.getElementById('preview'); window.atEnd = null;"
        "p.addEventListener('completed', () => { window.completedAt = performance.now(); });"
        "p.addEventListener('end', () => { window.atEnd = {"
        "after: performance.now() - window.completedAt, finalShown: p.stats.finalShown,"
        "errors: p.stats.errors, status: p.querySelector('.tts-status').textContent,"
        "card: p.querySelector('.tts-error').textContent}; });</script>"
    )
    with _final_url_never_answered() as final:
        started = time.monotonic()
        with one_final_shown(browser, final, script, 'finaltimeout="0.5"'):
            at_end = until(browser, "window.atEnd")
        waited = time.monotonic() - started
    assert 450 <= at_end.pop("after") < 5000, at_end
    assert waited < 10
    assert at_end == {
        "finalShown": False,
        "errors": ["it did not load within 0.5 s."],
        "status": "Failed",
        "card": "The final image could not be shownIt did not load within 0.5 s.",
    }


def test_a_final_url_still_loading_holds_back_no_later_generation(browser: Any) -> None:
    # Chromium leaves decode() pending when an image's src is removed: after reset()
    # (watch() of the next generation), its images waited behind the final that never
    # loaded
    second = _blue_final((64, 48))
    script = (
        "<script>const p = document.getElementById('preview');"
        "p.addEventListener('completed', () => { if (!window.next) {"
        "window.next = true; setTimeout(() => p.watch('/next/events'), 200); } });</script>"
    )
    with (
        _final_url_never_answered() as first,
        one_final_shown(browser, first, script, then=second),
    ):
        size = until(browser, "document.querySelector('#preview').stats.finalSize")
    assert size == "64x48"
