"""UTKFace converter: age / gender from names, whole-crop boxes, malformed names skipped."""

import re

import cv2
import numpy as np
import pytest

from maskface.data.converters.utkface import parse_utkface_name, parse_utkface_race

GOOD = {
    "26_1_0_20170116174525125.jpg.chip.jpg": (26.0, "female"),
    "1_0_2_20161219140530307.jpg.chip.jpg": (1.0, "male"),
    "100_1_0_20170110183726390.jpg.chip.jpg": (100.0, "female"),
    "40_0_7_20170110183726390.jpg.chip.jpg": (40.0, "male"),  # race 7: not a UTKFace code
}
RACES = {"26_1_0": "white", "1_0_2": "asian", "100_1_0": "white", "40_0_7": None}
BAD = (
    "61_1_20170109142408075.jpg.chip.jpg",  # race missing: 3 fields
    "39_3_1_20170116174525125.jpg.chip.jpg",  # gender 3
    "x_0_1_20170116174525125.jpg.chip.jpg",  # non-numeric age
)


@pytest.mark.parametrize(
    "name, message",
    [
        (BAD[0], "expected 4 fields age_gender_race_datetime, got 3"),
        (BAD[1], "gender must be 0 (male) or 1 (female), got '3'"),
        (BAD[2], "age must be a whole number of years in [0, 120], got 'x'"),
        ("200_0_0_20170116174525125.jpg.chip.jpg", "age must be a whole number of years in [0, 120], got '200'"),
    ],
)
def test_parse_utkface_name_errors(name, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_utkface_name(name)


def test_utkface(tmp_path, convert, load_checked, faces_of, caplog):
    folder = tmp_path / "crop_part1"
    folder.mkdir()
    for name in list(GOOD) + list(BAD):
        cv2.imwrite(str(folder / name), np.zeros((200, 180, 3), np.uint8))
    out = tmp_path / "utk.json"
    assert convert("utkface", folder, "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert len(data["images"]) == 4
    for name, (age, gender) in GOOD.items():
        (face,) = faces_of(data, name)
        assert face["attributes"] == {"age": age, "gender": gender}
        assert face["bbox"] == [0, 0, 180, 200] and "segmentation" not in face
        race = RACES["_".join(name.split("_")[:3])]
        assert face.get("groups") == ({"race": race} if race else None)
    assert data["info"]["notes"]["race field unreadable (face kept without a group)"] == 1
    assert data["info"]["skipped"] == {"malformed file name": 3}
    assert all(name in caplog.text for name in BAD)
    assert "identity" not in data["images"][0]


def test_utkface_strict(tmp_path, convert, capsys):
    cv2.imwrite(str(tmp_path / BAD[1]), np.zeros((20, 20, 3), np.uint8))
    assert convert("utkface", tmp_path, "-o", tmp_path / "o.json", "--strict") == 1
    assert f"{tmp_path / BAD[1]}: gender must be 0 (male) or 1 (female), got '3'" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_parse_utkface_race():
    assert [parse_utkface_race(f"30_0_{r}_2017.jpg.chip.jpg") for r in "012345"] == [
        "white", "black", "asian", "indian", "other", None]
    assert parse_utkface_race("61_1_20170109142408075.jpg.chip.jpg") is None
