"""Drive the web app in headless Chromium (Selenium): used by the end-to-end test and by
:mod:`maskface.serving.screenshot`. Needs the ``dev`` extra (selenium) and the system packages
``chromium`` + ``chromium-driver`` (Debian/Ubuntu); nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Dict, List, Optional

logger = logging.getLogger(__name__)

__all__ = ["BrowserUnavailable", "find_chromium", "chrome_driver", "analyze_in_browser"]

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


def chrome_driver(width: int = 1280, height: int = 1000):
    """A headless Chromium WebDriver (no sandbox: containers and CI run as root), with the
    browser console log enabled (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-extensions", "--no-first-run", "--hide-scrollbars", f"--window-size={width},{height}",
                "--force-device-scale-factor=1", "--lang=en-US"):
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
