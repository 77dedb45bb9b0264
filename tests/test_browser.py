"""The live preview example in a real browser: headless Chromium driven by Selenium.

The example app (examples/live_preview/app.py) is served by uvicorn on a loopback port
with an in-process emulator; Chromium types a prompt, presses Generate, and the test
waits for a preview and then the final image, shown at its natural size. A screenshot
goes to artifacts/live_preview.png (and one taken at the first preview to
artifacts/live_preview_first_preview.png).

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; skipped
without them. Selenium is pointed at /usr/bin/chromedriver and the system Chromium, so
it never downloads a driver or a browser.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from uvicorn_thread import ServerThread

from ttstream.emulator import EmulatorServer

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--window-size=1200,1700",  # room for the page with a 1024x1024 image
]
SIZE = "1024x1024"

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None or not CHROMEDRIVER.exists(),
        reason="needs Debian's chromium and chromium-driver "
        "(apt-get install chromium chromium-driver)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("selenium") is None,
        reason="needs selenium (pip install selenium)",
    ),
]


def load_example() -> ModuleType:
    """examples/live_preview/app.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "live_preview_app", ROOT / "examples" / "live_preview" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app_url() -> Iterator[str]:
    example = load_example()
    with EmulatorServer(step_delay=0.3) as emulator:
        app = example.create_app(api_key="emulator-key", base_url=emulator.base_url)
        with ServerThread(app, lifespan="on") as server:
            yield server.url


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    assert CHROMIUM is not None
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory(prefix="ttstream-chromium-") as profile:
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.set_page_load_timeout(10)
            yield driver
        finally:
            driver.quit()


def test_live_preview_shows_previews_then_the_final_image_at_natural_size(
    app_url: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(app_url)
    browser.find_element(By.ID, "prompt").send_keys("a lighthouse at dusk")
    Select(browser.find_element(By.ID, "size")).select_by_visible_text(SIZE)
    browser.find_element(By.ID, "generate").click()

    def shown(key: str) -> Any:
        return lambda driver: driver.execute_script(f"return window.livePreview.{key}")

    WebDriverWait(browser, 15).until(shown("previewsShown"))
    assert browser.find_element(By.ID, "preview").is_displayed()
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "live_preview_first_preview.png"))
    WebDriverWait(browser, 15).until(shown("finalShown"))
    state = browser.execute_script("return window.livePreview")
    assert state["errors"] == []
    assert state["previewsShown"] >= 1
    # The emulator pauses 0.3 s before each event: a preview streamed in is on screen at
    # least one pause before the final image (a page that got everything at the end
    # would show them together).
    assert state["finalShownAt"] - state["firstPreviewAt"] > 250

    final = browser.execute_script(
        "const img = document.getElementById('final');"
        "return {natural: [img.naturalWidth, img.naturalHeight], shown: [img.width, img.height],"
        "        complete: img.complete};"
    )
    assert final["complete"]
    assert final["natural"] == [1024, 1024]
    assert final["shown"] == final["natural"]  # no CSS scaling
    assert state["finalSize"] == SIZE
    assert browser.find_element(By.ID, "status").text.startswith(f"done: {SIZE}")
    assert browser.save_screenshot(str(ARTIFACTS / "live_preview.png"))
