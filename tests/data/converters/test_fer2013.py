"""FER2013 converter: image folders and the original CSV (label order, Usage filter, resume)."""

import cv2
import numpy as np
import pytest

from maskface.data.converters.fer2013 import CSV_EMOTIONS


def make_folders(root):
    """``root/<split>/<emotion>/``: train happy 2, train Sadness 1 (a synonym), train contempt 1
    (unknown), test neutral 1."""
    layout = {("train", "happy"): 2, ("train", "Sadness"): 1, ("train", "contempt"): 1, ("test", "neutral"): 1}
    for (split, emotion), count in layout.items():
        (root / split / emotion).mkdir(parents=True)
        for k in range(count):
            cv2.imwrite(str(root / split / emotion / f"{k}.jpg"), np.full((48, 48), 30 * k, np.uint8))


def test_fer2013_folders(tmp_path, convert, load_checked, faces_of):
    make_folders(tmp_path / "fer")
    out = tmp_path / "fer.json"
    assert convert("fer2013", tmp_path / "fer", "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert len(data["images"]) == 4 and len(data["annotations"]) == 4
    assert data["info"]["skipped"] == {"unknown emotion folder": 1}
    assert faces_of(data, "train/happy/1.jpg")[0]["attributes"] == {"emotion": "happy"}
    assert faces_of(data, "train/Sadness/0.jpg")[0]["attributes"] == {"emotion": "sad"}
    assert faces_of(data, "test/neutral/0.jpg")[0]["bbox"] == [0, 0, 48, 48]
    assert {im["split"] for im in data["images"]} == {"train", "test"}

    # One split folder given directly, as in the shared data: <root>/<emotion>/.
    assert convert("fer2013", tmp_path / "fer" / "train", "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert len(data["images"]) == 3 and {im["split"] for im in data["images"]} == {"train"}
    assert all(a["attributes"]["emotion"] in ("happy", "sad") for a in data["annotations"])

    assert convert("fer2013", tmp_path / "fer", "--split", "test", "-o", out) == 0
    assert len(load_checked(out)["images"]) == 1


def test_fer2013_unknown_folder_strict(tmp_path, convert, capsys):
    make_folders(tmp_path)
    assert convert("fer2013", tmp_path, "-o", tmp_path / "o.json", "--strict") == 1
    assert f"{tmp_path / 'train' / 'contempt'}: unknown emotion folder 'contempt' (1 images)" in capsys.readouterr().err


def write_csv(path, rows):
    lines = ["emotion,pixels,Usage"] + [f"{e},{p},{u}" for e, p, u in rows]
    path.write_text("\n".join(lines) + "\n")


def pixels(value):
    return " ".join([str(value)] * 48 * 48)


def test_fer2013_csv(tmp_path, convert, load_checked):
    assert CSV_EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    csv_file = tmp_path / "fer2013.csv"
    rows = [(4, pixels(10), "Training"), (6, pixels(20), "PublicTest"), (0, pixels(30), "PrivateTest")]
    write_csv(csv_file, rows + [(5, pixels(40), "Training")])
    out = tmp_path / "out" / "fer.json"
    assert convert("fer2013", csv_file, "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert [a["attributes"]["emotion"] for a in data["annotations"]] == ["sad", "neutral", "angry", "surprise"]
    assert [im["split"] for im in data["images"]] == ["Training", "PublicTest", "PrivateTest", "Training"]
    first = tmp_path / "out" / "fer2013_images" / "Training" / "fer2013_00000.png"
    assert data["images"][0]["file_name"] == "Training/fer2013_00000.png"
    image = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
    assert image.shape == (48, 48) and (image == 10).all()

    # Resume: existing PNGs are kept as they are; --usage filters rows.
    cv2.imwrite(str(first), np.full((48, 48), 99, np.uint8))
    assert convert("fer2013", csv_file, "--usage", "Training", "-o", out, "--no-progress") == 0
    data = load_checked(out)
    assert [im["file_name"] for im in data["images"]] == ["Training/fer2013_00000.png", "Training/fer2013_00003.png"]
    assert (cv2.imread(str(first), cv2.IMREAD_UNCHANGED) == 99).all()


@pytest.mark.parametrize(
    "row, message",
    [
        ((7, pixels(1), "Training"), "emotion must be an integer 0..6, got '7'"),
        ((3, "1 2 3", "Training"), "expected 2304 pixel values, got 3"),
        ((3, pixels(256), "Training"), "pixel values must be integers 0..255"),
    ],
)
def test_fer2013_csv_malformed_row(tmp_path, convert, load_checked, capsys, caplog, row, message):
    csv_file = tmp_path / "fer2013.csv"
    write_csv(csv_file, [(3, pixels(1), "Training"), row])
    out = tmp_path / "fer.json"
    assert convert("fer2013", csv_file, "-o", out, "--strict") == 1
    assert f"{csv_file}:3: {message}" in capsys.readouterr().err
    assert not out.exists()
    assert convert("fer2013", csv_file, "-o", out) == 0
    assert f"{csv_file}:3: {message} (skipped)" in caplog.text
    data = load_checked(out)
    assert len(data["images"]) == 1 and data["info"]["skipped"] == {"malformed row": 1}


FERPLUS_HEADER = "jpg,fer2013_label,ferplus_png,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


def test_fer2013_ferplus_votes(tmp_path, convert, load_checked, faces_of, capsys):
    make_folders(tmp_path / "fer")
    votes = tmp_path / "ferplus_votes.csv"
    votes.write_text(FERPLUS_HEADER + "\nhappy/0.jpg,happy,fer0000001.png,2,7,0,0,0,0,0,1,0,0\n"
                     "Sadness/0.jpg,sad,fer0000002.png,0,0,0,6,0,0,0,0,2,2\n")
    out = tmp_path / "fer.json"
    assert convert("fer2013", tmp_path / "fer" / "train", "-o", out, "--ferplus-votes", votes, "--no-progress") == 0
    data = load_checked(out)
    (happy,) = faces_of(data, "happy/0.jpg")
    assert happy["attributes"]["emotion"] == "happy"
    assert happy["attributes"]["emotion_votes"] == {"neutral": 2, "happy": 7, "surprise": 0, "sad": 0, "angry": 0,
                                                    "disgust": 0, "fear": 0, "contempt": 1, "unknown": 0,
                                                    "not_face": 0}
    assert faces_of(data, "Sadness/0.jpg")[0]["attributes"]["emotion_votes"]["not_face"] == 2
    assert "emotion_votes" not in faces_of(data, "happy/1.jpg")[0]["attributes"]
    assert data["info"]["notes"]["no FER+ votes (label only)"] == 1

    votes.write_text(FERPLUS_HEADER + "\nhappy/0.jpg,happy,fer0000001.png,2,x,0,0,0,0,0,1,0,0\n")
    assert convert("fer2013", tmp_path / "fer" / "train", "-o", tmp_path / "b.json", "--ferplus-votes", votes) == 1
    assert f"{votes}:2: vote 'happiness' must be a whole number >= 0, got 'x'" in capsys.readouterr().err
    votes.write_text("jpg,neutral\nhappy/0.jpg,3\n")
    assert convert("fer2013", tmp_path / "fer" / "train", "-o", tmp_path / "b.json", "--ferplus-votes", votes) == 1
    assert "missing column(s)" in capsys.readouterr().err


def test_emotion_vote_distribution_and_validation():
    from maskface.data.attributes import check_emotion_votes, emotion_vote_distribution
    from maskface.data.coco_faces import validate_annotation

    assert emotion_vote_distribution({"happy": 6, "neutral": 2, "contempt": 2})["happy"] == 0.75
    assert emotion_vote_distribution({"not_face": 10}) is None and emotion_vote_distribution(None) is None
    assert check_emotion_votes({"happy": 3}) is None
    assert "unknown name(s) ['joy']" in check_emotion_votes({"joy": 1})
    assert "must be a count >= 0" in check_emotion_votes({"happy": -1})
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "attributes": {"emotion_votes": [1, 2]}}
    assert any("emotion_votes must be an object" in p for p in validate_annotation(ann, {"width": 8, "height": 8}, "f.json"))
