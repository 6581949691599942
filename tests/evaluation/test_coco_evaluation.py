"""COCO evaluation of the detector on given predictions: perfect predictions give AP 1, crowd
faces are ignore regions, box-only ground truth skips mask metrics, size-binned recall."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modeling"))
from detector_testing import make_dataset  # noqa: E402

from maskface.data.coco_faces import load_coco_faces  # noqa: E402
from maskface.evaluation.coco_evaluation import (  # noqa: E402
    evaluate_coco,
    format_metrics_table,
    instances_to_coco_results,
)


def _rle(seg, h, w):
    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _perfect(records, score=0.9):
    """Predictions equal to the ground truth (a box-shaped mask for box-only faces)."""
    out = []
    for r in records:
        for a in r["annotations"]:
            if a["iscrowd"]:
                continue
            x, y, w, h = a["bbox"]
            seg = a["segmentation"] or [[x, y, x + w, y, x + w, y + h, x, y + h]]
            out.append({"image_id": r["image_id"], "category_id": 1, "bbox": list(a["bbox"]), "score": score,
                        "segmentation": _rle(seg, r["height"], r["width"])})
    return out


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = make_dataset(tmp_path_factory.mktemp("ev"), num_images=8, faces_per_image=(1, 4), min_face=8)
    recs = load_coco_faces(path)
    assert any(a["iscrowd"] for r in recs for a in r["annotations"])
    assert any(a["segmentation"] is None and not a["iscrowd"] for r in recs for a in r["annotations"])
    return recs


def test_perfect_predictions_give_ap_1(records):
    m = evaluate_coco(records, _perfect(records))
    for kind in ("bbox", "segm"):
        for name in ("AP", "AP50", "AP75"):
            assert m[f"{kind}/{name}"] == pytest.approx(1.0), f"{kind}/{name}"
    assert m["recall@0.5"] == 1.0 and m["mask_iou"] == pytest.approx(1.0)
    assert m["num_faces"] == sum(1 for r in records for a in r["annotations"] if not a["iscrowd"])
    assert "box-only faces are ignore regions in the segm metrics" in m["notes"]


def test_detections_on_crowd_regions_are_not_false_positives(records):
    preds = _perfect(records)
    crowd_preds = []
    for r in records:
        for a in r["annotations"]:
            if a["iscrowd"]:
                x, y, w, h = a["bbox"]
                crowd_preds.append({"image_id": r["image_id"], "category_id": 1, "bbox": [x + 1, y + 1, w / 2, h / 2],
                                    "score": 0.99, "segmentation": _rle([[x + 1, y + 1, x + w / 2, y + 1, x + w / 2, y + h / 2]], r["height"], r["width"])})
    assert crowd_preds
    m = evaluate_coco(records, preds + crowd_preds)
    assert m["bbox/AP"] == pytest.approx(1.0)
    assert m["precision@0.5"] == pytest.approx(1.0)  # nor do they lower the precision


def test_false_positive_and_missed_face_lower_the_scores(records):
    preds = _perfect(records)
    r0 = records[0]
    fp = {"image_id": r0["image_id"], "category_id": 1, "bbox": [0.0, 0.0, 5.0, 5.0], "score": 0.95,
          "segmentation": _rle([[0, 0, 5, 0, 5, 5, 0, 5]], r0["height"], r0["width"])}
    m = evaluate_coco(records, preds[1:] + [fp])
    assert m["bbox/AP"] < 1.0 and m["recall@0.5"] < 1.0
    assert m["precision@0.5"] == pytest.approx((len(preds) - 1) / len(preds))  # one of n detections is false
    assert evaluate_coco(records, _perfect(records))["precision@0.5"] == 1.0
    # below the operating threshold detections count for AP but not for recall
    m_low = evaluate_coco(records, _perfect(records, score=0.3), score_thresh=0.5)
    assert m_low["bbox/AP"] == pytest.approx(1.0) and m_low["recall@0.5"] == 0.0


def test_box_only_ground_truth_skips_mask_metrics(tmp_path):
    recs = load_coco_faces(make_dataset(tmp_path, num_images=3, box_only_fraction=1.0, crowd_fraction=0.0))
    preds = _perfect(recs)
    for p in preds:
        p.pop("segmentation")
    m = evaluate_coco(recs, preds)
    assert m["bbox/AP"] == pytest.approx(1.0)
    assert "segm/AP" not in m and "mask_iou" not in m
    assert any("segm metrics and mask IoU skipped" in n for n in m["notes"])
    assert "segm" not in format_metrics_table(m).split("\n")[2]


def test_recall_by_face_size_bins(records):
    m = evaluate_coco(records, _perfect(records))
    bins = ["<16", "16-32", "32-64", "64-128", ">=128"]
    assert sum(m[f"num_faces/{b}"] for b in bins) == m["num_faces"]
    for b in bins:
        assert m[f"recall@0.5/{b}"] in (None, 1.0)
    table = format_metrics_table(m)
    assert "recall@0.5" in table and "AP50" in table


def test_empty_predictions(records):
    m = evaluate_coco(records, [])
    assert m["bbox/AP"] == 0.0 and m["recall@0.5"] == 0.0
    assert any("no detections" in n for n in m["notes"])


def test_instances_to_coco_results_round_trip():
    masks = torch.zeros((2, 1, 20, 30))
    masks[0, 0, 2:10, 3:12] = 0.9
    masks[1, 0, 5:15, 15:25] = 0.2  # below the threshold: empty mask
    out = {"boxes": torch.tensor([[3.0, 2.0, 12.0, 10.0], [15.0, 5.0, 25.0, 15.0]]), "scores": torch.tensor([0.8, 0.6]),
           "labels": torch.ones(2, dtype=torch.int64), "masks": masks}
    res = instances_to_coco_results(out, image_id=5, mask_thresh=0.5)
    assert [r["bbox"] for r in res] == [[3.0, 2.0, 9.0, 8.0], [15.0, 5.0, 10.0, 10.0]]
    assert res[0]["image_id"] == 5 and res[0]["category_id"] == 1 and res[0]["score"] == 0.8
    decoded = mask_utils.decode(res[0]["segmentation"])
    assert decoded.sum() == 8 * 9 and isinstance(res[0]["segmentation"]["counts"], str)
    assert mask_utils.decode(res[1]["segmentation"]).sum() == 0
    assert np.array_equal(np.nonzero(decoded)[0][[0, -1]], [2, 9])
