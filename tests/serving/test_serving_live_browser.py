"""The page's camera mode end to end in headless Chromium with its fake camera playing a clip made
here (two real faces moving): frames go over the WebSocket to ``tools/serve.py``, faces come back
and are drawn over the video, fps and latency are shown; anonymisation and recording work live.

Needs chromium + chromedriver + selenium like test_serving_browser.py (MASKFACE_SKIP_BROWSER=1 skips).
"""

from __future__ import annotations

import json
import os
import re

import pytest


@pytest.fixture
def camera_browser(tmp_path):
    if os.environ.get("MASKFACE_SKIP_BROWSER") == "1":
        pytest.skip("MASKFACE_SKIP_BROWSER=1")
    from maskface.inference.testing import moving_faces_frames
    from maskface.serving.browser import chrome_driver, fake_camera_args, find_chromium, write_y4m

    find_chromium()  # raises BrowserUnavailable with the install command
    clip = write_y4m(str(tmp_path / "faces.y4m"), moving_faces_frames(20, width=320, height=240), fps=10)
    driver = chrome_driver(width=1200, height=1000, extra_args=fake_camera_args(clip))
    yield driver
    driver.quit()


def test_camera_mode_draws_faces_and_reports_fps(camera_browser, serve_tool):
    from selenium.webdriver.common.by import By

    from maskface.serving.browser import camera_in_browser, live_stats

    driver = camera_browser
    server = serve_tool()
    stats = camera_in_browser(driver, server.url, min_results=8, timeout=60)
    assert stats["drawnFaces"] == 3  # the tiny model returns DETECTIONS_PER_IMAGE = 3 faces per frame
    assert stats["errors"] == 0 and stats["latencyMs"] > 0
    text = driver.find_element(By.ID, "live-stats").text
    assert re.match(r"\d+\.\d fps · \d+ ms latency · 3 faces", text), text
    assert live_stats(driver)["fps"] > 0
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    driver.find_element(By.ID, "camera-stop").click()
    assert driver.find_element(By.ID, "camera-start").is_displayed()
    assert "live: camera session opened" in "".join(server.log)


def test_camera_mode_anonymises_and_records(camera_browser, serve_tool):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from maskface.serving.browser import camera_in_browser, live_stats

    driver = camera_browser
    server = serve_tool()
    stats = camera_in_browser(driver, server.url, min_results=3, timeout=60, anonymize="pixelate")
    assert stats["anonymized"] >= 1
    driver.find_element(By.ID, "record").click()
    start = live_stats(driver)["results"]
    WebDriverWait(driver, 30, poll_frequency=0.2).until(lambda d: live_stats(d)["results"] >= start + 4)
    driver.find_element(By.ID, "record").click()
    links = WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#recordings a") or False)
    clip, frames = links
    assert clip.get_attribute("download").endswith(".webm") and int(clip.get_attribute("data-bytes")) > 1000
    assert frames.get_attribute("download").endswith(".json")
    doc = json.loads(driver.execute_async_script(
        "var done = arguments[1]; fetch(arguments[0]).then(function (r) { return r.text(); }).then(done);",
        frames.get_attribute("href")))
    assert len(doc["images"]) >= 4 and doc["errors"] == []
    face = doc["images"][0]["faces"][0]
    assert set(face) >= {"box", "score", "mask", "age", "gender", "emotion", "track_id"}
    assert face["mask"]["size"] == [240, 320]  # RLE in the camera frame's pixels
    assert list(server.uploads.iterdir()) == [] if server.uploads.exists() else True  # nothing stored
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []


def test_recording_stops_by_itself_at_its_limit(camera_browser, serve_tool):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from maskface.serving.browser import camera_in_browser

    driver = camera_browser
    server = serve_tool("--max-record-minutes", "0.05")  # 3 s
    camera_in_browser(driver, server.url, min_results=2, timeout=60)
    driver.find_element(By.ID, "record").click()
    links = WebDriverWait(driver, 20, poll_frequency=0.2).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#recordings a") or False)  # no second click
    assert len(links) == 2 and int(links[0].get_attribute("data-bytes")) > 1000
    assert "limit" in driver.find_element(By.ID, "live-status").text
    assert driver.find_element(By.ID, "record").text == "● Record"
