"""Detectron2's DefaultPredictor vs MaskFace (maskface/integrations/detectron2/check.py): the pairing
and limits on made-up detections, then the shipped detector converted to Detectron2 on
scikit-image's astronaut (512 x 512, resized to 480 px by both: PIL in Detectron2, torch in MaskFace)."""

import numpy as np
import pytest

from maskface.integrations.detectron2.check import LIMITS, DetectionReport, compare_detections


def _det(boxes, scores, shape=(60, 80)):
    masks = []
    for x0, y0, x1, y1 in boxes:
        m = np.zeros(shape, bool)
        m[int(y0):int(y1), int(x0):int(x1)] = True
        masks.append(m)
    return np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float), masks


def test_pairs_and_limits():
    a = _det([[10, 10, 30, 40], [50, 5, 70, 25]], [0.99, 0.90])
    report = compare_detections("img", a, _det([[50.5, 5, 70, 25.5], [10, 11, 30, 40]], [0.905, 0.985]), DetectionReport())
    assert report.paired == 2 and report.ok()
    assert report.max_box_px == pytest.approx(1.0) and report.max_score_diff == pytest.approx(0.005)
    assert 0.9 < report.min_mask_iou < 1.0
    shifted = compare_detections("img", a, _det([[13, 10, 33, 40], [50, 5, 70, 25]], [0.99, 0.90]), DetectionReport())
    assert shifted.paired == 2 and not shifted.ok()  # 3 px off
    scored = compare_detections("img", a, _det([[10, 10, 30, 40], [50, 5, 70, 25]], [0.99, 0.87]), DetectionReport())
    assert not scored.ok() and scored.max_score_diff == pytest.approx(0.03)
    missing = compare_detections("img", a, _det([[10, 10, 30, 40]], [0.99]), DetectionReport())
    assert missing.paired == 1 and not missing.ok() and "score 0.9000" in missing.unpaired[0]
    assert missing.to_dict()["limits"] == LIMITS


@pytest.mark.parametrize("resize", ["maskface", "detectron2"])
def test_default_predictor_finds_the_faces_maskface_finds(tmp_path, astronaut_bgr, resize):
    """Converted as MaskFaceRCNN (MaskFace's resize in the model): the same faces up to float rounding,
    whether the image is shrunk (512 -> 480 px) or enlarged (256 x 171 -> 2.5x). With Detectron2's own
    resize (PIL on uint8, sizes rounded half up) the same faces are found, but they measurably move."""
    pytest.importorskip("detectron2")
    from detectron2.engine import DefaultPredictor
    from tool_loader import load_tool

    from maskface.inference.predictor import FacePredictor
    from maskface.integrations.detectron2 import compare_predictors, get_detectron2_cfg

    assert load_tool("convert_weights").main(["--to", "detectron2", "--model", "maskface-lite", "--resize", resize,
                                              "--output", str(tmp_path), "--quiet"]) == 0
    d2 = DefaultPredictor(get_detectron2_cfg(str(tmp_path / "config.yaml"),
                                             ["MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.5"]))
    mf = FacePredictor("maskface-lite", attributes=False, device="cpu", retry_pad=0, score_thresh=0.5)
    report = compare_predictors(mf, d2, [astronaut_bgr, astronaut_bgr[::2, ::3].copy()])
    assert report.paired == report.faces_a == report.faces_b >= 2, report.format()
    if resize == "maskface":
        assert report.ok(), report.format()
        assert report.max_box_px < 0.01 and report.min_mask_iou > 0.999 and report.max_score_diff < 1e-3
    else:
        assert report.max_box_px > 0.01 and report.max_score_diff > 1e-3, report.format()
