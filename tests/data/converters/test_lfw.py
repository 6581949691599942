"""LFW funneled converter: gender from LFW's name lists (with their quirks), held-out people,
person-grouped split, bad files reported and skipped."""

import json

import cv2
import numpy as np
import pytest

from maskface.data.converters.lfw import FACE_PRIOR, gender_from_lists, read_name_list

PEOPLE = {"Ann_Lee": 3, "Bob_Stone": 2, "Cy_Young": 1, "Dee_Dee": 2, "Held_Out": 2}


def make_lfw(root):
    """An LFW funneled tree (``<Name>/<Name>_<NNNN>.jpg``, 250 px) plus the two name lists, written
    the way the published ones are: one file name a line, a CRLF line end, a name without .jpg,
    a name with a stray character, a name on both lists. Returns ``(folder, female, male, heldout)``."""
    folder = root / "lfw_funneled"
    for person, n in PEOPLE.items():
        (folder / person).mkdir(parents=True)
        for k in range(1, n + 1):
            cv2.imwrite(str(folder / person / f"{person}_{k:04d}.jpg"), np.full((250, 250, 3), 40 * k, np.uint8))
    (folder / "pairs.txt").write_text("10\t300\n")  # the release's pair lists sit next to the folders
    female, male, heldout = root / "female_names.txt", root / "male_names.txt", root / "heldout_persons.txt"
    female.write_text("Dee_Dee_0001.jpg\r\nAnn_Lee_0001.jpg\r\nAnn_Lee_0002\r\nAnn_Lee_0003.jpg\r\n"
                      "Held_Out_0001.jpg\r\nHeld_Out_0002.jpg\r\n")
    male.write_text("Bob_Stone_0001.jpg\nBob_Stone_0002.jpg\nCy_Young_0001.jpg-\nDee_Dee_0001.jpg\n"
                    "Dee_Dee_0002.jpg\n\n")
    heldout.write_text("Held_Out\nNot_In_This_Copy\n")
    return folder, female, male, heldout


def test_read_name_list_reports_quirks(tmp_path):
    _, female, male, _ = make_lfw(tmp_path)
    names, problems = read_name_list(female)
    assert names == ["Dee_Dee_0001.jpg", "Ann_Lee_0001.jpg", "Ann_Lee_0002.jpg", "Ann_Lee_0003.jpg",
                     "Held_Out_0001.jpg", "Held_Out_0002.jpg"]
    assert problems == [f"{female}:3: 'Ann_Lee_0002' has no extension; read as Ann_Lee_0002.jpg"]
    names, problems = read_name_list(male)
    assert "Cy_Young_0001.jpg" not in names and len(names) == 4
    assert problems == [f"{male}:3: 'Cy_Young_0001.jpg-' is no LFW file name <Name>_<NNNN>.jpg (ignored)"]
    genders, both = gender_from_lists(["a_0001.jpg", "b_0001.jpg"], ["b_0001.jpg", "c_0001.jpg"])
    assert genders == {"a_0001.jpg": "female", "c_0001.jpg": "male"} and both == {"b_0001.jpg"}


def test_lfw_gender_heldout_and_split(tmp_path, convert, load_checked, faces_of):
    folder, female, male, heldout = make_lfw(tmp_path)
    out = tmp_path / "lfw.json"
    lists = ["--female-names", female, "--male-names", male]
    assert convert("lfw", tmp_path, "-o", out, *lists, "--heldout-persons", heldout, "--no-progress") == 0
    data = load_checked(out)
    assert data["image_root"] == str(folder)
    assert {im["identity"] for im in data["images"]} == {"Ann_Lee", "Bob_Stone", "Cy_Young", "Dee_Dee"}
    assert len(data["images"]) == len(data["annotations"]) == 8
    assert faces_of(data, "Ann_Lee/Ann_Lee_0002.jpg")[0]["attributes"] == {"gender": "female"}
    assert faces_of(data, "Bob_Stone_0001.jpg")[0]["attributes"] == {"gender": "male"}
    for name in ("Cy_Young_0001.jpg", "Dee_Dee_0001.jpg"):  # a bad list line; on both lists
        assert not faces_of(data, name)[0].get("attributes")
    (face,) = faces_of(data, "Dee_Dee_0002.jpg")
    x0, y0, x1, y1 = FACE_PRIOR
    assert face["bbox"] == pytest.approx([x0 * 250, y0 * 250, (x1 - x0) * 250, (y1 - y0) * 250], abs=0.01)
    assert "segmentation" not in face
    info = data["info"]
    assert info["skipped"] == {"bad name-list line": 1}
    assert info["notes"] == {"file name on both gender lists (no gender)": 1, "name-list line without .jpg": 1,
                             "no gender on the name lists": 2}

    test = tmp_path / "lfw_heldout.json"
    assert convert("lfw", folder, "-o", test, *lists, "--heldout-persons", heldout, "--heldout", "only",
                   "--no-progress") == 0
    assert {im["identity"] for im in load_checked(test)["images"]} == {"Held_Out"}

    assert convert("split", out, "--val-fraction", "0.3", "--seed", "0") == 0
    parts = [json.loads((tmp_path / f"lfw_{s}.json").read_text()) for s in ("train", "val")]
    people = [{im["identity"] for im in p["images"]} for p in parts]
    assert people[0] and people[1] and not people[0] & people[1]  # no person on both sides
    assert sum(len(p["images"]) for p in parts) == 8


def test_lfw_bad_files_reported_and_skipped(tmp_path, convert, load_checked, capsys, caplog):
    folder, female, male, _ = make_lfw(tmp_path)
    bad = folder / "Bob_Stone" / "Bob_Stone_0002.jpg"
    bad.write_bytes(b"not a jpeg")
    (folder / "Bob_Stone" / "Someone_Else_0001.jpg").write_bytes(bad.read_bytes())
    out = tmp_path / "lfw.json"
    assert convert("lfw", folder, "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert len(data["images"]) == 9 and all(not a.get("attributes") for a in data["annotations"])
    assert data["info"]["skipped"] == {"file name not <Name>_<NNNN>.jpg of its folder": 1, "unreadable image": 1}
    assert str(bad) in caplog.text and "Someone_Else_0001.jpg" in caplog.text
    assert convert("lfw", folder, "-o", tmp_path / "strict.json", "--strict", "--no-progress") == 1
    assert "Bob_Stone_0002.jpg" in capsys.readouterr().err and not (tmp_path / "strict.json").exists()
    assert convert("lfw", tmp_path / "nowhere", "-o", out) == 1
    assert "nowhere: folder not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert("lfw", folder, "-o", out, "--heldout", "sometimes")
    assert convert("lfw", folder, "-o", out, "--female-names", female) == 1
    assert "both female_names and male_names" in capsys.readouterr().err
