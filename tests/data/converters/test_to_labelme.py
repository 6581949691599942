"""COCO -> labelme -> COCO keeps polygons, boxes, crowd flags and attributes."""

import json

import cv2
import numpy as np
import pytest

from maskface.data.converters.common import mask_to_rle

POLYGON = [10.5, 10.0, 30.0, 10.0, 30.0, 30.25, 10.5, 30.25]


def make_coco(tmp_path):
    """Images under ``tmp_path/imgs``; the JSON in ``tmp_path/coco`` with a relative image root."""
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    (tmp_path / "coco").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.jpg"), np.zeros((80, 100, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "imgs" / "sub" / "b.png"), np.zeros((80, 100, 3), np.uint8))
    square = np.zeros((80, 100), bool)
    square[10:20, 60:70] = True
    faces = [
        {"bbox": [10.5, 10, 19.5, 20.25], "segmentation": [POLYGON],
         "attributes": {"age": 31.5, "gender": "female", "emotion": "happy"}},
        {"bbox": [40, 20, 20, 30], "iscrowd": 1},
        {"bbox": [50, 50, 30, 10], "segmentation": [[50, 50, 60, 50, 60, 60], [70, 50, 80, 50, 80, 60]],
         "attributes": {"emotion": "surprise"}},
        {"bbox": [60, 10, 10, 10], "segmentation": mask_to_rle(square), "attributes": {"gender": "male"}},
    ]  # fmt: skip
    base = {"image_id": 1, "category_id": 1, "area": 1.0, "iscrowd": 0}
    annotations = [{"id": i + 1, **base, **face} for i, face in enumerate(faces)]
    data = {
        "image_root": "../imgs",
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 100, "height": 80},
            {"id": 2, "file_name": "sub/b.png", "width": 100, "height": 80},
        ],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "face"}],
    }
    path = tmp_path / "coco" / "faces.json"
    path.write_text(json.dumps(data))
    return path, annotations


def test_round_trip(tmp_path, convert, load_checked, faces_of):
    path, original = make_coco(tmp_path)
    review = tmp_path / "review"
    assert convert("to-labelme", path, "-o", review) == 0
    doc = json.loads((review / "a.json").read_text())
    assert (review / doc["imagePath"]).resolve() == (tmp_path / "imgs" / "a.jpg").resolve()
    assert doc["shapes"][0]["label"] == "face age=31.5 gender=female emotion=happy"
    assert doc["shapes"][1]["label"] == "face crowd=1" and doc["shapes"][1]["shape_type"] == "rectangle"
    assert json.loads((review / "sub" / "b.json").read_text())["shapes"] == []

    back = tmp_path / "back.json"
    assert convert("labelme", review, "-o", back, "--no-progress") == 0
    data = load_checked(back)
    assert faces_of(data, "sub/b.png") == []
    polygon, box, groups, traced = faces_of(data, "a.jpg")
    assert polygon["segmentation"] == [POLYGON] and polygon["bbox"] == original[0]["bbox"]
    assert polygon["attributes"] == original[0]["attributes"]
    assert box["bbox"] == [40, 20, 20, 30] and box["iscrowd"] == 1 and "segmentation" not in box
    assert groups["segmentation"] == original[2]["segmentation"] and groups["attributes"] == {"emotion": "surprise"}
    # The RLE square is traced along its pixel centres: the box shrinks by at most 1 px.
    assert traced["bbox"] == pytest.approx([60, 10, 10, 10], abs=1) and traced["attributes"] == {"gender": "male"}
    images = tmp_path / "imgs"  # outside the labelme folder: absolute file names
    assert [im["file_name"] for im in data["images"]] == [str(images / "a.jpg"), str(images / "sub" / "b.png")]
