"""WIDER FACE converter: faces and flags as listed, crowd rules, negatives, malformed lines."""

import re

import cv2
import numpy as np
import pytest

GT = """0--Parade/a.jpg
3
10 10 20 30 2 0 0 0 1 0
50 40 10 10 0 1 0 1 0 0
90 70 20 20 0 0 0 0 0 0
0--Parade/b.jpg
0
0 0 0 0 0 0 0 0 0 0
0--Parade/c.jpg
1
0 0 0 0 0 0 0 0 0 0
1--Handshaking/d.jpg
2
5 5 0 4 0 0 0 0 0 0
30.5 20.5 12.25 14.5 0 0 2 0 0 1
"""


def make_wider(root, gt_text=GT):
    """WIDER layout under ``root``: four 100 x 80 images and the val gt file."""
    for name in ("0--Parade/a.jpg", "0--Parade/b.jpg", "0--Parade/c.jpg", "1--Handshaking/d.jpg"):
        path = root / "WIDER_val" / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((80, 100, 3), 128, np.uint8))
    gt = root / "wider_face_split" / "wider_face_val_bbx_gt.txt"
    gt.parent.mkdir(parents=True, exist_ok=True)
    gt.write_text(gt_text)
    return gt


def test_wider_faces_flags_and_negatives(tmp_path, convert, load_checked, faces_of):
    make_wider(tmp_path / "wider")
    out = tmp_path / "out" / "wider_val.json"
    assert convert("wider", tmp_path / "wider", "--split", "val", "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert len(data["images"]) == 4 and len(data["annotations"]) == 5  # dummy zero rows are no faces
    a = faces_of(data, "0--Parade/a.jpg")
    assert [f["bbox"] for f in a] == [[10, 10, 20, 30], [50, 40, 10, 10], [90, 70, 10, 10]]  # last one clipped
    assert [f["iscrowd"] for f in a] == [0, 1, 0]  # invalid=1 -> crowd
    flags = {"blur": 2, "expression": 0, "illumination": 0, "invalid": 0, "occlusion": 1, "pose": 0}
    assert a[0]["wider_flags"] == flags
    assert all("segmentation" not in f and "attributes" not in f for f in data["annotations"])
    assert faces_of(data, "b.jpg") == [] and faces_of(data, "c.jpg") == []
    d = faces_of(data, "d.jpg")
    assert d[0]["iscrowd"] == 1 and d[0]["bbox"][2] == 0  # zero-size box kept as crowd
    assert d[1]["bbox"] == [30.5, 20.5, 12.25, 14.5] and d[1]["area"] == pytest.approx(12.25 * 14.5, abs=0.01)
    assert data["info"]["notes"] == {
        "all-zero face row read as the 0-face marker": 1,  # c.jpg: count 1, but an all-zero row
        "box clipped to image": 1,
        "zero-size box kept as iscrowd=1": 1,
    }
    assert data["info"]["skipped"] == {}
    assert data["image_root"] == str((tmp_path / "wider" / "WIDER_val" / "images").resolve())


def test_wider_gt_file_input_needs_image_root(tmp_path, convert, load_checked, capsys):
    gt = make_wider(tmp_path)
    out = tmp_path / "w.json"
    assert convert("wider", gt, "-o", out) == 1
    assert "--image-root is required" in capsys.readouterr().err
    assert convert("wider", gt, "--image-root", tmp_path / "WIDER_val" / "images", "-o", out, "--limit", "1") == 0
    data = load_checked(out)
    assert len(data["images"]) == 1 and len(data["annotations"]) == 3


def test_wider_malformed_face_line(tmp_path, convert, load_checked, capsys, caplog):
    gt = make_wider(tmp_path, GT.replace("10 10 20 30 2 0 0 0 1 0", "10 10 20 30 2 0 0"))
    out = tmp_path / "out.json"
    out.write_text("previous output")
    assert convert("wider", tmp_path, "-o", out, "--strict", "--no-progress") == 1
    assert f"{gt}:3: expected 10 numbers per face line, got 7" in capsys.readouterr().err
    assert out.read_text() == "previous output"  # atomic: the failed run left the old file alone
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["out.json"]  # no temp file left

    assert convert("wider", tmp_path, "-o", out, "--no-progress") == 0
    assert f"{gt}:3: expected 10 numbers per face line, got 7 (skipped)" in caplog.text
    assert re.search(r"skipped records +1\n +malformed line +1\n", capsys.readouterr().out)  # summary by reason
    data = load_checked(out)
    assert len(data["annotations"]) == 4
    assert data["info"]["skipped"] == {"malformed line": 1}


def test_wider_bad_count_line_resyncs(tmp_path, convert, load_checked, caplog):
    gt = make_wider(tmp_path, GT.replace("0--Parade/a.jpg\n3\n", "0--Parade/a.jpg\nthree\n"))
    out = tmp_path / "out.json"
    assert convert("wider", tmp_path, "-o", out, "--no-progress") == 0
    assert f"{gt}:2: expected the face count of 0--Parade/a.jpg, got 'three' (skipped)" in caplog.text
    data = load_checked(out)
    assert len(data["images"]) == 3 and len(data["annotations"]) == 2  # a.jpg skipped, the rest intact
    assert data["info"]["skipped"] == {"malformed line": 1}
