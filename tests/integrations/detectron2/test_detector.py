"""FacePredictor with a Detectron2 detector (maskface/integrations/detectron2/detector.py and the
``detector_backend`` hook of maskface/inference/predictor.py)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from maskface.inference.predictor import FacePredictor

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "faces.jpg"


def test_backend_arguments_are_checked_before_anything_loads():
    with pytest.raises(ValueError, match="detector_backend must be one of"):
        FacePredictor(detector_backend="mmdet")
    with pytest.raises(ValueError, match="needs detector_config"):
        FacePredictor(detector_backend="detectron2")
    with pytest.raises(ValueError, match="runtime='torch' only"):
        FacePredictor(detector_backend="detectron2", detector_config="x.yaml", runtime="onnxruntime")


def test_detectron2_detector_gives_maskface_faces_and_attributes(converted_lite):
    """samples/faces.jpg (800 x 480) is shrunk to 640 x 384 by FacePredictor itself, so both detectors
    see the same pixels at their own input size: the faces and their attributes agree to float rounding."""
    pytest.importorskip("detectron2")
    bgr = cv2.imread(str(SAMPLE))
    ours = FacePredictor("maskface-lite", device="cpu")
    d2 = FacePredictor("maskface-lite", detector_backend="detectron2", detector_config=str(converted_lite / "config.yaml"),
                       detector_weights=str(converted_lite / "model_final.pth"), device="cpu")
    assert d2.model_info["detector_backend"] == "detectron2" and d2.has_attributes
    assert d2.score_thresh == 0.8 and d2.max_size == 640  # from the Detectron2 config
    a, b = ours(bgr), d2(bgr)
    assert len(a) == len(b) >= 4  # the sample's four people (and whatever else the weights score >= 0.8)
    for fa, fb in zip(a, b):
        assert np.abs(np.subtract(fa.box, fb.box)).max() < 0.01 and abs(fa.score - fb.score) < 1e-3
        assert (fa.mask != fb.mask).sum() <= 2
        assert (fa.gender, fa.emotion, fa.age_group) == (fb.gender, fb.emotion, fb.age_group)
        assert abs(fa.age - fb.age) < 0.05 and abs(fa.gender_prob - fb.gender_prob) < 1e-3
    d2.score_thresh = 0.3  # reaches the Detectron2 box head: more faces
    assert d2.detector.score_thresh == 0.3 and len(d2(bgr)) > len(b)
    d2.max_size = 320
    assert (d2.detector.min_size, d2.detector.max_size) == (320, 320)


def test_detector_needs_a_mask_head(converted_lite):
    pytest.importorskip("detectron2")
    from maskface.integrations.detectron2 import Detectron2Detector

    with pytest.raises(ValueError, match="no mask head"):
        Detectron2Detector.from_files(str(converted_lite / "config.yaml"), opts=["MODEL.MASK_ON", "False"])
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        Detectron2Detector.from_files(str(converted_lite / "config.yaml"), "nowhere.pth")
