"""UTKFace converter: age / gender from names, whole-crop boxes, malformed names skipped."""

import json
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


def _face_like(seed, size=128):
    """A smooth random grey picture (different seeds: uncorrelated thumbnails)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def test_utkface_twins_share_an_identity_and_split_together(tmp_path, convert, load_checked):
    """A face stored twice (re-encoded, resized, other labels) gets one identity; split keeps the
    pair on one side for every seed; unrelated faces get none."""
    folder = tmp_path / "aligned"
    folder.mkdir()
    twin = _face_like(0)
    cv2.imwrite(str(folder / "30_0_0_20170101000000001.jpg.chip.jpg"), twin)
    # the same picture, JPEG-recompressed at another size and slightly brighter, labelled otherwise
    cv2.imwrite(str(folder / "34_1_0_20170101000000002.jpg.chip.jpg"), np.clip(cv2.resize(twin, (200, 200)) * 0.9 + 20, 0, 255).astype(np.uint8),
                [cv2.IMWRITE_JPEG_QUALITY, 60])
    for k in range(10):
        cv2.imwrite(str(folder / f"{20 + k}_0_1_2017010100000010{k}.jpg.chip.jpg"), _face_like(100 + k))
    out = tmp_path / "utk.json"
    assert convert("utkface", folder, "-o", out, "--no-progress") == 0
    data = load_checked(out)
    identities = {im["file_name"].split("_")[0]: im.get("identity") for im in data["images"]}
    assert identities["30"] == identities["34"] == "twin:30_0_0_20170101000000001.jpg.chip.jpg"
    assert sum(v is not None for v in identities.values()) == 2
    assert data["info"]["notes"]["near-duplicate of another image (shared identity)"] == 2
    for seed in range(6):
        assert convert("split", out, "--val-fraction", "0.3", "--seed", seed, "--train", tmp_path / "t.json",
                       "--val", tmp_path / "v.json") == 0
        sides = [{im["file_name"][:2] for im in load_checked(tmp_path / f"{s}.json")["images"]} for s in "tv"]
        assert ({"30", "34"} <= sides[0]) or ({"30", "34"} <= sides[1])

    assert convert("utkface", folder, "-o", out, "--no-progress", "--no-twins") == 0
    assert all("identity" not in im for im in load_checked(out)["images"])


def test_near_duplicate_groups_threshold(tmp_path):
    from maskface.data.converters.common import near_duplicate_groups

    a, b = _face_like(1), _face_like(2)
    paths = []
    for i, img in enumerate([a, b, a, np.full((64, 64), 128, np.uint8), a[:, ::-1]]):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), img)
    paths.append(tmp_path / "missing.png")
    assert near_duplicate_groups(paths) == [[0, 2]]  # flat, mirrored, unreadable: no match
    assert near_duplicate_groups(paths, block=1) == [[0, 2]]
    with pytest.raises(ValueError, match="threshold"):
        near_duplicate_groups(paths, threshold=0)


def test_split_keep_val_moves_straddling_twins_to_train(tmp_path, convert, load_checked):
    """After twins are found in a file that was split before, --keep-val keeps the old val images
    except those whose twin was in train."""
    folder = tmp_path / "utk"
    folder.mkdir()
    twin = _face_like(0)
    cv2.imwrite(str(folder / "30_0_0_20170101000000001.jpg.chip.jpg"), twin)
    cv2.imwrite(str(folder / "31_0_0_20170101000000002.jpg.chip.jpg"), twin)
    for k in range(8):
        cv2.imwrite(str(folder / f"{40 + k}_1_1_2017010100000010{k}.jpg.chip.jpg"), _face_like(200 + k))
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    assert convert("utkface", folder, "-o", before, "--no-twins", "--no-progress") == 0
    old = load_checked(before)
    # the old split: val = one twin and three others
    val_names = {"31_0_0_20170101000000002.jpg.chip.jpg", "40_1_1_20170101000000100.jpg.chip.jpg",
                 "41_1_1_20170101000000101.jpg.chip.jpg", "42_1_1_20170101000000102.jpg.chip.jpg"}
    old_val = dict(old, images=[im for im in old["images"] if im["file_name"] in val_names])
    old_val["annotations"] = [a for a in old["annotations"] if a["image_id"] in {im["id"] for im in old_val["images"]}]
    (tmp_path / "old_val.json").write_text(json.dumps(old_val))
    assert convert("utkface", folder, "-o", after, "--no-progress") == 0
    assert convert("split", after, "--keep-val", tmp_path / "old_val.json", "--train", tmp_path / "t.json",
                   "--val", tmp_path / "v.json") == 0
    val = {im["file_name"] for im in load_checked(tmp_path / "v.json")["images"]}
    train = {im["file_name"] for im in load_checked(tmp_path / "t.json")["images"]}
    assert val == val_names - {"31_0_0_20170101000000002.jpg.chip.jpg"}
    assert len(train) == 7 and not (train & val)
