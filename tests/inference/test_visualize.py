"""Drawing: mask overlay only inside the mask, boxes/labels at any image size, track colours."""

import numpy as np
import pytest

from maskface.inference.results import Face
from maskface.inference.visualize import color_for, draw_faces


def _face(h, w, box, track_id=None, attrs=True):
    x1, y1, x2, y2 = box
    mask = np.zeros((h, w), bool)
    mask[int(y1):int(y2), int(x1):int(x2)] = True
    f = Face(box=box, score=0.87, mask=mask, track_id=track_id)
    if attrs:
        f.set_attributes({"age": 31, "gender": "female", "gender_prob": 0.9, "emotion": "happy"})
    return f


def test_overlay_inside_mask_only():
    img = np.full((100, 120, 3), 50, np.uint8)
    f = _face(100, 120, [40, 40, 80, 90])
    out = draw_faces(img, [f], draw_boxes=False, draw_labels=False, alpha=0.5)
    assert out is not img and (img == 50).all()  # drawn on a copy
    assert (out[60, 60] != 50).any()
    assert (out[10, 10] == 50).all() and (out[95, 5] == 50).all()


@pytest.mark.parametrize("shape", [(8, 6), (48, 64), (2000, 3000)])
def test_any_size_and_labels_clamped(shape):
    h, w = shape
    img = np.zeros((h, w, 3), np.uint8)
    faces = [_face(h, w, [0, 0, w * 0.5, h * 0.5], track_id=1),
             _face(h, w, [w * 0.6, h * 0.6, w, h], attrs=False),
             Face(box=[-10, -10, w + 10, h + 10], score=0.5)]  # outside, no mask
    out = draw_faces(img, faces, color="rgb")
    assert out.shape == img.shape and out.dtype == np.uint8
    assert out.any()


def test_track_colour_is_stable_and_mask_size_mismatch_skipped():
    img = np.zeros((50, 50, 3), np.uint8)
    f = _face(50, 50, [10, 10, 30, 30], track_id=5)
    a = draw_faces(img, [f], color="rgb", draw_labels=False, draw_masks=False, thickness=3)
    b = draw_faces(img, [_face(50, 50, [1, 1, 2, 2]), f], color="rgb", draw_labels=False, draw_masks=False, thickness=3)
    assert tuple(a[10, 20]) == color_for(5) == tuple(b[10, 20])
    wrong = Face(box=[1, 1, 5, 5], score=1.0, mask=np.ones((10, 10), bool))
    draw_faces(img, [wrong])  # mask of another size: box only, no error
    with pytest.raises(ValueError, match="3-channel"):
        draw_faces(np.zeros((5, 5), np.uint8), [])
