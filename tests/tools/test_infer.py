"""tools/infer.py through its main(): folders with a broken file, videos (frame count, size,
fps, tracking ids), --skip-existing resume, --max-size mapping, EXIF, COCO output, model errors."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from tool_loader import load_tool

from maskface.inference.results import Face, rle_to_mask

W, H, FPS, N = 128, 96, 12.0, 10

infer = load_tool("infer")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from maskface.inference.testing import session_tiny_models

    return session_tiny_models(tmp_path_factory)


def model_args(tiny):
    return ["--detector-config", tiny.detector_config, "--detector-weights", tiny.detector_weights,
            "--attribute-config", tiny.attribute_config, "--attribute-weights", tiny.attribute_weights,
            "--device", "cpu", "--quiet"]


def _img(path, seed, h=72, w=96):
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _video(path, n=N):
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    for t in range(n):
        f = np.full((H, W, 3), 40, np.uint8)
        cv2.circle(f, (30 + 4 * t, 48), 14, (200, 180, 160), -1)
        wr.write(f)
    wr.release()


def _results(out):
    return json.loads((Path(out) / "results.json").read_text())


def test_folder_with_corrupt_file(tiny, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    _img(src / "a.jpg", 0)
    _img(src / "sub" / "b.png", 1, 50, 40)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "out"
    rc = infer.main(["--input", str(src), "--output", str(out), "--coco", "--batch-size", "2"] + model_args(tiny))
    assert rc == 1
    text = capsys.readouterr().out
    assert "2 image(s)" in text and "1 error(s)" in text and "broken.jpg" in text
    data = _results(out)
    assert sorted(Path(i["file"]).name for i in data["images"]) == ["a.jpg", "b.png"]
    assert [Path(e["file"]).name for e in data["errors"]] == ["broken.jpg"]
    assert data["model"]["detector_weights"] == tiny.detector_weights
    img = next(i for i in data["images"] if i["file"].endswith("b.png"))
    assert (img["width"], img["height"], img["frame"]) == (40, 50, None)
    face = Face.from_dict(img["faces"][0])
    assert face.mask.shape == (50, 40) and face.age is not None and face.emotion_probs
    assert (out / "vis" / "a.jpg").is_file() and (out / "vis" / "sub" / "b.png").is_file()
    assert cv2.imread(str(out / "vis" / "sub" / "b.png")).shape == (50, 40, 3)
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + sum(len(i["faces"]) for i in data["images"])
    assert (out / "config.yaml").is_file() and (out / "attributes_config.yaml").is_file()
    from pycocotools.coco import COCO

    dt = COCO(str(out / "coco_images.json")).loadRes(str(out / "coco_results.json"))
    assert len(dt.getAnnIds()) == len(rows) - 1
    assert not list(out.glob(".*.tmp"))


def test_skip_existing_resume(tiny, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _img(src / "a.jpg", 0)
    _img(src / "b.jpg", 1)
    out = tmp_path / "out"
    args = ["--output", str(out), "--no-vis"] + model_args(tiny)
    assert infer.main(["--input", str(src)] + args) == 0
    first = _results(out)
    # an interrupted later run left a cut line in the log
    with open(out / "results.jsonl", "a") as f:
        f.write('{"file": "half')
    _img(src / "c.jpg", 2)
    capsys.readouterr()
    assert infer.main(["--input", str(src), "--skip-existing"] + args) == 0
    text = capsys.readouterr().out
    assert "1 image(s)" in text and "2 input(s) skipped" in text
    data = _results(out)
    assert sorted(Path(i["file"]).name for i in data["images"]) == ["a.jpg", "b.jpg", "c.jpg"]
    assert data["images"][:2] == first["images"]
    # without the log, results.json alone is enough to resume
    (out / "results.jsonl").unlink()
    assert infer.main(["--input", str(src), "--skip-existing"] + args) == 0
    assert "3 input(s) skipped" in capsys.readouterr().out
    assert len(_results(out)["images"]) == 3


def test_video_output_and_tracks(tiny, tmp_path):
    v = tmp_path / "clip.mp4"
    _video(v)
    out = tmp_path / "out"
    rc = infer.main(["--input", str(v), "--output", str(out), "--batch-size", "4", "--every-n-frames", "2"]
                    + model_args(tiny))
    assert rc == 0
    cap = cv2.VideoCapture(str(out / "vis" / "clip.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS, abs=0.1)
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (W, H)
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == N  # every input frame written, processed or not
    data = _results(out)
    assert [i["frame"] for i in data["images"]] == list(range(0, N, 2))
    assert all(i["file"] == str(v) for i in data["images"])
    assert all("track_id" in f for i in data["images"] for f in i["faces"])
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert lines[-1] == {"file": str(v), "complete": True, "frames": N}
    # a finished video is skipped on resume
    assert infer.main(["--input", str(v), "--output", str(out), "--skip-existing", "--no-vis"] + model_args(tiny)) == 0
    assert len(_results(out)["images"]) == len(data["images"])


def test_bad_video_and_webcam(tiny, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 2048)
    out = tmp_path / "out"
    rc = infer.main(["--input", str(bad), "--output", str(out), "--webcam", "97"] + model_args(tiny))
    assert rc == 1
    errs = {Path(e["file"]).name: e["error"] for e in _results(out)["errors"]}
    assert "cannot open video" in errs["bad.mp4"]
    assert "camera 97" in errs["webcam:97"]


def test_max_size_exif_and_show_without_display(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    arr = np.random.default_rng(3).integers(0, 255, (150, 400, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 8  # rotate 90 deg counter-clockwise to display
    p = tmp_path / "big.jpg"
    im.save(p, exif=exif)
    out = tmp_path / "out"
    rc = infer.main(["--input", str(p), "--output", str(out), "--max-size", "64", "--show"] + model_args(tiny))
    assert rc == 0
    assert "no display available" in capsys.readouterr().err
    img = _results(out)["images"][0]
    assert (img["width"], img["height"]) == (150, 400)
    for f in img["faces"]:
        assert f["mask"]["size"] == [400, 150] and rle_to_mask(f["mask"]).shape == (400, 150)
        x1, y1, x2, y2 = f["box"]
        assert 0 <= x1 <= x2 <= 150 and 0 <= y1 <= y2 <= 400
    assert "MAX_SIZE: 64" in (out / "config.yaml").read_text()
    assert cv2.imread(str(out / "vis" / "big.jpg")).shape == (400, 150, 3)


def test_model_errors(tiny, tmp_path, monkeypatch, capsys):
    src = tmp_path / "a.jpg"
    _img(src, 0)
    out = tmp_path / "out"
    assert infer.main(["--input", str(src), "--output", str(out), "--detector-weights", str(tmp_path / "nope.pth"),
                       "--detector-config", tiny.detector_config, "--device", "cpu"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert infer.main(["--input", str(src), "--output", str(out), "--model", "no-such-model"]) == 2
    assert "known models: maskface-lite" in capsys.readouterr().err
    # a zoo entry whose file was replaced
    from maskface.model_zoo import register_weights

    table = tmp_path / "models.json"
    register_weights("tiny", detector_weights=tiny.detector_weights, detector_config=tiny.detector_config,
                     models_json=table, copy_into_zoo=False)
    monkeypatch.setenv("MASKFACE_MODELS_JSON", str(table))
    assert infer.main(["--input", str(src), "--output", str(out), "--model", "tiny", "--device", "cpu",
                       "--quiet", "--no-vis"]) == 0
    entry = json.loads(table.read_text())
    entry["tiny"]["detector_sha256"] = "0" * 64
    table.write_text(json.dumps(entry))
    assert infer.main(["--input", str(src), "--output", str(out), "--model", "tiny", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "file corrupted or replaced; expected sha256 " + "0" * 64 + " got " in err
    assert infer.main(["--input", str(tmp_path / "missing*.jpg"), "--output", str(out)]) == 2
    assert infer.main(["--output", str(out)]) == 2


def test_pad_keeps_results_in_original_pixels(tiny, tmp_path, capsys):
    src = tmp_path / "chip.jpg"
    _img(src, 5, h=60, w=50)
    out = tmp_path / "out"
    assert infer.main(["--input", str(src), "--output", str(out), "--pad", "0.5", "--max-size", "400",
                       "--score-thresh", "0"] + model_args(tiny)) == 0
    res = _results(out)
    assert res["model"]["pad"] == 0.5
    img = res["images"][0]
    assert (img["width"], img["height"]) == (50, 60) and img["faces"]  # random weights: some faces
    for f in img["faces"]:
        assert f["mask"]["size"] == [60, 50]
        x1, y1, x2, y2 = f["box"]
        assert 0 <= x1 < x2 <= 50 and 0 <= y1 < y2 <= 60
    assert cv2.imread(str(out / "vis" / "chip.jpg")).shape == (60, 50, 3)
    assert infer.main(["--input", str(src), "--output", str(out), "--pad", "-1"]) == 2
    assert "--pad must be in [0, 2]" in capsys.readouterr().err


def test_anonymize_images_and_video(tiny, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _img(src / "a.png", 7)
    _video(src / "clip.mp4")
    out = tmp_path / "out"
    rc = infer.main(["--input", str(src), "--output", str(out), "--anonymize", "fill", "--anonymize-margin", "0",
                     "--no-vis"] + model_args(tiny))
    assert rc == 0
    assert not (out / "vis").exists()  # --no-vis: only the anonymised copies
    faces = [Face.from_dict(f) for f in _results(out)["images"][0]["faces"]]
    assert faces, "SCORE_THRESH 0: the tiny model returns faces"
    orig = cv2.imread(str(src / "a.png"))
    anon = cv2.imread(str(out / "anonymized" / "a.png"))
    union = np.any([f.mask for f in faces], axis=0)
    assert (anon[union] == 0).all()  # filled black
    np.testing.assert_array_equal(anon[~union], orig[~union])  # lossless PNG: the rest is untouched
    cap = cv2.VideoCapture(str(out / "anonymized" / "clip.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == N


@pytest.mark.parametrize("args, message", [
    (["--anonymize", "smudge"], "invalid choice: 'smudge'"),
    (["--anonymize", "blur", "--anonymize-margin", "-3"], "--anonymize-margin: anonymize margin must be a number"),
    (["--anonymize", "blur", "--hold-frames", "-1"], "--hold-frames: hold-over frames must be an integer >= 0"),
    (["--anonymize-margin", "4"], "--anonymize-margin only applies with --anonymize blur|pixelate|fill"),
    (["--anonymize", "fill", "--anonymize-margin", "5 px"], "--anonymize-margin: anonymize margin must be pixels (8), "
                                                             "a percentage of the face size (5%) or auto, got '5 px'"),
])
def test_anonymize_bad_values(tiny, tmp_path, capsys, args, message):
    src = tmp_path / "a.jpg"
    _img(src, 0)
    try:
        rc = infer.main(["--input", str(src), "--output", str(tmp_path / "out")] + args + model_args(tiny))
    except SystemExit as e:  # argparse's own choice check
        rc = e.code
    assert rc == 2
    assert message in capsys.readouterr().err
