"""tools/infer.py reading a live MJPEG stream served on 127.0.0.1 by the test: results as for a
video, a drop with reconnect, a lost stream reported, SIGTERM finalising the outputs."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest
from tool_loader import load_tool

from maskface.inference.testing import MjpegServer, moving_faces_frames

infer = load_tool("infer")
REPO = Path(__file__).resolve().parents[2]
FAST = ["--reconnect-delay", "0.1", "--read-timeout", "2"]


@pytest.fixture
def tiny(tiny_files):
    return tiny_files


def model_args(tiny):
    return ["--detector-config", tiny.detector_config, "--detector-weights", tiny.detector_weights,
            "--attribute-config", tiny.attribute_config, "--attribute-weights", tiny.attribute_weights,
            "--device", "cpu", "--quiet"]


@pytest.fixture
def mjpeg():
    server = MjpegServer(moving_faces_frames(10, width=160, height=120), fps=25).start()
    yield server
    server.stop()


def _lines(out):
    p = Path(out) / "results.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def _when(cond, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.05)
    return cond()


def test_stream_drop_and_reconnect(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    # the camera goes away for 1 s after its 6th frame, then comes back
    with MjpegServer(moving_faces_frames(10, width=160, height=120), fps=25, outage_after=6) as mjpeg:
        rc = infer.main(["--input", mjpeg.url, "--output", str(out), "--max-frames", "16", "--batch-size", "2",
                         "--reconnect-timeout", "10"] + FAST + model_args(tiny))
    assert rc == 0, capsys.readouterr()
    data = json.loads((out / "results.json").read_text())
    assert data["errors"] == []
    assert [i["frame"] for i in data["images"]] == list(range(16))  # every frame, numbered across the drop
    assert {i["file"] for i in data["images"]} == {mjpeg.url}
    assert all(len(i["faces"]) == 3 for i in data["images"])  # the tiny model's DETECTIONS_PER_IMAGE
    assert mjpeg.connections == 2  # it did reconnect
    video = out / "vis" / f"127.0.0.1_{mjpeg.port}_stream.mjpg.mp4"
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 16
    cap.release()


def test_lost_stream_is_reported_and_results_kept(tiny, mjpeg, tmp_path):
    out = tmp_path / "out"
    t = threading.Thread(target=lambda: _when(lambda: len(_lines(out)) >= 4) and mjpeg.stop(), daemon=True)
    t.start()
    rc = infer.main(["--input", mjpeg.url, "--output", str(out), "--batch-size", "1", "--realtime",
                     "--reconnect-timeout", "1", "--attributes-every", "3"] + FAST + model_args(tiny))
    assert rc == 1
    data = json.loads((out / "results.json").read_text())
    (err,) = data["errors"]
    assert err["file"] == mjpeg.url and err["error"].startswith("the stream was lost: no frame for 1 s")
    frames = [i["frame"] for i in data["images"]]
    assert len(frames) >= 4 and frames == sorted(frames)
    # the attribute net ran every 3rd frame per track; the labels are carried in between
    assert all(f["age"] is not None and f["gender"] for i in data["images"] for f in i["faces"])


def test_sigterm_finalises_a_stream_run(tiny, mjpeg, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "tools" / "infer.py"), "--input", mjpeg.url, "--output", str(out),
           "--realtime"] + FAST + model_args(tiny)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _when(lambda: len(_lines(out)) >= 3 or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "INTERRUPTED (SIGTERM)" in stdout
    data = json.loads((out / "results.json").read_text())
    assert len(data["images"]) >= 3 and (out / "results.csv").is_file()
    assert [e["file"] for e in data["errors"]] == [mjpeg.url] and "not finished" in data["errors"][0]["error"]
    assert list((out / "vis").glob("*.partial.mp4"))  # the annotated video so far, never under its final name
