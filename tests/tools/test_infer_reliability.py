"""tools/infer.py runs that used to lose data silently (issue 18): unreadable sub-folders,
a.avi + a.mp4, --skip-existing with another spelling of a path, file modes vs the umask,
SIGTERM / Ctrl-C in the middle of a run, the pixel cap."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_infer import _img, _results, _video, model_args
from tool_loader import load_tool

from maskface.inference.testing import PredictorWrapper
from maskface.inference.writers import read_jsonl

REPO = Path(__file__).resolve().parents[2]
infer = load_tool("infer")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from maskface.inference.testing import session_tiny_models

    return session_tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def predictor(tiny):
    from maskface.inference.predictor import FacePredictor

    return FacePredictor(device="cpu", **tiny.predictor_kwargs())


def _consistent(out):
    """results.json holds exactly the image records and errors of results.jsonl."""
    data = _results(out)
    lines = list(read_jsonl(out / "results.jsonl"))
    assert data["images"] == [r for r in lines if "faces" in r]
    assert data["errors"] == [r for r in lines if "error" in r]
    return data


def test_unreadable_subfolder_is_an_error(tiny, tmp_path, monkeypatch, capsys):
    src = tmp_path / "in"
    (src / "locked").mkdir(parents=True)
    _img(src / "a.jpg", 0)
    _img(src / "locked" / "b.jpg", 1)
    real_scandir, real_listdir = os.scandir, os.listdir

    def deny(real):
        def call(path="."):  # root lists any folder, so deny it by hand
            if os.fspath(path) == str(src / "locked"):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path)
        return call

    monkeypatch.setattr(os, "scandir", deny(real_scandir))
    monkeypatch.setattr(os, "listdir", deny(real_listdir))
    out = tmp_path / "out"
    assert infer.main(["--input", str(src), "--output", str(out), "--no-vis"] + model_args(tiny)) == 1
    assert "1 error(s)" in capsys.readouterr().out
    (err,) = _results(out)["errors"]
    assert err == {"file": str(src / "locked"),
                   "error": "cannot read folder (Permission denied); its files were not processed"}


def test_avi_and_mp4_of_one_name_both_kept(tiny, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _video(src / "a.mp4", n=3)
    w = cv2.VideoWriter(str(src / "a.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (64, 48))
    for _ in range(5):
        w.write(np.full((48, 64, 3), 90, np.uint8))
    w.release()
    out = tmp_path / "out"
    assert infer.main(["--input", str(src), "--output", str(out)] + model_args(tiny)) == 0
    assert sorted(p.name for p in (out / "vis").iterdir()) == ["a.avi.mp4", "a.mp4"]
    sizes = {}
    for name in ("a.avi.mp4", "a.mp4"):
        cap = cv2.VideoCapture(str(out / "vis" / name))
        sizes[name] = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        cap.release()
    assert sizes == {"a.avi.mp4": (64, 5), "a.mp4": (128, 3)}


def test_skip_existing_with_another_spelling(tiny, tmp_path, monkeypatch, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _img(src / "a.jpg", 0)
    out = tmp_path / "out"
    args = ["--output", str(out), "--no-vis"] + model_args(tiny)
    assert infer.main(["--input", str(src / "a.jpg")] + args) == 0
    monkeypatch.chdir(src)
    _img(src / "b.jpg", 1)
    capsys.readouterr()
    assert infer.main(["--input", "a.jpg", "./b.jpg", "b.jpg", str(src / "b.jpg"), "--skip-existing"] + args) == 0
    assert "1 image(s)" in capsys.readouterr().out
    assert [Path(i["file"]).name for i in _results(out)["images"]] == ["a.jpg", "b.jpg"]


def test_outputs_respect_umask(tiny, tmp_path):
    _img(tmp_path / "a.jpg", 0)
    out = tmp_path / "out"
    old = os.umask(0o027)
    try:
        assert infer.main(["--input", str(tmp_path / "a.jpg"), "--output", str(out), "--coco"] + model_args(tiny)) == 0
    finally:
        os.umask(old)
    modes = {str(p.relative_to(out)): p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()}
    assert {"results.json", "results.csv", "results.jsonl", "config.yaml", "vis/a.jpg", "log.txt"} <= set(modes)
    assert set(modes.values()) == {0o640}, modes


class _SignalAt(PredictorWrapper):
    """A predictor that sends ``signum`` to this process at its ``at``-th model call (as `kill` would)."""

    def __init__(self, predictor, signum, at):
        super().__init__(predictor)
        for name, value in (("signum", signum), ("at", at), ("calls", 0)):
            object.__setattr__(self, name, value)

    def around(self, fn, *a, **kw):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), self.signum)
        return fn(*a, **kw)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_images_finalises_and_lists_unfinished(predictor, tmp_path, signum):
    from maskface.inference.runner import InferenceRunner

    paths = []
    for k in range(5):
        _img(tmp_path / f"{k}.jpg", k)
        paths.append((str(tmp_path / f"{k}.jpg"), "image"))
    out = tmp_path / "out"
    runner = InferenceRunner(_SignalAt(predictor, signum, at=3), str(out), batch_size=1, progress=False)
    summary = runner.run(paths)
    assert summary.interrupted and summary.exit_code == 128 + signum
    data = _consistent(out)  # results.json written, and it agrees with the log
    assert [Path(i["file"]).name for i in data["images"]] == ["0.jpg", "1.jpg"]
    assert [Path(e["file"]).name for e in data["errors"]] == ["2.jpg", "3.jpg", "4.jpg"]
    assert all(e["error"].startswith(f"not finished: the run was interrupted ({signal.Signals(signum).name})")
               for e in data["errors"])
    assert (out / "results.csv").is_file()
    # resume: exactly the unfinished ones are done
    again = InferenceRunner(predictor, str(out), batch_size=2, progress=False, skip_existing=True).run(paths)
    assert (again.exit_code, again.skipped, again.images) == (0, 2, 3)
    assert sorted(Path(i["file"]).name for i in _consistent(out)["images"]) == [f"{k}.jpg" for k in range(5)]


def test_ctrl_c_mid_video_leaves_no_video_under_its_final_name(predictor, tmp_path):
    from maskface.inference.runner import InferenceRunner

    v = tmp_path / "clip.mp4"
    _video(v)
    _img(tmp_path / "z.jpg", 0)
    out = tmp_path / "out"
    # call 1: z.jpg (images run first); call 2: frames 0-1; Ctrl-C as call 3 (frames 2-3) starts
    runner = InferenceRunner(_SignalAt(predictor, signal.SIGINT, at=3), str(out), batch_size=2, progress=False)
    summary = runner.run([(str(v), "video"), (str(tmp_path / "z.jpg"), "image")])
    assert summary.exit_code == 130
    assert not (out / "vis" / "clip.mp4").exists()
    assert (out / "vis" / "clip.partial.mp4").is_file()
    data = _consistent(out)
    (err,) = data["errors"]
    assert err["file"] == str(v) and err["error"].startswith("not finished: interrupted (SIGINT) after frame")
    assert "clip.partial.mp4" in err["error"]
    assert [(Path(i["file"]).name, i["frame"]) for i in data["images"]] == [("z.jpg", None), ("clip.mp4", 0),
                                                                           ("clip.mp4", 1)]  # frames done are kept


def test_sigterm_to_the_tool_process(tiny, tmp_path):
    """The real thing: `kill -TERM` a running tools/infer.py; it exits 143 with its outputs written."""
    v = tmp_path / "long.mp4"
    _video(v, n=400)
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "tools" / "infer.py"), "--input", str(v), "--output", str(out),
           "--batch-size", "1"] + model_args(tiny)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        jsonl = out / "results.jsonl"
        if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "finished before the signal: make the video longer"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "INTERRUPTED (SIGTERM)" in stdout
    data = _consistent(out)
    assert 3 <= len(data["images"]) < 400
    assert [e["file"] for e in data["errors"]] == [str(v)] and "not finished" in data["errors"][0]["error"]
    assert (out / "results.csv").is_file() and not (out / "vis" / "long.mp4").exists()


def test_pixel_cap_is_a_per_file_error(tiny, tmp_path, capsys):
    from maskface.inference.testing import oversized_image_bytes

    _img(tmp_path / "ok.jpg", 0)
    (tmp_path / "bomb.png").write_bytes(oversized_image_bytes("png", 14142, 14143))
    _img(tmp_path / "wide.png", 1, h=40, w=300)  # 12000 px
    out = tmp_path / "out"
    args = ["--input", str(tmp_path), "--output", str(out), "--no-vis", "--max-megapixels", "0.01"]
    assert infer.main(args + model_args(tiny)) == 1
    errors = {Path(e["file"]).name: e["error"] for e in _results(out)["errors"]}
    assert errors == {"bomb.png": "image too large: 200 megapixels; the limit is 0.01 megapixels",
                      "wide.png": "image too large: 300 x 40 px = 0.012 megapixels; the limit is 0.01 megapixels"}
    assert [Path(i["file"]).name for i in _results(out)["images"]] == ["ok.jpg"]
