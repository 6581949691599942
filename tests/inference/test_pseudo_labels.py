"""Pseudo-masks (detector boxes + masks for box-only attribute sets) and the pipeline evaluation.

The predictor here is a small stand-in returning known ``Face`` records, so the matching rules
and the metrics can be checked exactly; the real FacePredictor is exercised in test_predictor.
"""

import json

import cv2
import numpy as np
import pytest

from maskface.data.coco_faces import load_coco_faces
from maskface.evaluation.pipeline_evaluation import evaluate_pipeline
from maskface.inference.pseudo_labels import match_detection, pseudo_label_faces
from maskface.inference.results import Face


def _face(box, score, h=100, w=100, **attrs):
    mask = np.zeros((h, w), bool)
    x1, y1, x2, y2 = (int(v) for v in box)
    mask[y1:y2, x1:x2] = True
    return Face(box=[float(v) for v in box], score=score, mask=mask, **attrs)


class KnownFaces:
    """Returns the faces given at construction for each image, told apart by image height."""

    score_thresh = 0.05
    has_attributes = True

    def __init__(self, by_height):
        self.by_height = by_height  # images are told apart by their height

    def __call__(self, images, color="bgr"):
        return [self.by_height[im.shape[0]] for im in images]


def test_match_detection_rules():
    gt = [10, 10, 80, 80]  # xywh -> [10, 10, 90, 90]
    boxes = [[0, 0, 20, 20], [20, 20, 80, 85], [25, 25, 85, 88], [200, 200, 220, 220]]
    scores = [0.99, 0.6, 0.7, 0.9]
    assert match_detection(gt, boxes, scores, set(), 0.2) == 2  # centre inside, IoU ok, best score
    assert match_detection(gt, boxes, scores, {2}, 0.2) == 1  # taken detections are skipped
    assert match_detection(gt, boxes, scores, {1, 2}, 0.2) is None  # box 0: IoU too small
    assert match_detection(gt, boxes, scores, set(), 0.99) is None


@pytest.fixture
def box_only_set(tmp_path):
    for name, h in (("a.png", 100), ("b.png", 101)):
        cv2.imwrite(str(tmp_path / name), np.zeros((h, 100, 3), np.uint8))
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 100},
                   {"id": 2, "file_name": "b.png", "width": 100, "height": 101}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": 1e4, "iscrowd": 0,
             "attributes": {"age": 30, "gender": "female"}},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 100, 101], "area": 1e4, "iscrowd": 0,
             "attributes": {"age": 60, "gender": "male", "emotion": "sad"}, "groups": {"race": "indian"}},
        ],
        "categories": [{"id": 1, "name": "face"}],
    }
    path = tmp_path / "box_only.json"
    path.write_text(json.dumps(data))
    return path


def test_pseudo_masks_keep_attributes_and_drop_unmatched(box_only_set, tmp_path):
    predictor = KnownFaces({100: [_face([20, 10, 80, 90], 0.9)], 101: [_face([0, 0, 5, 5], 0.9, h=101)]})
    coco = pseudo_label_faces(str(box_only_set), predictor, progress=False)
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 1
    (ann,) = coco["annotations"]
    assert ann["bbox"] == [20.0, 10.0, 60.0, 80.0]
    assert ann["attributes"] == {"age": 30, "gender": "female"}
    assert ann["segmentation"]["size"] == [100, 100] and ann["area"] == 60 * 80
    assert coco["info"]["notes"]["no detection matched (face dropped)"] == 1
    out = tmp_path / "pm.json"
    out.write_text(json.dumps(coco))
    (rec,) = [r for r in load_coco_faces(out) if r["annotations"]]
    assert rec["file_name"].endswith("a.png")


class PaddedFaces:
    """Detects one face at a fixed place of the *padded* image it is given, and records its size."""

    score_thresh = 0.05

    def __init__(self):
        self.shapes = []

    def __call__(self, images, color="bgr"):
        self.shapes += [im.shape[:2] for im in images]
        out = []
        for im in images:
            h, w = im.shape[:2]
            out.append([_face([30, 20, w - 10, h - 40], 0.8, h=h, w=w), _face([0, 0, 20, 20], 0.9, h=h, w=w)])
        return out


def test_pseudo_masks_pad_maps_boxes_and_masks_back(box_only_set):
    predictor = PaddedFaces()
    coco = pseudo_label_faces(str(box_only_set), predictor, progress=False, pad=0.25)
    assert [a.get("groups") for a in coco["annotations"]] == [None, {"race": "indian"}]  # groups are kept
    # 100x100 -> 150x150 (25 px each side), 100x101 -> 150x151 (25 / 25 px)
    assert predictor.shapes == [(150, 150), (151, 150)]
    anns = {a["image_id"]: a for a in coco["annotations"]}
    # padded box [30, 20, 140, 110] -> original [5, -5, 115, 85] -> clipped [5, 0, 100, 85]
    assert anns[1]["bbox"] == [5.0, 0.0, 95.0, 85.0]
    assert anns[1]["segmentation"]["size"] == [100, 100] and anns[1]["area"] == 95 * 85
    # the face inside the grey border only ([0, 0, 20, 20] padded) was dropped, not matched
    assert len(coco["annotations"]) == 2
    with pytest.raises(ValueError, match="pad must be in"):
        pseudo_label_faces(str(box_only_set), predictor, progress=False, pad=-0.1)


def test_pipeline_metrics_over_matched_faces(box_only_set):
    probs = {e: 0.0 for e in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")}
    sad = dict(probs, sad=1.0)
    predictor = KnownFaces({
        100: [_face([20, 10, 80, 90], 0.9, age=34.0, age_group="25-32", gender="female", gender_prob=0.9,
                    emotion="sad", emotion_probs=sad)],
        101: [_face([10, 10, 90, 90], 0.9, h=101, age=50.0, age_group="48-53", gender="female", gender_prob=0.8,
                    emotion="sad", emotion_probs=sad)],
    })
    m = evaluate_pipeline(predictor, load_coco_faces(box_only_set), progress=False)
    assert m["labelled_faces"] == 2 and m["described_faces"] == 2 and m["described_fraction"] == 1.0
    assert m["age"]["mae"] == pytest.approx((4 + 10) / 2)
    assert m["gender"]["accuracy"] == pytest.approx(0.5)  # the 60-year-old man was called female
    assert set(m["bias"]["by_race"]) == {"indian"} and m["bias"]["by_race"]["indian"]["n"] == 1
    assert m["emotion"]["accuracy"] == pytest.approx(1.0)  # only the second face has an emotion label


def test_pipeline_pad_matches_in_padded_coordinates(box_only_set):
    probs = {e: 0.0 for e in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")}

    class LowerRight:
        """One face at [75, 75, 125, 125] of whatever image it gets, and the image sizes seen."""

        score_thresh, has_attributes = 0.05, True

        def __init__(self):
            self.shapes = []

        def __call__(self, images, color="bgr"):
            self.shapes += [im.shape[:2] for im in images]
            return [[_face([75, 75, 125, 125], 0.9, h=im.shape[0], w=im.shape[1]).set_attributes(
                {"age": 40.0, "age_group": "38-43", "gender": "male", "gender_prob": 0.7, "emotion": "sad",
                 "emotion_probs": dict(probs, sad=1.0)})] for im in images]

    predictor = LowerRight()
    m = evaluate_pipeline(predictor, load_coco_faces(box_only_set), progress=False, pad=0.25)
    assert predictor.shapes == [(150, 150), (151, 150)]
    # in padded coordinates the labels are [25, 25, 125, 125(6)]: the face covers a quarter of each
    assert m["described_faces"] == 2 and m["age"]["mae"] == pytest.approx((10 + 20) / 2)
    with pytest.raises(ValueError, match="no labelled face was matched"):
        # unpadded, the same box sits at the labels' corner (IoU < 0.2): nothing matches
        evaluate_pipeline(LowerRight(), load_coco_faces(box_only_set), progress=False)
