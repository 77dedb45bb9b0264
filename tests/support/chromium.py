"""Debian's headless Chromium driven by Selenium for the browser tests: one driver per
module (the ``browser`` fixture, skipped with its reason when Chromium, chromium-driver
or selenium is missing), and the helpers that read the ``<ttstream-preview>`` element."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.paths import ROOT

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
    "--hide-scrollbars",  # screenshots without them; the test measures overflow itself
]
VIEWPORTS = {"desktop": (1366, 900, False), "phone": (390, 844, True)}
WAIT = 15  # seconds any one step may take


def missing() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    if CHROMIUM is None or not CHROMEDRIVER.exists():
        return (
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
    if importlib.util.find_spec("selenium") is None:
        return "needs selenium (pip install selenium)"
    return None


def load_file(path: Path, name: str) -> ModuleType:
    """The Python file ``path`` imported as the module ``name`` (examples/ is not a
    package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    assert CHROMIUM is not None
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with tempfile.TemporaryDirectory(prefix="ttstream-chromium-") as profile:
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.set_page_load_timeout(10)
            driver.set_script_timeout(10)
            yield driver
        finally:
            driver.quit()


def open_page(browser: Any, url: str, viewport: str) -> None:
    """Loads the page at one of ``VIEWPORTS`` (exact CSS pixels, as a phone reports)."""
    width, height, mobile = VIEWPORTS[viewport]
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    browser.get(url)
    browser.get_log("browser")  # start each test with an empty console
    assert browser.execute_script("return [innerWidth, innerHeight]") == [width, height]


def until(browser: Any, script: str) -> Any:
    """Polls the JavaScript expression ``script`` until it is truthy; returns its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT, poll_frequency=0.02)
    return wait.until(lambda driver: driver.execute_script(f"return {script}"))


# The parts of the <ttstream-preview> element on the page, by the names the page had.
PARTS = {
    "frame": "#preview .tts-frame",
    "status": "#preview .tts-status",
    "elapsed": "#preview .tts-elapsed",
    "meta": "#preview .tts-meta",
    "download": "#preview .tts-download",
    "error": "#preview .tts-error",
    "error-text": "#preview .tts-error p",
    "connection": "#preview .tts-badge",
    "cancel": "#preview .tts-cancel",
}


def part(browser: Any, name: str) -> Any:
    return browser.find_element("css selector", PARTS[name])


def text(browser: Any, name: str) -> str:
    return str(browser.execute_script(f"return document.querySelector('{PARTS[name]}').innerText"))


def screenshot(browser: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / f"live_preview-{name}.png"))


def closed_soon(streams: Any, limit: float = 10.0) -> bool:
    """Whether the emulator's streams are all closed within ``limit`` seconds (its stall
    is 30 s: a stream closed only at its next event would not be)."""
    deadline = time.monotonic() + limit
    while streams.open_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(streams.open_streams == 0)
