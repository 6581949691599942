"""Drive the web app in headless Chromium (Selenium): used by the end-to-end test and by
:mod:`maskface.serving.screenshot`. Needs the ``dev`` extra (selenium) and the system packages
``chromium`` + ``chromium-driver`` (Debian/Ubuntu); nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence

logger = logging.getLogger(__name__)

__all__ = ["BrowserUnavailable", "find_chromium", "chrome_driver", "analyze_in_browser", "write_y4m",
           "fake_camera_args", "camera_in_browser"]

_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_DRIVER_NAMES = ("chromedriver",)
INSTALL_HINT = ("install them with: sh tools/setup_test_deps.sh (apt-get install chromium chromium-driver) && "
                'pip install -e ".[dev]"  (selenium)')


class BrowserUnavailable(RuntimeError):
    """Chromium, chromedriver or selenium is missing."""


def _which(names, env: str) -> Optional[str]:
    if os.environ.get(env):
        return os.environ[env]
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


def find_chromium() -> tuple:
    """``(browser, driver)`` paths; ``$CHROMIUM_BIN`` / ``$CHROMEDRIVER`` override the search.

    Raises:
        BrowserUnavailable: one of them (or selenium) is missing, with the command to install it.
    """
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise BrowserUnavailable(f"selenium is not installed; {INSTALL_HINT}") from None
    browser = _which(_CHROMIUM_NAMES, "CHROMIUM_BIN")
    driver = _which(_DRIVER_NAMES, "CHROMEDRIVER")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path]
    if missing:
        raise BrowserUnavailable(f"{' and '.join(missing)} not found on PATH; {INSTALL_HINT}")
    return browser, driver


def chrome_driver(width: int = 1280, height: int = 1000, extra_args: Sequence[str] = ()):
    """A headless Chromium WebDriver (no sandbox: containers and CI run as root), with the
    browser console log enabled (``driver.get_log("browser")``); ``extra_args`` are more
    Chromium switches (e.g. :func:`fake_camera_args`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-extensions", "--no-first-run", "--hide-scrollbars", f"--window-size={width},{height}",
                "--force-device-scale-factor=1", "--lang=en-US", *extra_args):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def analyze_in_browser(driver, base_url: str, file_path: str, timeout: float = 60.0,
                       options: Optional[Dict[str, str]] = None) -> List[List[str]]:
    """Open the app, set the ``options`` form controls (``{element id: value}``, e.g.
    ``{"opt-anonymize": "blur"}``), upload ``file_path`` through the page's file input and wait
    for the faces table (or the page's error message). Returns the table's rows as lists of
    cell texts.

    Raises:
        RuntimeError: the page reported an error.
        selenium TimeoutException: nothing appeared within ``timeout`` seconds.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base_url.rstrip("/") + "/")
    WebDriverWait(driver, 10).until(EC.presence_of_element_located((By.ID, "file-input")))
    for element_id, value in (options or {}).items():
        driver.execute_script("document.getElementById(arguments[0]).value = arguments[1];", element_id, value)
    driver.find_element(By.ID, "file-input").send_keys(os.path.abspath(file_path))

    def done(d):
        status = d.find_element(By.ID, "status")
        if "error" in (status.get_attribute("class") or ""):
            return "error"
        if not d.find_element(By.ID, "result").is_displayed():
            return False
        # the annotated image is a data: URL; wait until it is decoded (matters for screenshots)
        loaded = d.execute_script("var i = document.getElementById('result-image');"
                                  "return i.hidden || (i.complete && i.naturalWidth > 0);")
        return "ok" if loaded else False

    outcome = WebDriverWait(driver, timeout).until(done)
    if outcome == "error":
        raise RuntimeError(f"the page reported: {driver.find_element(By.ID, 'status').text}")
    rows = driver.find_elements(By.CSS_SELECTOR, "#faces-table tbody tr")
    return [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]


def write_y4m(path: str, frames_bgr: Sequence, fps: int = 15) -> str:
    """Frames (BGR uint8, all ``H x W x 3`` with even H and W) as a YUV4MPEG2 (.y4m) clip, the
    format Chromium's fake camera plays in a loop (``--use-file-for-fake-video-capture``)."""
    import cv2

    h, w = frames_bgr[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{int(fps)}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames_bgr:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def fake_camera_args(y4m_path: str) -> List[str]:
    """Chromium switches: a fake camera playing ``y4m_path`` in a loop, no permission prompt."""
    return ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={os.path.abspath(y4m_path)}",
            "--autoplay-policy=no-user-gesture-required"]


def live_stats(driver) -> Dict[str, Any]:
    """The camera mode's figures, as the page shows them (``#live-stats``' data attributes):
    ``fps`` (analysed frames drawn per second, last 2 s), ``latencyMs`` (median, frame
    captured -> its overlay drawn, last 60 frames), ``results``, ``dropped``, ``errors``,
    ``drawnFaces``, ``anonymized``; numbers as floats (``None`` when not measured yet)."""
    raw = driver.execute_script("return Object.assign({}, document.getElementById('live-stats').dataset);")
    return {k: (float(v) if v not in ("", None) else None) for k, v in raw.items()}


def camera_in_browser(driver, base_url: str, min_results: int = 5, timeout: float = 60.0,
                      anonymize: str = "") -> Dict[str, Any]:
    """Open the app, switch to "Camera", choose ``anonymize`` ("" none, blur, pixelate, fill),
    start the camera (a fake one: :func:`fake_camera_args`) and wait until ``min_results``
    analysed frames came back. Returns :func:`live_stats`.

    Raises:
        RuntimeError: the page reported an error.
        selenium TimeoutException: not enough results within ``timeout`` seconds.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base_url.rstrip("/") + "/")
    WebDriverWait(driver, 10).until(EC.element_to_be_clickable((By.ID, "mode-camera"))).click()
    driver.execute_script("document.getElementById('live-anonymize').value = arguments[0];", anonymize)
    driver.find_element(By.ID, "camera-start").click()

    def done(d):
        status = d.find_element(By.ID, "live-status")
        if "error" in (status.get_attribute("class") or ""):
            return "error"
        return "ok" if (live_stats(d).get("results") or 0) >= min_results else False

    if WebDriverWait(driver, timeout, poll_frequency=0.2).until(done) == "error":
        raise RuntimeError(f"the page reported: {driver.find_element(By.ID, 'live-status').text}")
    return live_stats(driver)
