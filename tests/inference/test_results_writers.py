"""Face / ImageResult schema and the JSON, JSON-lines, CSV and COCO writers (round trips)."""

import csv
import json

import numpy as np
import pytest

from maskface.data.attributes import EMOTIONS
from maskface.inference.results import Face, ImageResult, age_to_group, rle_to_mask, validate_face_dict
from maskface.inference.writers import (
    CSV_COLUMNS,
    JsonlWriter,
    read_jsonl,
    write_coco_results,
    write_results_csv,
    write_results_json,
)


def _face(h=40, w=50, seed=0, attrs=True, track_id=None):
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), bool)
    mask[5:20, 10:30] = rng.random((15, 20)) > 0.3
    f = Face(box=[10.0, 5.0, 30.0, 20.0], score=0.9, mask=mask, track_id=track_id)
    if attrs:
        probs = rng.dirichlet(np.ones(len(EMOTIONS)))
        f.set_attributes({"age": 31.4, "age_std": 3.2, "gender": "female", "gender_prob": 0.8,
                          "emotion": EMOTIONS[int(probs.argmax())],
                          "emotion_probs": dict(zip(EMOTIONS, probs.tolist()))})
    return f


def _records():
    return [
        ImageResult("a.jpg", 50, 40, None, [_face(seed=1), _face(seed=2, attrs=False)]),
        ImageResult("clip.mp4", 50, 40, 3, [_face(seed=3, track_id=7)]),
        ImageResult("empty.png", 50, 40, None, []),
    ]


def test_face_to_dict_schema_and_round_trip():
    f = _face()
    d = f.to_dict()
    assert validate_face_dict(d) == []
    assert set(d) == {"box", "score", "mask", "age", "age_std", "age_group", "age_group_top", "gender",
                      "gender_prob", "emotion", "emotion_probs", "track_id"}
    assert isinstance(d["mask"]["counts"], str) and d["mask"]["size"] == [40, 50]
    assert d["age_group"] == "25-32"
    json.dumps(d)  # JSON-ready
    back = Face.from_dict(json.loads(json.dumps(d)))
    assert np.array_equal(back.mask, f.mask)
    assert back.box == pytest.approx(f.box) and back.gender == "female" and back.age == pytest.approx(31.4)
    assert np.array_equal(rle_to_mask(d["mask"]), f.mask)
    lazy = Face.from_dict(d, decode_mask=False)
    assert lazy.mask is None and lazy.mask_area == int(f.mask.sum()) and lazy.rle() == d["mask"]


def test_face_without_attributes_and_label():
    f = _face(attrs=False)
    d = f.to_dict()
    assert all(d[k] is None for k in ("age", "age_std", "age_group", "gender", "gender_prob", "emotion",
                                      "emotion_probs", "track_id"))
    assert f.label() == "0.90"
    g = _face(track_id=3)
    assert g.label().startswith("#3 F 31y ")
    with pytest.raises(ValueError):
        Face(box=[1, 2, 3], score=1.0)


def test_age_groups():
    assert age_to_group(1) == "0-2"
    assert age_to_group(3) == "0-2"  # tie -> younger
    assert age_to_group(3.2) == "4-6"
    assert age_to_group(35) == "25-32"
    assert age_to_group(130) == "60-100"
    assert age_to_group(None) is None


def test_results_json_round_trip(tmp_path):
    recs = _records()
    p = tmp_path / "results.json"
    n = write_results_json(p, iter(recs), [{"file": "bad.jpg", "error": "corrupt"}], model={"name": "x"})
    assert n == 3
    data = json.loads(p.read_text())
    assert data["model"] == {"name": "x"} and data["errors"] == [{"file": "bad.jpg", "error": "corrupt"}]
    back = [ImageResult.from_dict(d) for d in data["images"]]
    assert [(b.file, b.frame, len(b.faces)) for b in back] == [
        ("a.jpg", None, 2), ("clip.mp4", 3, 1), ("empty.png", None, 0)]
    assert np.array_equal(back[0].faces[0].mask, recs[0].faces[0].mask)
    assert back[1].faces[0].track_id == 7
    # no temp files left behind
    assert sorted(x.name for x in tmp_path.iterdir()) == ["results.json"]


def test_csv(tmp_path):
    recs = _records()
    p = tmp_path / "results.csv"
    assert write_results_csv(p, recs) == 3
    rows = list(csv.DictReader(p.open()))
    assert list(rows[0].keys()) == CSV_COLUMNS
    assert rows[0]["file"] == "a.jpg" and rows[0]["frame"] == "" and rows[0]["face_index"] == "0"
    assert int(rows[0]["mask_area"]) == int(recs[0].faces[0].mask.sum())
    assert float(rows[0]["p_happy"]) == pytest.approx(recs[0].faces[0].emotion_probs["happy"], abs=1e-4)
    assert rows[1]["age"] == "" and rows[1]["p_sad"] == ""
    assert rows[2]["frame"] == "3" and rows[2]["track_id"] == "7"
    # dict records (as read back from JSON) give the same rows
    p2 = tmp_path / "r2.csv"
    write_results_csv(p2, [r.to_dict() for r in recs])
    assert p2.read_text() == p.read_text()


def test_coco_results_load_with_pycocotools(tmp_path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    recs = _records()
    rp, ip = tmp_path / "coco_results.json", tmp_path / "coco_images.json"
    assert write_coco_results(rp, ip, recs) == 3
    gt = COCO(str(ip))
    dt = gt.loadRes(str(rp))
    anns = dt.loadAnns(dt.getAnnIds(imgIds=[1]))
    assert len(anns) == 2
    m = dt.annToMask(anns[0]).astype(bool)
    assert np.array_equal(m, recs[0].faces[0].mask)
    assert anns[0]["attributes"]["gender"] == "female" and anns[0]["bbox"] == pytest.approx([10, 5, 20, 15])
    imgs = json.loads(ip.read_text())["images"]
    assert [(i["id"], i["file_name"], i["frame"]) for i in imgs] == [(1, "a.jpg", None), (2, "clip.mp4", 3),
                                                                      (3, "empty.png", None)]
    assert mask_utils.area(anns[0]["segmentation"]) == recs[0].faces[0].mask.sum()
    # ids from a ground-truth file
    write_coco_results(rp, ip, recs, image_ids={"a.jpg": 10, "clip.mp4#3": 11})
    assert [i["id"] for i in json.loads(ip.read_text())["images"]] == [10, 11, 1]


def test_jsonl_cut_line_is_dropped_on_append(tmp_path):
    p = tmp_path / "r.jsonl"
    with JsonlWriter(p, append=False) as w:
        w.write(_records()[0])
        w.write({"file": "x", "error": "boom"})
    with open(p, "a") as f:
        f.write('{"file": "half-writ')  # a crash mid-line
    assert len(list(read_jsonl(p))) == 2
    with JsonlWriter(p, append=True) as w:
        w.write({"file": "y", "error": "later"})
    rows = list(read_jsonl(p))
    assert [r["file"] for r in rows] == ["a.jpg", "x", "y"]
