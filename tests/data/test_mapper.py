"""DatasetMapper: record -> (image, target) with consistent boxes and masks."""

import cv2
import numpy as np
import pytest
import torch

from maskface.data.attributes import EMOTIONS
from maskface.data.mapper import DatasetMapper, read_image_rgb

H, W = 60, 80


def _write_image(path, colour=(0, 0, 255)):
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :] = colour  # BGR red
    cv2.imwrite(str(path), img)
    return str(path)


def _record(tmp_path):
    file_name = _write_image(tmp_path / "img.png")
    left_face = [[5.0, 10.0, 25.0, 10.0, 25.0, 40.0, 5.0, 40.0]]  # x 5..25, y 10..40
    return {
        "file_name": file_name,
        "image_id": 7,
        "height": H,
        "width": W,
        "annotations": [
            {"bbox": [5.0, 10.0, 20.0, 30.0], "segmentation": left_face, "iscrowd": 0, "area": 600.0,
             "attributes": {"age": 31.0, "gender": "male", "emotion": "happy"}},
            {"bbox": [50.0, 5.0, 20.0, 20.0], "segmentation": None, "iscrowd": 0, "area": 400.0, "attributes": {}},
            {"bbox": [40.0, 30.0, 30.0, 25.0], "segmentation": None, "iscrowd": 1, "area": 750.0, "attributes": {}},
            {"bbox": [10.0, 50.0, 0.4, 5.0], "segmentation": None, "iscrowd": 0, "area": 2.0, "attributes": {}},
        ],
    }


def test_test_mapper_keeps_size_and_encodes_targets(tmp_path):
    image, t = DatasetMapper(is_train=False)(_record(tmp_path))
    assert image.shape == (3, H, W) and image.dtype == torch.float32
    assert torch.allclose(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))  # BGR file -> RGB tensor
    # crowd removed into crowd_boxes; the 0.4 px wide face dropped as degenerate
    assert t["boxes"].tolist() == [[5.0, 10.0, 25.0, 40.0], [50.0, 5.0, 70.0, 25.0]]
    assert t["crowd_boxes"].tolist() == [[40.0, 30.0, 70.0, 55.0]]
    assert t["labels"].tolist() == [1, 1] and t["labels"].dtype == torch.int64
    assert t["has_mask"].tolist() == [True, False]
    assert t["masks"].shape == (2, H, W) and t["masks"].dtype == torch.uint8
    assert t["masks"][1].sum() == 0 and t["masks"][0, 10:40, 5:25].float().mean() > 0.9
    a = t["attributes"]
    assert a["age"].tolist() == [31.0, 0.0] and a["age_known"].tolist() == [True, False]
    assert a["gender"].tolist() == [1, 0] and a["gender_known"].tolist() == [True, False]
    assert a["emotion"].tolist() == [EMOTIONS.index("happy"), 0] and a["emotion_known"].tolist() == [True, False]
    assert int(t["image_id"]) == 7 and t["orig_size"].tolist() == [H, W]


def _centroid_x(mask):
    ys, xs = np.nonzero(mask.numpy())
    return xs.mean()


def test_flip_moves_boxes_and_masks_together(tmp_path):
    rec = _record(tmp_path)
    mapper = DatasetMapper(is_train=True, min_sizes=[H], max_size=1000, hflip_prob=1.0, color_jitter=0.0)
    image, t = mapper(rec, np.random.default_rng(0))
    assert image.shape == (3, H, W)
    box = t["boxes"][0]
    assert box.tolist() == [W - 25.0, 10.0, W - 5.0, 40.0]
    cx = _centroid_x(t["masks"][0])
    assert box[0] <= cx <= box[2] and abs(cx - (box[0] + box[2]) / 2) < 1.5
    assert t["crowd_boxes"].tolist() == [[W - 70.0, 30.0, W - 40.0, 55.0]]


def test_scale_jitter_resizes_everything(tmp_path):
    rec = _record(tmp_path)
    mapper = DatasetMapper(is_train=True, min_sizes=[120], max_size=1000, hflip_prob=0.0, color_jitter=0.3)
    image, t = mapper(rec, np.random.default_rng(1))
    assert image.shape == (3, 120, 160)
    assert t["masks"].shape == (2, 120, 160)
    assert torch.allclose(t["boxes"][0], torch.tensor([10.0, 20.0, 50.0, 80.0]))
    ys, xs = np.nonzero(t["masks"][0].numpy())
    assert abs(xs.min() - 10) <= 1 and abs(xs.max() + 1 - 50) <= 1 and abs(ys.min() - 20) <= 1
    # a 0.4 px face at scale 2 is 0.8 px wide: still dropped
    assert len(t["boxes"]) == 2


def test_same_seed_same_sample(tmp_path):
    rec = _record(tmp_path)
    mapper = DatasetMapper(is_train=True, min_sizes=[40, 60, 80], max_size=1000, hflip_prob=0.5, color_jitter=0.3)
    a = mapper(rec, np.random.default_rng(5))
    b = mapper(rec, np.random.default_rng(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1]["boxes"], b[1]["boxes"])


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(OSError, match="broken.jpg"):
        read_image_rgb(str(bad))
    rec = _record(tmp_path)
    rec["file_name"] = str(tmp_path / "missing.png")
    with pytest.raises(OSError, match="missing.png"):
        DatasetMapper(is_train=False)(rec)


def test_size_mismatch_with_record_is_reported(tmp_path):
    rec = _record(tmp_path)
    rec["width"] = W + 1
    with pytest.raises(ValueError, match="annotation record says"):
        DatasetMapper(is_train=False)(rec)


def test_image_without_faces(tmp_path):
    rec = _record(tmp_path)
    rec["annotations"] = []
    _, t = DatasetMapper(is_train=True, min_sizes=[30], max_size=100)(rec, np.random.default_rng(0))
    assert t["boxes"].shape == (0, 4) and t["masks"].shape == (0, 30, 40) and t["has_mask"].shape == (0,)
