"""A grey border around images whose face fills the frame, and faces mapped back from it.

The detector learned faces with room around them. On tight face chips (passport-style crops,
UTKFace's 200 px chips) it often misses the face or boxes a fragment of it. A border of about a
quarter of the image size on each side shows the face at a photo-like scale. The border is the
attribute crop's fill grey, so attribute crops are the same as when a box runs off the image.
"""

from __future__ import annotations

import copy
from typing import Optional, Tuple

import cv2
import numpy as np

#: Border value on every channel: the attribute crops' fill grey (RGB and BGR alike).
PAD_VALUE = 128


def check_pad(pad: float) -> float:
    """``pad`` as float, or ``ValueError`` unless it is in [0, 2] (fraction of the image size)."""
    if isinstance(pad, bool) or not isinstance(pad, (int, float)) or not 0.0 <= pad <= 2.0:
        raise ValueError(f"pad must be in [0, 2] (fraction of the image size), got {pad!r}")
    return float(pad)


def pad_image(image: np.ndarray, pad: float) -> Tuple[np.ndarray, Tuple[int, int]]:
    """``image`` (H, W, 3) with a grey border of ``round(pad * W)`` px left and right and
    ``round(pad * H)`` px top and bottom; returns ``(padded, (px, py))``."""
    h, w = image.shape[:2]
    px, py = int(round(pad * w)), int(round(pad * h))
    padded = cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return padded, (px, py)


def unpad_face(face, px: int, py: int, width: int, height: int):
    """A :class:`~maskface.inference.results.Face` found on a padded image, in the original
    ``width x height`` image's pixels: box shifted and clipped, mask cropped. ``None`` when
    nothing of the face lies inside the original image (a detection in the border)."""
    x1, y1, x2, y2 = face.box
    box = [min(max(x1 - px, 0.0), width), min(max(y1 - py, 0.0), height),
           min(max(x2 - px, 0.0), width), min(max(y2 - py, 0.0), height)]
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        return None
    mask: Optional[np.ndarray] = None
    if face.mask is not None:
        mask = np.ascontiguousarray(face.mask[py:py + height, px:px + width])
        if not mask.any():
            return None
    out = copy.copy(face)
    out.box, out.mask, out._rle = box, mask, None
    return out
