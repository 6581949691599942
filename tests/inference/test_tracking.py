"""Tracker on synthetic detections: stable ids through motion, a missed frame and a low-score
frame; births, deaths; attribute smoothing."""

import numpy as np
import pytest

from maskface.inference.results import Face
from maskface.inference.tracking import AttributeSmoother, FaceTracker, box_iou_matrix, linear_assignment


def _det(cx, cy, s=20, score=0.9):
    return Face(box=[cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], score=score)


def test_box_iou_and_assignment():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]])
    iou = box_iou_matrix(a, b)
    assert iou[0, 0] == pytest.approx(1) and iou[0, 1] == pytest.approx(1 / 3) and iou[1].max() == 0
    score = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(linear_assignment(score, 0.3)) == [(0, 1), (1, 0)]  # optimal, not greedy
    assert sorted(linear_assignment(score, 0.3, greedy=True)) == [(0, 0)]


@pytest.mark.parametrize("greedy", [False, True])
def test_two_faces_crossing_keep_ids(greedy):
    tr = FaceTracker(max_missed=5, greedy=greedy)
    ids = {"a": set(), "b": set()}
    for t in range(30):
        a = _det(10 + 4 * t, 50)  # moving right
        b = _det(130 - 4 * t, 56)  # moving left, crossing a around t = 15
        faces = [b, a] if t % 2 else [a, b]
        if t == 12:
            faces = [b]  # a missed for one frame (occlusion)
        if t == 20:
            a.score = 0.3  # low-score frame: kept by stage 2
        tr.update(faces)
        if a in faces:
            ids["a"].add(a.track_id)
        ids["b"].add(b.track_id)
    assert len(ids["a"]) == 1 and len(ids["b"]) == 1
    assert ids["a"] != ids["b"] and None not in ids["a"] | ids["b"]


def test_birth_death_and_low_scores():
    tr = FaceTracker(max_missed=2, new_track_thresh=0.6, low_thresh=0.1)
    f = _det(50, 50, score=0.4)
    tr.update([f])
    assert f.track_id is None and tr.active_ids == []  # too low to start a track
    f = _det(50, 50)
    tr.update([f])
    first = f.track_id
    assert first == 1
    for _ in range(3):
        tr.update([])  # missed 3 > max_missed 2 -> dies
    g = _det(50, 50)
    tr.update([g])
    assert g.track_id not in (None, first)
    noise = _det(50, 50, score=0.05)
    tr.update([noise])
    assert noise.track_id is None


def test_min_hits_tentative():
    tr = FaceTracker(min_hits=2)
    tr.update([_det(10, 10)])  # first frame: activated at once (ByteTrack)
    f1 = _det(200, 200)
    tr.update([_det(12, 10), f1])
    assert f1.track_id is None
    f2 = _det(201, 200)
    tr.update([_det(14, 10), f2])
    assert f2.track_id is not None


def test_mask_iou_option():
    def masked(x):
        m = np.zeros((64, 64), bool)
        m[20:40, x:x + 20] = True
        f = Face(box=[x, 20, x + 20, 40], score=0.9, mask=m)
        return f

    tr = FaceTracker(mask_weight=0.5)
    out = [tr.update([masked(x)])[0].track_id for x in range(5, 30, 3)]
    assert len(set(out)) == 1


def test_attribute_smoother():
    sm = AttributeSmoother(alpha=0.2, warmup=3)
    ages, genders = [], []
    for t in range(20):
        f = Face(box=[0, 0, 10, 10], score=0.9, track_id=1)
        flip = t % 4 == 3
        f.set_attributes({"age": 30 + (10 if t % 2 else -10), "age_std": 3, "gender": "male" if flip else "female",
                          "gender_prob": 0.6 if flip else 0.9, "emotion": "happy",
                          "emotion_probs": {"happy": 0.7, "neutral": 0.3}})
        sm.update([f])
        ages.append(f.age)
        genders.append(f.gender)
    assert max(ages[5:]) - min(ages[5:]) < 6  # raw ages swing by 20
    assert set(genders) == {"female"}  # occasional flips are averaged out
    assert f.emotion == "happy" and sum(f.emotion_probs.values()) == pytest.approx(1)
    assert f.age_group == "25-32"
    untracked = Face(box=[0, 0, 1, 1], score=1.0)
    untracked.set_attributes({"age": 80})
    sm.update([untracked])
    assert untracked.age == 80
