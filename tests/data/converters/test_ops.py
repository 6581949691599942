"""merge / split / stats: ids renumbered, image paths kept valid, identity-grouped seeded splits,
exact statistics."""

import json
import os
import re

import cv2
import numpy as np
import pytest

from maskface.data.converters.ops import compute_stats, split_coco


def write_dataset(folder, json_path, names, faces_per_image=1, identities=None, source="toy"):
    """Images ``names`` (40 x 30) under ``folder``; a COCO face file at ``json_path`` whose
    ``image_root`` is relative to it."""
    images, annotations = [], []
    for i, name in enumerate(names, start=1):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), np.zeros((30, 40, 3), np.uint8))
        image = {"id": 10 * i, "file_name": name, "width": 40, "height": 30}
        if identities:
            image["identity"] = identities[i - 1]
        images.append(image)
        for _ in range(faces_per_image):
            annotations.append(
                {"id": 100 + len(annotations), "image_id": 10 * i, "category_id": 1, "bbox": [1, 2, 10, 12],
                 "area": 120, "iscrowd": 0, "attributes": {"emotion": "fear"}}
            )  # fmt: skip
    json_path.parent.mkdir(parents=True, exist_ok=True)
    root = os.path.relpath(folder, json_path.parent)
    data = {"info": {"source": source}, "image_root": root, "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "face"}]}  # fmt: skip
    json_path.write_text(json.dumps(data))
    return data


def test_merge(tmp_path, convert, load_checked):
    a = tmp_path / "json" / "a.json"
    b = tmp_path / "elsewhere" / "b.json"
    write_dataset(tmp_path / "data" / "A", a, ["x.jpg", "y/z.jpg"], faces_per_image=2, source="set_a")
    write_dataset(tmp_path / "data" / "deep" / "B", b, ["x.jpg"], faces_per_image=1)
    out = tmp_path / "out" / "merged.json"
    assert convert("merge", a, b, "-o", out) == 0
    data = load_checked(out)  # every image still resolves
    assert data["image_root"] == str(tmp_path / "data")
    assert [im["file_name"] for im in data["images"]] == ["A/x.jpg", "A/y/z.jpg", "deep/B/x.jpg"]
    assert [im["id"] for im in data["images"]] == [1, 2, 3]
    assert [a["id"] for a in data["annotations"]] == [1, 2, 3, 4, 5]
    assert [a["image_id"] for a in data["annotations"]] == [1, 1, 2, 2, 3]
    assert [im["source"] for im in data["images"]] == ["set_a", "set_a", "toy"]
    assert data["info"]["merged_from"][0] == {"name": "a", "source": "set_a", "images": 2, "faces": 4}


def test_split_grouped_by_identity(tmp_path, convert, load_checked):
    names = [f"{k}.jpg" for k in range(40)]
    identities = [f"person{k % 13}" for k in range(30)] + [None] * 10  # 13 people + 10 unknown images
    path = tmp_path / "faces.json"
    write_dataset(tmp_path / "img", path, names, identities=identities)
    assert convert("split", path, "--val-fraction", "0.25", "--seed", "3") == 0
    train, val = load_checked(tmp_path / "faces_train.json"), load_checked(tmp_path / "faces_val.json")
    people = [{im.get("identity") for im in part["images"]} - {None} for part in (train, val)]
    assert people[0].isdisjoint(people[1]) and people[0] | people[1] == {f"person{k}" for k in range(13)}
    assert sorted(im["id"] for im in train["images"] + val["images"]) == [10 * i for i in range(1, 41)]
    assert 10 <= len(val["images"]) <= 12  # target 10, overshoot below the largest group (3)
    assert len(train["annotations"]) + len(val["annotations"]) == 40
    assert val["info"]["split"]["grouped_by_identity"] is True and "skipped" not in val["info"]

    data = json.loads(path.read_text())
    again = split_coco(data, 0.25, seed=3)[1]
    assert [im["id"] for im in again["images"]] == [im["id"] for im in val["images"]]  # seeded
    assert [im["id"] for im in split_coco(data, 0.25, seed=4)[1]["images"]] != [im["id"] for im in val["images"]]
    with pytest.raises(ValueError, match="val_fraction must be in"):
        split_coco(data, 1.0)


def test_stats(tmp_path, convert, capsys):
    boxes = [[0, 0, 4, 4], [0, 0, 20, 20], [0, 0, 40, 40], [0, 0, 300, 300], [0, 0, 8, 8]]
    faces = [
        {"bbox": boxes[0], "segmentation": [[0, 0, 4, 0, 4, 4]], "attributes": {"age": 4, "gender": "male"}},
        {"bbox": boxes[1], "segmentation": {"size": [400, 400], "counts": "x"}, "attributes": {"age": 70}},
        {"bbox": boxes[2], "attributes": {"emotion": "sad"}},
        {"bbox": boxes[3]},
        {"bbox": boxes[4], "iscrowd": 1},
    ]
    data = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 400, "height": 400} for i in (1, 2, 3)],
        "annotations": [{"id": k, "image_id": 1 if k < 4 else 2, "category_id": 1, **f} for k, f in enumerate(faces)],
        "categories": [{"id": 1, "name": "face"}],
        "info": {"skipped": {"malformed line": 2}},
    }
    stats = compute_stats(data)
    assert stats["images"] == 3 and stats["faces"] == 5 and stats["crowd_faces"] == 1
    assert stats["images_without_faces"] == 1
    assert stats["faces_per_image"] == {"0": 1, "1": 1, "2": 0, "3-5": 1, "6-10": 0, "11-50": 0, ">50": 0}
    assert list(stats["face_size"].values()) == [1, 1, 1, 0, 0, 1]  # crowd face not counted
    assert stats["masks"] == {"polygon": 1, "rle": 1, "total": 2, "fraction": 0.4}
    assert stats["attributes"]["age"]["count"] == 2 and stats["attributes"]["age"]["mean"] == 37.0
    assert stats["attributes"]["gender"]["values"] == {"female": 0, "male": 1}
    assert stats["attributes"]["emotion"]["fraction"] == 0.2

    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    assert convert("stats", path, "--json", tmp_path / "stats.json") == 0
    printed = capsys.readouterr().out
    assert re.search(r"\n  with mask +2 \(40\.0%\): 1 polygon, 1 RLE\n", printed)
    assert re.search(r"\nskipped records +2\n  malformed line +2\n", printed)
    assert json.loads((tmp_path / "stats.json").read_text()) == stats


def test_resize_scales_images_boxes_and_masks_and_resumes(tmp_path, convert, load_checked):
    from maskface.data.converters.common import mask_to_rle

    src = tmp_path / "json" / "a.json"
    data = write_dataset(tmp_path / "data", src, ["x.jpg", "sub/y.png"], faces_per_image=1)
    mask = np.zeros((30, 40), bool)
    mask[2:14, 1:11] = True  # the face box [1, 2, 10, 12]
    data["annotations"][1]["segmentation"] = mask_to_rle(mask)
    src.write_text(json.dumps(data))
    out, images = tmp_path / "out" / "a_x1.6.json", tmp_path / "big"
    assert convert("resize", src, "--factor", "1.6", "--image-dir", images, "-o", out, "--no-progress") == 0
    big = load_checked(out)
    assert [(im["width"], im["height"]) for im in big["images"]] == [(64, 48), (64, 48)]
    assert cv2.imread(str(images / "sub" / "y.png")).shape == (48, 64, 3)
    assert big["annotations"][0]["bbox"] == pytest.approx([1.6, 3.2, 16, 19.2])
    assert big["annotations"][0]["attributes"] == {"emotion": "fear"}  # other fields kept
    from pycocotools import mask as mask_utils

    m = mask_utils.decode(big["annotations"][1]["segmentation"])
    assert m.shape == (48, 64) and abs(int(m.sum()) - 120 * 1.6 * 1.6) < 30
    assert big["annotations"][1]["area"] == float(m.sum())
    stamp = (images / "x.jpg").stat().st_mtime_ns
    assert convert("resize", src, "--factor", "1.6", "--image-dir", images, "-o", out, "--no-progress") == 0
    assert (images / "x.jpg").stat().st_mtime_ns == stamp  # images of the right size are reused
    assert convert("resize", src, "--factor", "0", "--image-dir", images, "-o", out) == 1
    (tmp_path / "data" / "x.jpg").write_bytes(b"junk")
    (images / "x.jpg").unlink()
    assert convert("resize", src, "--factor", "2", "--image-dir", images, "-o", tmp_path / "o2.json") == 1
