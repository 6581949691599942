"""Anonymisation: covered faces change, everything beyond the dilated regions keeps its exact bytes,
weights / feathering, option checks, and the video hold-over on a synthetic clip."""

import re

import cv2
import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from maskface.inference.anonymize import (
    DEFAULT_MARGIN_FRAC,
    METHODS,
    REGIONS,
    Anonymizer,
    HoldOver,
    anonymization_weights,
    anonymize,
    parse_margin,
)
from maskface.inference.results import Face
from maskface.inference.tracking import FaceTracker

H, W = 120, 160


def _texture(seed=0):
    """Random noise: blurring or pixelating it changes (nearly) every pixel."""
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _ellipse_face(cx, cy, ax=14, ay=18, track_id=None, score=0.9):
    m = np.zeros((H, W), np.uint8)
    cv2.ellipse(m, (cx, cy), (ax, ay), 0, 0, 360, 1, -1)
    return Face(box=[cx - ax, cy - ay, cx + ax + 1, cy + ay + 1], score=score, mask=m.astype(bool), track_id=track_id)


def _region(face, region):
    """The face's region, drawn independently of the module (for the reference checks)."""
    if region == "mask":
        return face.mask
    x1, y1, x2, y2 = face.box
    yy, xx = np.mgrid[:H, :W]
    if region == "box":
        return (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)
    return ((xx - (x1 + x2) / 2) / ((x2 - x1) / 2)) ** 2 + ((yy - (y1 + y2) / 2) / ((y2 - y1) / 2)) ** 2 <= 1


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("method", METHODS)
def test_faces_change_and_the_rest_is_bit_identical(method, region):
    img = _texture()
    faces = [_ellipse_face(40, 50), _ellipse_face(110, 70, ax=20, ay=24)]
    margin = 5
    out = anonymize(img, faces, method=method, region=region, margin=margin, color="rgb")
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.shares_memory(out, img)
    changed = (out != img).any(axis=2)
    for f in faces:
        inside = _region(f, region) & f.mask  # the face's own pixels (ellipse: the ellipse's part of them)
        assert changed[inside].mean() > 0.97, f"{method}/{region}: face pixels left as they were"
    # every pixel farther than the margin from all regions keeps its exact value
    union = np.any([_region(f, region) for f in faces], axis=0)
    far = distance_transform_edt(~union) > margin + 1  # +1: the reference ellipse/box is drawn independently
    assert far.sum() > 0.5 * H * W
    np.testing.assert_array_equal(out[far], img[far])
    if method == "fill":
        for f in faces:
            assert (out[f.mask] == 0).all()  # black, fully covered (feathering stays in the margin)


def test_weights_dilate_and_feather_inside_the_margin():
    f = _ellipse_face(80, 60)
    dist = distance_transform_edt(~f.mask)
    wt = anonymization_weights((H, W), [f], margin=8, feather=4)
    assert wt.dtype == np.float32 and wt.shape == (H, W)
    assert (wt[f.mask] == 1).all()
    assert (wt[dist <= 3.5] == 1).all()  # full weight up to margin - feather
    band = (dist > 4.5) & (dist < 7.5)
    assert ((wt[band] > 0) & (wt[band] < 1)).all()  # feathered
    assert (wt[dist > 8.5] == 0).all()  # nothing beyond the margin
    # margin 0: exactly the mask; feather 0: a hard edge
    np.testing.assert_array_equal(anonymization_weights((H, W), [f], margin=0), f.mask.astype(np.float32))
    hard = anonymization_weights((H, W), [f], margin=6, feather=0)
    assert set(np.unique(hard)) == {0.0, 1.0}
    assert (hard[dist <= 5.5] == 1).all() and (hard[dist > 6.5] == 0).all()
    # auto margin grows with the face
    small, big = _ellipse_face(40, 60, 8, 10), _ellipse_face(110, 60, 30, 40)
    grow = [int((anonymization_weights((H, W), [x]) > 0).sum() - x.mask.sum()) for x in (small, big)]
    width = [g / np.sqrt(x.mask.sum()) for g, x in zip(grow, (small, big))]
    assert width[1] > width[0] * 0.8 and grow[1] > 2 * grow[0]


def test_face_without_mask_falls_back_to_its_box_and_empty_input():
    img = _texture(1)
    f = Face(box=[20, 30, 60, 80], score=0.9)
    out = anonymize(img, [f], method="fill", margin=0, color="rgb", fill_color=(10, 20, 30))
    assert (out[30:80, 20:60] == (10, 20, 30)).all()
    assert (out[:30] == img[:30]).all()
    # a face with an empty mask (a tiny or blurred face) is covered by its box, not left visible
    empty = Face(box=[20, 30, 60, 80], score=0.9, mask=np.zeros((H, W), bool))
    np.testing.assert_array_equal(anonymize(img, [empty], method="fill", margin=0, color="rgb",
                                            fill_color=(10, 20, 30)), out)
    np.testing.assert_array_equal(anonymize(img, []), img)


def test_fill_colour_follows_the_channel_order():
    img = _texture(2)
    f = _ellipse_face(80, 60)
    rgb = anonymize(img, [f], method="fill", margin=0, color="rgb", fill_color=(255, 0, 0))
    bgr = anonymize(img, [f], method="fill", margin=0, color="bgr", fill_color=(255, 0, 0))
    assert tuple(rgb[60, 80]) == (255, 0, 0) and tuple(bgr[60, 80]) == (0, 0, 255)


def test_blur_and_pixelate_remove_detail():
    img = _texture(3)
    f = _ellipse_face(80, 60, 30, 40)
    for method in ("blur", "pixelate"):
        out = anonymize(img, [f], method=method)
        # noise has a std of ~74; after anonymisation the face is smooth / blocky
        assert out[f.mask].std() < 25, method
    px = anonymize(img, [f], method="pixelate", margin=0, blocks=4)
    row = px[60, 55:105, 0]
    assert len(np.unique(row)) <= 4  # ~18 px cells: few distinct values across 50 px


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "smudge"}, "method must be one of blur, pixelate, fill, got 'smudge'"),
    ({"region": "circle"}, "region must be one of mask, box, ellipse"),
    ({"margin": -1}, "margin must be a number of pixels in [0, 1000]"),
    ({"margin": "8"}, "margin must be a number of pixels"),
    ({"feather": -2}, "feather must be a number of pixels >= 0"),
    ({"blur": 0}, "blur must be a fraction of the face size in (0, 1]"),
    ({"blocks": 0}, "blocks must be an integer in [1, 256]"),
    ({"fill_color": (300, 0, 0)}, "fill_color must be (R, G, B) integers in 0..255"),
    ({"hold_frames": -1}, "hold-over frames must be an integer >= 0, got -1"),
])
def test_bad_options_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError) as e:
        Anonymizer(**kwargs)
    assert message in str(e.value)


def test_bad_inputs_are_clear_errors():
    a = Anonymizer()
    f = _ellipse_face(80, 60)
    with pytest.raises(ValueError, match="expected an H x W x 3 uint8 image"):
        a(np.zeros((H, W), np.uint8), [f])
    with pytest.raises(ValueError, match="expected an H x W x 3 uint8 image"):
        a(np.zeros((H, W, 3), np.float32), [f])
    with pytest.raises(ValueError, match="color must be 'bgr' or 'rgb'"):
        a(_texture(), [f], color="hsv")
    with pytest.raises(ValueError, match="faces must be a list of maskface Face objects"):
        a(_texture(), [[0, 0, 10, 10]])
    with pytest.raises(ValueError, match="a face mask is 120x160, the image 60x80"):
        a(_texture()[:60, :80], [f])


# --- videos: hold-over ---------------------------------------------------------------------------------


def _clip(n=12, step=3):
    """Frames of a textured face moving right ``step`` px per frame on a textured background,
    with its true masks."""
    bg = _texture(4)
    skin = np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8)
    frames, faces = [], []
    for t in range(n):
        f = _ellipse_face(40 + step * t, 60, track_id=None)
        frames.append(np.where(f.mask[..., None], skin, bg))
        faces.append(f)
    return frames, faces


def _anonymised_clip(hold_frames, missed):
    frames, truth = _clip()
    anon = Anonymizer(method="blur", margin=2, hold_frames=hold_frames)
    tracker, hold = FaceTracker(), anon.hold_over()
    exposed = []
    for t, (frame, true_face) in enumerate(zip(frames, truth)):
        detected = [] if t in missed else [Face(box=true_face.box, score=0.9, mask=true_face.mask)]
        tracker.update(detected)
        out = anon(frame, hold.update(detected), color="rgb")
        exposed.append(float(((out == frame).all(axis=2) & true_face.mask).mean() / true_face.mask.mean()))
    return exposed


def test_hold_over_covers_missed_frames_of_a_moving_face():
    missed = {5, 6, 7}
    covered = _anonymised_clip(hold_frames=3, missed=missed)
    assert max(covered) < 0.05, covered  # the moving face stays covered through 3 missed frames
    bare = _anonymised_clip(hold_frames=0, missed=missed)
    assert all(bare[t] > 0.95 for t in missed) and max(bare[t] for t in range(12) if t not in missed) < 0.05
    short = _anonymised_clip(hold_frames=1, missed=missed)
    assert short[5] < 0.05 and short[6] > 0.95  # held one frame only


def test_hold_over_drops_a_face_found_again_and_keeps_untracked_ones():
    hold = HoldOver(frames=3)
    a = _ellipse_face(40, 60, track_id=1)
    assert hold.update([a]) == [a]
    b = _ellipse_face(42, 60, track_id=1)  # moving +2 px per frame
    assert hold.update([b]) == [b]
    # lost: a stand-in with the last mask moved on by the track's velocity, score 0, inputs untouched
    (s1,) = hold.update([])
    assert s1.score == 0 and s1.track_id == 1 and s1 is not b
    assert s1.box[0] == pytest.approx(b.box[0] + 2)
    assert s1.mask.sum() == b.mask.sum() and s1.mask[60, 44 + 14] and not b.mask[60, 44 + 14]
    assert b.box[0] == 28 and b.mask[60, 42 - 14]
    # found again under another id where it was expected: no stale copy left behind
    again = _ellipse_face(47, 60, track_id=7)
    assert hold.update([again]) == [again]
    # lost for good: held for 3 frames, then gone
    assert [len(hold.update([])) for _ in range(4)] == [1, 1, 1, 0]
    # untracked faces are held too, without motion
    hold.reset()
    u = _ellipse_face(100, 60)
    hold.update([u])
    (s,) = hold.update([])
    assert s.box == u.box and (s.mask == u.mask).all()


def test_margin_as_pixels_or_share_of_the_face():
    assert parse_margin("8") == (8.0, DEFAULT_MARGIN_FRAC) and parse_margin("auto") == (None, DEFAULT_MARGIN_FRAC)
    assert parse_margin(" 6% ") == (None, pytest.approx(0.06))
    for bad, message in (("-1", "margin must be a number of pixels"), ("200%", "fraction must be in [0, 1]"),
                         ("wide", "pixels (8), a percentage of the face size (5%) or auto, got 'wide'")):
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_margin(bad)
    big = _ellipse_face(80, 60, 30, 40)  # face size ~ 70 px
    grown = [int((anonymization_weights((H, W), [big], margin_frac=f) > 0).sum()) for f in (0.0, 0.1)]
    assert grown[0] > big.mask.sum()  # at least 2 px, whatever the fraction
    px7 = int((anonymization_weights((H, W), [big], margin=7) > 0).sum())
    assert grown[1] == px7  # 10 % of ~70 px = 7 px
