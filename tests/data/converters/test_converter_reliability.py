"""Converter runs that used to lose data silently (issue 18): a run with no valid record, boxes
the loader rejects, images whose only face is malformed, non-UTF-8 bytes in a WIDER file."""

import json

import cv2
import numpy as np
import pytest
from test_cvat import make_cvat
from test_labelme import labelme_doc, shape
from test_wider import make_wider

OLD = '{"images": ["an earlier, good output"]}\n'


def _previous_output(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OLD)
    return path


# --- case 8: nothing valid -> exit 1, the existing output untouched ----------------------------------


def test_truncated_cvat_file_fails_and_keeps_output(tmp_path, convert, capsys):
    xml = make_cvat(tmp_path)
    xml.write_text(xml.read_text()[:200])  # cut in the middle of the first <image>
    out = _previous_output(tmp_path / "cvat.json")
    assert convert("cvat", xml, "--image-root", tmp_path, "-o", out, "--no-progress") == 1
    err = capsys.readouterr().err
    assert "no valid image record" in err and "invalid XML" in err and "left as it was" in err
    assert out.read_text() == OLD


def test_folder_of_broken_labelme_files_fails_and_keeps_output(tmp_path, convert, capsys):
    src = tmp_path / "labelme"
    src.mkdir()
    (src / "a.json").write_text("{")
    (src / "b.json").write_text(json.dumps({"no": "shapes"}))
    out = _previous_output(tmp_path / "out.json")
    assert convert("labelme", src, "-o", out, "--no-progress") == 1
    assert "no valid image record" in capsys.readouterr().err
    assert out.read_text() == OLD


@pytest.mark.parametrize("strict", [False, True])
def test_empty_wider_file_fails(tmp_path, convert, capsys, strict):
    gt = make_wider(tmp_path / "wider", gt_text="")
    out = tmp_path / "wider.json"
    argv = ["wider", gt, "--image-root", tmp_path / "wider" / "WIDER_val" / "images", "-o", out, "--no-progress"]
    assert convert(*argv, *(["--strict"] if strict else [])) == 1
    assert "no valid image record" in capsys.readouterr().err
    assert not out.exists()  # and nothing written when there was nothing before


# --- case 9: --strict rejects what the loader rejects ----------------------------------------------

NEGATIVE = """0--Parade/a.jpg
2
10 10 20 30 0 0 0 0 0 0
50 40 -10 10 0 0 0 0 0 0
"""


def test_wider_negative_width_is_malformed(tmp_path, convert, capsys, load_checked):
    gt = make_wider(tmp_path / "wider", gt_text=NEGATIVE)
    root = tmp_path / "wider" / "WIDER_val" / "images"
    out = tmp_path / "wider.json"
    assert convert("wider", gt, "--image-root", root, "-o", out, "--no-progress", "--strict") == 1
    assert f"{gt}:4: box width and height must be >= 0, got w=-10" in capsys.readouterr().err
    assert convert("wider", gt, "--image-root", root, "-o", out, "--no-progress") == 0
    data = load_checked(out)  # the loader (strict) accepts every face the converter kept
    assert [a["bbox"] for a in data["annotations"]] == [[10, 10, 20, 30]]
    assert data["images"][0]["malformed_faces"] == 1  # flagged: one of its faces is missing


def test_cvat_inverted_box_rejected_by_loader_rules(tmp_path, convert, capsys):
    """Any face the loader would reject (here a box with x2 < x1) stops a --strict run."""
    xml = make_cvat(tmp_path, xml="""<annotations><image id="0" name="imgs/a.jpg" width="100" height="80">
      <box label="face" xtl="60" ytl="20" xbr="40" ybr="50"/></image></annotations>""")
    out = tmp_path / "cvat.json"
    assert convert("cvat", xml, "--image-root", tmp_path, "-o", out, "--no-progress", "--strict") == 1
    assert "bbox has negative size" in capsys.readouterr().err and not out.exists()


# --- case 10: an image whose only face is malformed is dropped, not made a negative -----------------


def test_image_with_only_malformed_face_is_dropped(tmp_path, convert, load_checked, faces_of):
    gt = make_wider(tmp_path / "wider", gt_text="""0--Parade/a.jpg
1
10 10 20 x 0 0 0 0 0 0
0--Parade/b.jpg
0
0 0 0 0 0 0 0 0 0 0
0--Parade/c.jpg
1
5 5 10 10 0 0 0 0 0 0
""")
    out = tmp_path / "wider.json"
    root = tmp_path / "wider" / "WIDER_val" / "images"
    assert convert("wider", gt, "--image-root", root, "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert [im["file_name"] for im in data["images"]] == ["0--Parade/b.jpg", "0--Parade/c.jpg"]  # b: a real negative
    assert faces_of(data, "0--Parade/b.jpg") == []
    assert data["info"]["skipped"] == {"malformed line": 1, "image without a valid face record": 1}


def test_labelme_image_with_only_malformed_face_is_dropped(tmp_path, convert, load_checked):
    src = tmp_path / "labelme"
    src.mkdir()
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(src / name), np.zeros((80, 100, 3), np.uint8))
    (src / "a.json").write_text(json.dumps(labelme_doc("a.jpg", [shape("face", [[1, 1], [9, 9]], "line")])))
    (src / "b.json").write_text(json.dumps(labelme_doc("b.jpg", [shape("face", [[1, 1], [9, 9]], "rectangle")])))
    out = tmp_path / "out.json"
    assert convert("labelme", src, "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert [im["file_name"] for im in data["images"]] == ["b.jpg"]
    assert data["info"]["skipped"]["image without a valid face record"] == 1


# --- case 11: a non-UTF-8 byte names the file and line -------------------------------------------------


def test_wider_non_utf8_byte_names_file_and_line(tmp_path, convert, capsys, caplog, load_checked):
    gt = make_wider(tmp_path / "wider")
    lines = gt.read_bytes().split(b"\n")
    lines[2] = lines[2] + b" \xff"  # line 3: a.jpg's first face row
    gt.write_bytes(b"\n".join(lines))
    root = tmp_path / "wider" / "WIDER_val" / "images"
    out = tmp_path / "wider.json"
    assert convert("wider", gt, "--image-root", root, "-o", out, "--no-progress", "--strict") == 1
    assert f"{gt}:3: not UTF-8 text (byte 0xff at column 25)" in capsys.readouterr().err
    assert convert("wider", gt, "--image-root", root, "-o", out, "--no-progress") == 0  # the rest is converted
    assert f"{gt}:3: not UTF-8 text" in caplog.text
    data = load_checked(out)
    assert len(data["images"]) == 4 and len(data["annotations"]) == 4  # a.jpg keeps 2 of its 3 faces
