"""Fixtures of the web-app tests: a tiny random-weight predictor (no trained weights needed;
SCORE_THRESH 0 so it still returns faces), apps with small limits and a private temp folder,
and public-domain test media (skimage's astronaut, encoded in memory)."""

from __future__ import annotations

import io
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskface.inference.testing import PredictorWrapper


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory):
    """Config YAMLs + random weights of a tiny detector and attribute net, as files (the way
    ``tools/serve.py`` loads models); ``maskface.inference.testing`` builds them."""
    from maskface.inference.testing import write_tiny_models

    return write_tiny_models(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def predictor(tiny_model_files):
    from maskface.inference.predictor import FacePredictor

    return FacePredictor(device="cpu", **tiny_model_files.predictor_kwargs())


@pytest.fixture(scope="session")
def astronaut_rgb():
    from skimage import data

    return data.astronaut()  # 512 x 512 RGB, public domain (NASA)


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut_rgb) -> bytes:
    ok, buf = cv2.imencode(".jpg", astronaut_rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def _write_video(path, n_frames: int, size: int = 96, fourcc: str = "MJPG", fps: float = 10.0) -> str:
    """A short clip of the astronaut sliding sideways (real content, so the detector has work)."""
    from skimage import data

    base = cv2.resize(data.astronaut()[:, :, ::-1], (size, size))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (size, size))
    assert w.isOpened(), f"cv2.VideoWriter cannot write {fourcc} to {path}"
    for i in range(n_frames):
        w.write(np.ascontiguousarray(np.roll(base, 2 * i, axis=1)))
    w.release()
    return str(path)


@pytest.fixture
def write_video():
    """``write_video(path, n_frames, size=96, fourcc="MJPG")`` -> path."""
    return _write_video


@pytest.fixture
def recorder():
    """``recorder(predictor, delay=0)`` -> a :class:`CallRecorder` around it."""
    return CallRecorder


class CallRecorder(PredictorWrapper):
    """Wraps a predictor: records every model call (thread, start, end), optionally slowed down."""

    def __init__(self, predictor, delay: float = 0.0):
        super().__init__(predictor)
        object.__setattr__(self, "delay", delay)
        object.__setattr__(self, "calls", [])
        object.__setattr__(self, "_lock", threading.Lock())

    def around(self, fn, *a, **kw):
        start = time.perf_counter()
        try:
            if self.delay:
                time.sleep(self.delay)
            return fn(*a, **kw)
        finally:
            with self._lock:
                self.calls.append((threading.get_ident(), start, time.perf_counter()))


@pytest.fixture
def make_app(tmp_path):
    """``make_app(predictor, **limits)`` -> (app, upload_tmp_dir). After the test, every app's
    worker must be idle and its temp folder EMPTY (no leaked upload, whatever the test did)."""
    from maskface.serving.app import create_app
    from maskface.serving.service import Limits

    made = []

    def make(pred, **limits):
        tmp = tmp_path / f"uploads{len(made)}"
        limits.setdefault("max_upload_bytes", 2 << 20)
        limits.setdefault("max_video_frames", 20)
        limits.setdefault("timeout_s", 60.0)
        app = create_app(pred, limits=Limits(**limits), tmp_dir=str(tmp))
        made.append((app, tmp))
        return app, tmp

    yield make
    for app, tmp in made:
        service = app.extensions["maskface"]
        assert service.worker.wait_idle(timeout=30), "inference worker still busy after the test"
        service.close()
        assert os.listdir(tmp) == [], f"temporary files left behind: {os.listdir(tmp)}"


@pytest.fixture
def client(make_app, predictor):
    app, _ = make_app(predictor)
    return app.test_client()


@pytest.fixture
def post():
    """``post(client, data, filename="photo.jpg", query="", **form_fields)`` -> response."""
    return _post_file


def _post_file(client, data: bytes, filename: str = "photo.jpg", query: str = "", **fields):
    form = {"file": (io.BytesIO(data), filename)}
    form.update({k: str(v) for k, v in fields.items()})
    return client.post("/api/v1/analyze" + query, data=form, content_type="multipart/form-data")


REPO = Path(__file__).resolve().parents[2]


class ServeTool:
    """``tools/serve.py`` (waitress) running in a subprocess on a free 127.0.0.1 port.

    Attributes: ``url`` ("http://127.0.0.1:PORT/"), ``proc`` (the Popen), ``uploads`` (its --tmp-dir),
    ``log`` (stderr lines read so far)."""

    def __init__(self, model_files, tmp_path: Path, *extra: str):
        self.uploads = tmp_path / "uploads"
        cmd = [sys.executable, str(REPO / "tools" / "serve.py"), "--port", "0", "--device", "cpu",
               "--tmp-dir", str(self.uploads), *extra]
        for k, v in model_files.predictor_kwargs().items():
            cmd += ["--" + k.replace("_", "-"), v]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     cwd=str(tmp_path))
        self.log: list = []
        lines: "queue.Queue[str]" = queue.Queue()

        def pump():
            for line in self.proc.stderr:
                self.log.append(line)
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        self.url = None
        deadline = time.monotonic() + 90
        while self.url is None and time.monotonic() < deadline and self.proc.poll() is None:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            m = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", line)
            self.url = m.group(1) if m else None
        if self.url is None:
            self.stop()
            pytest.fail("tools/serve.py did not start:\n" + "".join(self.log))

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def serve_tool(tiny_model_files, tmp_path):
    """``serve_tool(*extra_flags)`` -> a running :class:`ServeTool`, stopped after the test."""
    started = []

    def start(*extra: str) -> ServeTool:
        started.append(ServeTool(tiny_model_files, tmp_path, *extra))
        return started[-1]

    yield start
    for server in started:
        server.stop()
