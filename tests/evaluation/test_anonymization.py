"""maskface.evaluation.anonymization: covered / non-face-changed figures against known answers
(a stand-in predictor that returns chosen faces), and evaluate.py anonymization end to end."""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskface.evaluation.anonymization import evaluate_anonymization
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
