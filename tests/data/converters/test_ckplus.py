"""CK+ converter: the emotion-folder copies (CK+48) and the original release (Emotion/ codes,
Landmarks/ boxes), contempt dropped or folded into disgust, subjects as identities for split."""

import json

import cv2
import numpy as np
import pytest

from maskface.data.converters.ckplus import CKPLUS_CODES, FOREHEAD, ckplus_emotion, read_emotion_code


def make_folders(root):
    """``root/<emotion>/S<subject>_<seq>_<frame>.png`` as in CK+48: anger 2 (subject S010, one
    sequence), sadness 1 (S011), contempt 1 (S010), happy 1 with a name that is not CK+'s."""
    files = {"anger": ["S010_004_00000017.png", "S010_004_00000018.png"], "sadness": ["S011_002_00000020.png"],
             "contempt": ["S010_002_00000014.png"], "happy": ["face.png"]}
    for emotion, names in files.items():
        (root / emotion).mkdir(parents=True)
        for k, name in enumerate(names):
            cv2.imwrite(str(root / emotion / name), np.full((48, 48), 40 + 30 * k, np.uint8))


def test_ckplus_folders(tmp_path, convert, load_checked, faces_of):
    make_folders(tmp_path / "CK+48")
    out = tmp_path / "ck.json"
    assert convert("ckplus", tmp_path / "CK+48", "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert len(data["images"]) == 3
    assert data["info"]["skipped"] == {"contempt (no MaskFace class)": 1, "file name without subject": 1}
    assert data["info"]["emotion_map"]["contempt"] is None and data["info"]["emotion_map"]["sadness"] == "sad"
    face = faces_of(data, "anger/S010_004_00000018.png")[0]
    assert face["attributes"] == {"emotion": "angry"} and face["bbox"] == [0, 0, 48, 48]
    assert faces_of(data, "sadness/S011_002_00000020.png")[0]["attributes"] == {"emotion": "sad"}
    by_name = {im["file_name"]: im for im in data["images"]}
    assert by_name["anger/S010_004_00000017.png"]["identity"] == "S010"
    assert by_name["anger/S010_004_00000017.png"]["sequence"] == "S010_004"

    # contempt kept as disgust
    assert convert("ckplus", tmp_path / "CK+48", "-o", out, "--contempt", "disgust", "--no-progress") == 0
    data = load_checked(out)
    assert faces_of(data, "contempt/S010_002_00000014.png")[0]["attributes"] == {"emotion": "disgust"}

    # a person never straddles the split
    assert convert("split", out, "--val-fraction", "0.5", "--seed", "1") == 0
    train = json.loads((tmp_path / "ck_train.json").read_text())
    val = json.loads((tmp_path / "ck_val.json").read_text())
    assert not {im["identity"] for im in train["images"]} & {im["identity"] for im in val["images"]}


def test_ckplus_strict_names_the_file(tmp_path, convert, capsys):
    make_folders(tmp_path / "ck")
    assert convert("ckplus", tmp_path / "ck", "-o", tmp_path / "o.json", "--strict", "--contempt", "disgust") == 1
    assert f"{tmp_path / 'ck' / 'happy' / 'face.png'}: expected a CK+ name" in capsys.readouterr().err


def _landmarks(x0, y0, size):
    """68 points on a ``size`` px square grid starting at (x0, y0), in the release's format."""
    t = np.linspace(0, size, 68)
    return "\n".join(f"   {x0 + a:.7e}   {y0 + b:.7e}" for a, b in zip(t, t[::-1])) + "\n"


def make_release(root):
    """The original layout: S005/001 (disgust, 3 frames, landmarks for all), S010/002 (contempt),
    S011/001 (a malformed emotion file), S012/001 (happy, 3 frames, its peak frame without
    landmarks)."""
    seqs = {("S005", "001"): ("3.0000000e+00", 3), ("S010", "002"): ("2.0000000e+00", 2),
            ("S011", "001"): ("9.0000000e+00", 2), ("S012", "001"): ("5.0000000e+00", 3)}
    for (subject, seq), (code, frames) in seqs.items():
        parts = ("cohn-kanade-images", "Emotion", "Landmarks")
        img_dir, emo_dir, lm_dir = (root / part / subject / seq for part in parts)
        for d in (img_dir, emo_dir, lm_dir):
            d.mkdir(parents=True)
        for k in range(1, frames + 1):
            stem = f"{subject}_{seq}_{k:08d}"
            cv2.imwrite(str(img_dir / f"{stem}.png"), np.full((490, 640), 100, np.uint8))
            if not (subject == "S012" and k == frames):
                (lm_dir / f"{stem}_landmarks.txt").write_text(_landmarks(200, 150, 200))
        (emo_dir / f"{subject}_{seq}_{frames:08d}_emotion.txt").write_text(f"   {code}\n")


def test_ckplus_release(tmp_path, convert, load_checked, faces_of):
    make_release(tmp_path / "CK+")
    out = tmp_path / "ck.json"
    assert convert("ckplus", tmp_path / "CK+", "-o", out, "--peak-frames", "2", "--neutral-first", "--no-progress") == 0
    data = load_checked(out)
    names = sorted(im["file_name"] for im in data["images"])
    assert names == [f"cohn-kanade-images/S005/001/S005_001_0000000{k}.png" for k in (1, 2, 3)] + \
        [f"cohn-kanade-images/S012/001/S012_001_0000000{k}.png" for k in (1, 2)]
    assert data["info"]["skipped"] == {"contempt (no MaskFace class)": 2, "malformed emotion file": 1,
                                       "no landmarks for the face box": 1}
    assert faces_of(data, "S005_001_00000001.png")[0]["attributes"] == {"emotion": "neutral"}
    face = faces_of(data, "S005_001_00000003.png")[0]
    assert face["attributes"] == {"emotion": "disgust"}
    assert face["bbox"] == [200.0, 150.0 - FOREHEAD * 200, 200.0, 200 * (1 + FOREHEAD)]
    # S012's peak frame has no landmarks (skipped); the frame before it and the first one stay
    assert faces_of(data, "S012_001_00000002.png")[0]["attributes"] == {"emotion": "happy"}
    assert faces_of(data, "S012_001_00000001.png")[0]["attributes"] == {"emotion": "neutral"}
    assert {im["identity"] for im in data["images"]} == {"S005", "S012"}


def test_ckplus_codes_and_errors(tmp_path):
    assert CKPLUS_CODES[2] == "contempt"
    assert [ckplus_emotion(CKPLUS_CODES[k]) for k in range(8)] == \
        ["neutral", "angry", None, "disgust", "fear", "happy", "sad", "surprise"]
    bad = tmp_path / "S1_001_00000001_emotion.txt"
    bad.write_text("happy\n")
    with pytest.raises(ValueError, match=f"{bad}:1: expected one emotion code 0..7"):
        read_emotion_code(bad)
    with pytest.raises(ValueError, match="contempt must be one of"):
        ckplus_emotion("anger", "neutral")
