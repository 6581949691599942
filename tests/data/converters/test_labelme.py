"""labelme converter: shapes, groups, attribute rules, embedded images, malformed files."""

import base64
import json

import cv2
import numpy as np
import pytest

from maskface.data.converters.labelme import parse_face_words


def shape(label, points, shape_type="polygon", group_id=None, flags=None, description=""):
    return {
        "label": label,
        "points": points,
        "group_id": group_id,
        "description": description,
        "shape_type": shape_type,
        "flags": flags or {},
    }


def labelme_doc(image_path, shapes, width=100, height=80, image_data=None):
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": image_data,
        "imageHeight": height,
        "imageWidth": width,
    }


SQUARE = [[10, 10], [30, 10], [30, 30], [10, 30]]  # 20 x 20


def make_labelme(folder):
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "a.jpg"), np.zeros((80, 100, 3), np.uint8))
    shapes = [
        shape("face age=31 gender=female emotion=happy", SQUARE),
        shape("Face", [[60, 50], [40, 20]], "rectangle", flags={"male": True, "happy": False, "occluded": True}),
        shape("face", [[50, 50], [60, 50], [60, 60]], group_id=1, description="emotion=surprise"),
        shape("face", [[70, 50], [80, 50], [80, 60]], group_id=1, flags={"surprise": True}),
        shape("hand", [[0, 0], [5, 0], [5, 5]]),
        shape("face crowd=1", [[0, 60], [10, 60], [10, 70]]),
    ]
    (folder / "a.json").write_text(json.dumps(labelme_doc("a.jpg", shapes)))
    ok, png = cv2.imencode(".png", np.full((80, 100, 3), 200, np.uint8))
    embedded = labelme_doc("gone/b.png", [shape("face sad", SQUARE)], image_data=base64.b64encode(png).decode())
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "b.json").write_text(json.dumps(embedded))


def test_labelme(tmp_path, convert, load_checked, faces_of):
    make_labelme(tmp_path / "lm")
    out = tmp_path / "out" / "faces.json"
    assert convert("labelme", tmp_path / "lm", "-o", out, "--no-progress") == 0
    data = load_checked(out)
    a = faces_of(data, "a.jpg")
    assert len(a) == 4  # the hand is ignored, the two grouped polygons are one face
    assert a[0]["segmentation"] == [[10, 10, 30, 10, 30, 30, 10, 30]]
    assert a[0]["bbox"] == [10, 10, 20, 20] and a[0]["area"] == pytest.approx(400, abs=25)
    assert a[0]["attributes"] == {"age": 31.0, "gender": "female", "emotion": "happy"}
    assert a[1]["bbox"] == [40, 20, 20, 30] and "segmentation" not in a[1]
    assert a[1]["attributes"] == {"gender": "male"}  # false and unrelated flags ignored
    assert len(a[2]["segmentation"]) == 2 and a[2]["bbox"] == [50, 50, 30, 10]
    assert a[2]["attributes"] == {"emotion": "surprise"}
    assert a[3]["iscrowd"] == 1 and "attributes" not in a[3]
    assert data["info"]["notes"] == {"non-face shape ignored": 1}

    (b,) = faces_of(data, "sub/b.png")  # embedded imageData written next to the output
    assert b["attributes"] == {"emotion": "sad"}
    extracted = tmp_path / "out" / "labelme_images" / "sub" / "b.png"
    assert cv2.imread(str(extracted)).mean() == 200
    assert [im["file_name"] for im in data["images"]] == ["a.jpg", str(extracted)]


@pytest.mark.parametrize(
    "label, problem",
    [
        ("face age=abc", "invalid age 'abc'"),
        ("face emotoin=happy", "unknown attribute 'emotoin' (known: age, gender, emotion)"),
        ("face happy sad", "conflicting emotion values ['happy', 'sad']"),
        ("face smiley", "unknown word 'smiley'"),
        ("face crowd=yes", "crowd must be 0 or 1, got 'yes'"),
    ],
)
def test_labelme_invalid_attributes(tmp_path, convert, load_checked, capsys, label, problem):
    make_labelme(tmp_path)
    bad = labelme_doc("a.jpg", [shape("face", SQUARE), shape(label, SQUARE)])
    (tmp_path / "c.json").write_text(json.dumps(bad))
    out = tmp_path / "o.json"
    assert convert("labelme", tmp_path, "-o", out, "--strict") == 1
    assert f"{tmp_path / 'c.json'}: shape #1 ({label!r}): {problem}" in capsys.readouterr().err
    assert convert("labelme", tmp_path, "-o", out) == 0
    data = load_checked(out)
    assert data["info"]["skipped"] == {"invalid attributes": 1}
    assert len(data["annotations"]) == 4 + 1 + 1  # a.jpg, b.png and the valid face of c.json


def test_labelme_malformed_files(tmp_path, convert, load_checked):
    make_labelme(tmp_path)
    (tmp_path / "notes.json").write_text(json.dumps({"foo": 1}))
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "lost.json").write_text(json.dumps(labelme_doc("nowhere.jpg", [])))
    (tmp_path / "circle.json").write_text(json.dumps(labelme_doc("a.jpg", [shape("face", SQUARE[:2], "circle")])))
    (tmp_path / "wrong_size.json").write_text(json.dumps(labelme_doc("a.jpg", [], width=50)))
    out = tmp_path / "o.json"
    assert convert("labelme", tmp_path, "-o", out) == 0
    data = load_checked(out)
    assert data["info"]["skipped"] == {
        "image not found": 1,
        "image size mismatch": 1,
        "not a labelme file": 1,
        "unreadable JSON": 1,
        "unsupported shape type": 1,
        "image without a valid face record": 1,  # circle.json: its only face is malformed
    }
    # a.jpg and b.png; circle.json's image is dropped, not kept as a face-less negative
    assert len(data["images"]) == 2


def test_parse_face_words():
    expected = ({"age": 7.0, "emotion": "happy"}, False, ["unknown word 'F'"])  # bare F/M are ambiguous
    assert parse_face_words(["age=7", "F", "Happiness"]) == expected
    assert parse_face_words(["woman", "gender=female", "iscrowd"]) == ({"gender": "female"}, True, [])
    assert parse_face_words(["age=30", "age=31"])[2] == ["conflicting age values [30.0, 31.0]"]
