"""mediapipe auto-annotation on real public-domain faces (skimage astronaut, matplotlib Grace
Hopper), attribute copying, UTKFace auto masks and the missing-mediapipe error."""

import json
import shutil
import sys

import cv2
import matplotlib.cbook
import numpy as np
import pytest
import skimage.data

from maskface.data.converters.auto import chain_edges

pytest.importorskip("mediapipe")

# Face centres (x, y) in px of the two sample photos, checked by eye.
ASTRONAUT_CENTRE = (225, 125)
HOPPER_CENTRE = (262, 232)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "astronaut.png"), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), folder / "grace_hopper.jpg")
    cv2.imwrite(str(folder / "wall.png"), np.full((120, 160, 3), 127, np.uint8))
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def centre(bbox):
    return bbox[0] + bbox[2] / 2, bbox[1] + bbox[3] / 2


def test_auto(photos, tmp_path, convert, load_checked, faces_of):
    out = tmp_path / "auto.json"
    assert convert("auto", photos, "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert sorted(im["file_name"] for im in data["images"]) == ["astronaut.png", "grace_hopper.jpg", "wall.png"]
    assert data["info"]["skipped"] == {"unreadable image": 1}
    assert data["info"]["notes"] == {"image without a detected face": 1}
    assert faces_of(data, "wall.png") == []
    for name, expected in (("astronaut.png", ASTRONAUT_CENTRE), ("grace_hopper.jpg", HOPPER_CENTRE)):
        (face,) = faces_of(data, name)
        x, y = centre(face["bbox"])
        assert abs(x - expected[0]) < 25 and abs(y - expected[1]) < 25
        assert 60 < face["bbox"][2] < 250 and face["score"] >= 0.5
        (polygon,) = face["segmentation"]
        assert len(polygon) == 2 * 36  # the face-oval contour
        assert 0.6 * face["bbox"][2] * face["bbox"][3] < face["area"] < face["bbox"][2] * face["bbox"][3]


def test_auto_attributes_from(photos, tmp_path, convert, load_checked, faces_of):
    labelled = {
        "image_root": str(photos),
        "images": [{"id": 7, "file_name": "astronaut.png", "width": 512, "height": 512}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [175, 65, 100, 115], "area": 11500, "iscrowd": 0,
             "attributes": {"gender": "female", "emotion": "happy"}},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 50, 50], "area": 2500, "iscrowd": 0,
             "attributes": {"gender": "male"}},
        ],
        "categories": [{"id": 1, "name": "face"}],
    }  # fmt: skip
    source = tmp_path / "labelled.json"
    source.write_text(json.dumps(labelled))
    out = tmp_path / "auto.json"
    assert convert("auto", photos, "--attributes-from", source, "-o", out, "--no-progress", "--limit", "3") == 0
    data = load_checked(out)
    assert faces_of(data, "astronaut.png")[0]["attributes"] == {"gender": "female", "emotion": "happy"}
    assert "attributes" not in faces_of(data, "grace_hopper.jpg")[0]
    assert data["info"]["notes"] == {"attributes copied": 1, "no attribute match": 1}


def test_utkface_auto_masks(photos, tmp_path, convert, load_checked):
    hopper = cv2.imread(str(photos / "grace_hopper.jpg"))[100:400, 110:410]  # a 300 x 300 face crop
    cv2.imwrite(str(tmp_path / "79_1_0_20170120134639935.jpg.chip.jpg"), hopper)
    out = tmp_path / "utk.json"
    assert convert("utkface", tmp_path, "--masks", "auto", "-o", out, "--no-progress") == 0
    (face,) = load_checked(out)["annotations"]
    assert face["attributes"] == {"age": 79.0, "gender": "female"}
    assert len(face["segmentation"][0]) == 72 and face["bbox"][2] < 300  # the oval's box, not the crop


def test_missing_mediapipe_is_explained(photos, tmp_path, convert, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` raise ImportError
    assert convert("auto", photos, "-o", tmp_path / "auto.json") == 1
    assert "pip install -e .[annotate]" in capsys.readouterr().err
    assert not (tmp_path / "auto.json").exists()


def test_chain_edges():
    assert chain_edges([(2, 3), (0, 1), (3, 0), (1, 2)]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="several cycles"):
        chain_edges([(0, 1), (1, 2), (2, 0), (5, 6), (6, 7), (7, 5)])
    with pytest.raises(ValueError, match="closed contour"):
        chain_edges([(0, 1), (1, 2)])


def test_pad_finds_faces_that_fill_the_frame():
    """A tight crop (the face fills the frame, as in UTKFace) is found once a border is added, and
    the returned polygon is in the crop's own pixels."""
    from maskface.data.converters.auto import FaceOvalAnnotator

    x, y = ASTRONAUT_CENTRE
    crop = np.ascontiguousarray(skimage.data.astronaut()[y - 70 : y + 80, x - 65 : x + 65])  # 150 x 130
    with FaceOvalAnnotator(max_faces=1, score_thresh=0.3, pad=0.5) as annotator:
        faces = annotator(crop)
    assert len(faces) == 1
    poly = np.array(faces[0]["polygon"]).reshape(-1, 2)
    assert poly[:, 0].min() >= 0 and poly[:, 0].max() <= 130 and poly[:, 1].min() >= 0 and poly[:, 1].max() <= 150
    bx, by, bw, bh = faces[0]["bbox"]
    assert bw > 0.5 * 130 and bh > 0.5 * 150  # the face fills most of the crop
    with pytest.raises(ValueError, match="pad"):
        FaceOvalAnnotator(pad=-0.1)
