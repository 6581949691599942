import json

import cv2
import numpy as np
import pytest

from maskface.data.coco_faces import (
    CocoFacesError,
    get_dataset,
    load_coco_faces,
    register_coco_faces,
)


def _write_coco(tmp_path, annotations, images=None, extra=None):
    img_dir = tmp_path / "imgs"
    img_dir.mkdir(exist_ok=True)
    cv2.imwrite(str(img_dir / "a.png"), np.zeros((40, 60, 3), np.uint8))
    data = {
        "images": images or [{"id": 1, "file_name": "a.png", "width": 60, "height": 40}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "face"}],
        "image_root": "imgs",
    }
    data.update(extra or {})
    path = tmp_path / "faces.json"
    path.write_text(json.dumps(data))
    return path


def _ann(**kw):
    ann = {"id": 5, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 30], "iscrowd": 0, "area": 600.0}
    ann.update(kw)
    return ann


def test_loads_records_with_attributes_and_box_only(tmp_path):
    anns = [
        _ann(segmentation=[[10, 5, 30, 5, 30, 35]], attributes={"age": 31, "emotion": "happy"},
             groups={"race": "asian"}),
        _ann(id=6, bbox=[0, 0, 5, 5]),  # box-only face
        _ann(id=7, iscrowd=1),
    ]
    recs = load_coco_faces(_write_coco(tmp_path, anns))
    assert len(recs) == 1
    rec = recs[0]
    assert rec["file_name"].endswith("imgs/a.png") and (rec["height"], rec["width"]) == (40, 60)
    a, b, c = rec["annotations"]
    assert a["attributes"] == {"age": 31, "emotion": "happy"}  # gender unknown, not defaulted
    assert b["segmentation"] is None
    assert a["groups"] == {"race": "asian"} and "groups" not in b  # passed through only when present
    assert c["iscrowd"] == 1


@pytest.mark.parametrize(
    "ann, message",
    [
        (_ann(bbox=[50, 5, 20, 30]), r"annotation id 5: bbox \[50, 5, 20, 30\] lies outside the 60x40 image"),
        (_ann(segmentation=[[1, 1, 2, 2]]), "polygon 0 has 2 points, at least 3 needed"),
        (_ann(attributes={"emotion": "joy"}), "unknown emotion name 'joy'"),
        (_ann(attributes={"gender": "f"}), "unknown gender 'f'"),
        (_ann(image_id=9), "unknown image_id 9"),
        (_ann(groups={"race": 2}), "groups must be an object of string labels"),
    ],
)
def test_precise_errors(tmp_path, ann, message):
    path = _write_coco(tmp_path, [ann])
    with pytest.raises(CocoFacesError, match=message) as err:
        load_coco_faces(path)
    assert "faces.json" in str(err.value)


def test_missing_image_strict_and_lenient(tmp_path, caplog):
    images = [
        {"id": 1, "file_name": "a.png", "width": 60, "height": 40},
        {"id": 2, "file_name": "gone.png", "width": 60, "height": 40},
    ]
    path = _write_coco(tmp_path, [_ann(), _ann(id=8, image_id=2)], images=images)
    with pytest.raises(CocoFacesError, match="image file missing: .*gone.png"):
        load_coco_faces(path)
    recs = load_coco_faces(path, strict=False)
    assert [r["image_id"] for r in recs] == [1]
    assert len(recs[0]["annotations"]) == 1
    assert "gone.png" in caplog.text


def test_registration_by_name_and_path(tmp_path):
    path = _write_coco(tmp_path, [_ann()])
    register_coco_faces("unit_test_faces", str(path))
    assert get_dataset("unit_test_faces")[0]["source"] == "unit_test_faces"
    assert len(get_dataset(str(path))) == 1
    with pytest.raises(KeyError, match="already registered"):
        register_coco_faces("unit_test_faces", str(path))
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        get_dataset("nope")
