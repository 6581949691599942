"""maskface.evaluation.anonymization: covered / non-face-changed figures against known answers
(a stand-in predictor that returns chosen faces), and evaluate.py anonymization end to end."""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskface.evaluation.anonymization import below_outline, evaluate_anonymization
from maskface.inference.results import Face

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from tool_loader import load_tool  # noqa: E402

H = W = 64


def _records(tmp_path, n=3):
    """n images, each with one square GT face (polygon) at 16..48."""
    recs = []
    for i in range(n):
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), np.random.default_rng(i).integers(0, 255, (H, W, 3), dtype=np.uint8))
        recs.append({"file_name": str(p), "height": H, "width": W, "annotations": [
            {"bbox": [16, 16, 32, 32], "segmentation": [[16, 16, 48, 16, 48, 48, 16, 48]], "iscrowd": 0}]})
    return recs


class FixedFaces:
    """A predictor stand-in: ``predictor(images, color=...)`` -> the same faces for every image."""

    def __init__(self, faces):
        self.faces = faces

    def __call__(self, images, color="bgr"):
        return [list(self.faces) for _ in images]


def _gt_mask():
    m = np.zeros((H, W), bool)
    m[16:48, 16:48] = True  # what the polygon above rasterises to (pycocotools: pixel-area convention)
    return m


def test_known_answers(tmp_path):
    recs = _records(tmp_path)
    gt = _gt_mask()
    exact = FixedFaces([Face(box=[16, 16, 48, 48], score=1.0, mask=gt)])
    m = evaluate_anonymization(exact, recs, regions=("mask", "box"), margins=(0, 4), progress=False)
    assert m["images"] == 3 and m["detected_faces"] == 3
    got = m["settings"]
    assert got["mask@0"]["covered"] == pytest.approx(1.0, abs=0.07)  # polygon edge pixels may differ
    assert got["mask@0"]["nonface_changed_median"] < 0.07
    assert got["mask@4"]["covered"] == 1.0 and got["mask@4"]["images_fully_covered"] == 1.0
    assert got["mask@4"]["nonface_changed_median"] > got["mask@0"]["nonface_changed_median"]
    # half the face found: about half covered
    half = gt.copy()
    half[:, 32:] = False
    m = evaluate_anonymization(FixedFaces([Face(box=[16, 16, 32, 48], score=1.0, mask=half)]), recs,
                               regions=("mask",), margins=(0,), progress=False)
    assert m["settings"]["mask@0"]["covered"] == pytest.approx(0.5, abs=0.05)
    assert m["settings"]["mask@0"]["images_fully_covered"] == 0.0
    # nothing found: nothing covered, nothing changed
    m = evaluate_anonymization(FixedFaces([]), recs, regions=("ellipse",), margins=(None,), progress=False)
    s = m["settings"]["ellipse@auto"]
    assert (s["covered"], s["covered_any"], s["nonface_changed_mean"]) == (0.0, 0.0, 0.0)


def test_below_outline():
    oval = np.zeros((10, 12), bool)
    oval[2:6, 4:8] = True
    oval[6, 5:7] = True  # the chin
    below = below_outline(oval)
    assert not below[:6].any()  # nothing at or above the lowest rows of the face's sides
    assert below[6, :5].all() and below[6, 7:].all() and not below[6, 5:7].any()  # beside the chin: neck level
    assert below[7:].all()
    assert not below_outline(np.zeros((4, 4), bool)).any()
    with pytest.raises(ValueError, match="H x W"):
        below_outline(np.zeros((2, 2, 3), bool))


def test_uncovered_where(tmp_path):
    """GT face = a 'face' square (16..40 rows) plus a 'neck' (40..48); the detection covers the
    square only; the reference outline is the square: every uncovered pixel is below the jaw."""
    recs = _records(tmp_path, n=2)
    face = np.zeros((H, W), bool)
    face[16:40, 16:48] = True
    outline = face.copy()
    calls = []

    def reference(image):
        calls.append(image.shape)
        return outline

    m = evaluate_anonymization(FixedFaces([Face(box=[16, 16, 48, 40], score=1.0, mask=face)]), recs,
                               regions=("mask",), margins=(0,), progress=False, face_reference=reference)
    s = m["settings"]["mask@0"]
    assert len(calls) == 2 and m["images_without_outline"] == 0
    assert s["covered"] == pytest.approx(24 / 32, abs=0.04)  # the neck rows are uncovered
    assert s["covered_inside_outline"] == 1.0 and s["covered_above_jaw"] == 1.0
    assert s["uncovered_where"]["below_jaw"] == pytest.approx(1.0)
    # a face found only by its left half: the rest of the outline is uncovered 'inside'
    left = face.copy()
    left[:, 32:] = False
    m = evaluate_anonymization(FixedFaces([Face(box=[16, 16, 32, 40], score=1.0, mask=left)]), recs,
                               regions=("mask",), margins=(0,), progress=False, face_reference=reference)
    s = m["settings"]["mask@0"]
    assert s["covered_inside_outline"] == pytest.approx(0.5)
    u = s["uncovered_where"]
    assert u["inside_outline"] > u["below_jaw"] > 0 and u["beside"] == 0 and sum(u.values()) == pytest.approx(1.0)
    # no outline found: the uncovered pixels are counted apart
    m = evaluate_anonymization(FixedFaces([]), recs, regions=("mask",), margins=(0,), progress=False,
                               face_reference=lambda image: np.zeros(image.shape[:2], bool))
    assert m["images_without_outline"] == 2
    assert m["settings"]["mask@0"]["uncovered_where"]["no_outline"] == 1.0
    with pytest.raises(ValueError, match="outline"):
        evaluate_anonymization(FixedFaces([]), recs, regions=("mask",), margins=(0,), progress=False,
                               face_reference=lambda image: np.zeros((3, 3), bool))


def test_evaluate_tool_end_to_end(tmp_path, tmp_path_factory, capsys):
    from maskface.inference.testing import session_tiny_models

    evaluate = load_tool("evaluate")
    tiny = session_tiny_models(tmp_path_factory)
    recs = _records(tmp_path)
    images = [{"id": i + 1, "file_name": Path(r["file_name"]).name, "width": W, "height": H} for i, r in enumerate(recs)]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [16, 16, 32, 32], "area": 1024.0, "iscrowd": 0,
             "segmentation": [[16, 16, 48, 16, 48, 48, 16, 48]]} for i in range(len(recs))]
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "face"}]}))
    out = tmp_path / "eval"
    rc = evaluate.main(["anonymization", "--dataset", str(gt), "--output", str(out), "--device", "cpu",
                        "--detector-config", tiny.detector_config, "--detector-weights", tiny.detector_weights,
                        "--no-attributes", "--score-thresh", "0", "--margin", "auto", "3"])
    assert rc == 0
    m = json.loads((out / "anonymization_metrics.json").read_text())
    settings = m["datasets"][str(gt)]["settings"]
    assert list(settings) == ["mask@auto", "mask@3", "box@auto", "box@3", "ellipse@auto", "ellipse@3"]
    assert all(0 <= s["covered"] <= s["covered_any"] <= 1 for s in settings.values())
    assert "mask@auto" in capsys.readouterr().out
    assert evaluate.main(["anonymization", "--dataset", str(gt), "--output", str(out), "--margin", "x"]) == 2
    # --where with MediaPipe's face oval: noise images have none, so every uncovered pixel is 'no_outline'
    rc = evaluate.main(["anonymization", "--dataset", str(gt), "--output", str(out), "--device", "cpu",
                        "--detector-config", tiny.detector_config, "--detector-weights", tiny.detector_weights,
                        "--no-attributes", "--mode", "mask", "--where"])
    assert rc == 0
    m = json.loads((out / "anonymization_metrics.json").read_text())["datasets"][str(gt)]
    assert m["images_without_outline"] == 3
    where = m["settings"]["mask@auto"]["uncovered_where"]
    assert set(where) == {"inside_outline", "below_jaw", "beside", "no_outline"}
    assert where["no_outline"] in (0.0, 1.0) and "MediaPipe face oval" in capsys.readouterr().out
