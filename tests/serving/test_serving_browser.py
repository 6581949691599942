"""End to end in a real headless Chromium: ``tools/serve.py`` in a subprocess on a free
127.0.0.1 port, the page uploads a picture through its file input, the faces table appears.

Needs ``chromium`` + ``chromium-driver`` (apt) and selenium (``[dev]`` extra);
``tools/setup_test_deps.sh``, the first step of README's test command, installs them. Missing
pieces FAIL this test with the install command (a silent skip would hide a broken web app on CI);
set MASKFACE_SKIP_BROWSER=1 to skip it deliberately on a machine without a browser.
"""

from __future__ import annotations

import os
import re

import pytest


@pytest.fixture
def browser():
    if os.environ.get("MASKFACE_SKIP_BROWSER") == "1":
        pytest.skip("MASKFACE_SKIP_BROWSER=1")
    from maskface.serving.browser import chrome_driver, find_chromium

    find_chromium()  # raises BrowserUnavailable with the install command
    driver = chrome_driver(width=1200, height=900)
    yield driver
    driver.quit()


@pytest.fixture
def server(serve_tool):
    """``tools/serve.py`` with the tiny model on port 0; yields its base URL and upload dir."""
    running = serve_tool()
    return running.url, running.uploads


def test_upload_in_browser_shows_faces_table(browser, server, astronaut_jpeg, tmp_path):
    from selenium.webdriver.common.by import By

    from maskface.serving.browser import analyze_in_browser

    url, uploads = server
    picture = tmp_path / "astronaut.jpg"
    picture.write_bytes(astronaut_jpeg)
    rows = analyze_in_browser(browser, url, str(picture), timeout=60)

    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#faces-table thead th") if th.is_displayed()]
    assert headers == ["#", "Score", "Age", "Age group", "Gender", "Emotion"]
    assert len(rows) == 3, rows  # the tiny model returns DETECTIONS_PER_IMAGE = 3 faces
    for i, cells in enumerate(rows, 1):
        number, frame, score, age, group, gender, emotion = cells
        assert number == str(i) and frame == ""
        assert re.fullmatch(r"0\.\d\d|1\.00", score), score
        assert re.fullmatch(r"\d+\.\d ± \d+\.\d", age), age
        assert re.fullmatch(r"\d+-\d+", group), group
        assert re.fullmatch(r"(female|male) \(\d+%\)", gender), gender
        assert emotion.split("\n")[0] in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert "astronaut.jpg: 3 faces" in browser.find_element(By.ID, "result-title").text
    assert browser.execute_script("return document.getElementById('result-image').naturalWidth") == 512
    assert browser.find_element(By.ID, "download-json").is_displayed()
    # nothing anonymised was asked for: no (broken) anonymised image on the page
    assert not browser.find_element(By.ID, "anon-image").is_displayed()
    # no console errors: a blocked external asset (CSP 'self') or a JS exception would show here
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    assert list(uploads.iterdir()) == []  # the upload's temp folder is gone once answered


def test_anonymize_in_browser_shows_and_offers_the_anonymised_image(browser, server, astronaut_jpeg, tmp_path):
    from selenium.webdriver.common.by import By

    from maskface.serving.browser import analyze_in_browser

    url, _ = server
    picture = tmp_path / "astronaut.jpg"
    picture.write_bytes(astronaut_jpeg)
    rows = analyze_in_browser(browser, url, str(picture), timeout=60, options={"opt-anonymize": "pixelate"})
    assert len(rows) == 3
    assert browser.execute_script("return document.getElementById('anon-image').naturalWidth") == 512
    link = browser.find_element(By.ID, "download-anon")
    assert link.is_displayed() and link.get_attribute("download") == "astronaut.anonymized.jpg"
    assert link.get_attribute("href").startswith("blob:")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
