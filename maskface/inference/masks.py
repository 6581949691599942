"""Face masks from the detector's box-sized probabilities, pasted only where each face is.

The mask head gives every face an ``M x M`` (28 x 28) probability map over its box. torchvision
pastes each map into a full-image float canvas (``paste_masks_in_image``), and the predictor then
resampled that canvas to the original image: two full-image float passes per face. Here each map
is warped (bilinear) straight into the pixels its box covers in the *original* image, thresholded
there, and written into a ``bool`` full-image mask: the work is proportional to the face's area,
not the image's. Both runtimes (PyTorch and ONNX Runtime) use this, so their masks agree exactly
whenever their probabilities do.
"""

from __future__ import annotations

import math
from typing import List

import cv2
import numpy as np

__all__ = ["paste_masks"]


def paste_masks(probs: np.ndarray, boxes: np.ndarray, height: int, width: int, thresh: float = 0.5) -> List[np.ndarray]:
    """Box-sized mask probabilities -> full-image boolean masks.

    Args:
        probs: ``(N, M, M)`` float probabilities in 0..1; map ``i`` covers ``boxes[i]`` exactly
            (cell ``k`` centred at ``x1 + (k + 0.5) * (x2 - x1) / M``, as RoIAlign sampled it).
        boxes: ``(N, 4)`` xyxy, continuous pixel coordinates of the output image.
        height, width: output mask size, px.
        thresh: a pixel is face where the bilinearly resampled probability is ``> thresh``.

    Returns:
        ``N`` arrays ``(height, width)`` bool; outside the box (plus half a cell) all False.
    """
    probs = np.asarray(probs, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if probs.ndim != 3 or probs.shape[0] != boxes.shape[0] or probs.shape[1] != probs.shape[2]:
        raise ValueError(f"expected probs (N, M, M) for N boxes, got {probs.shape} for {boxes.shape[0]} boxes")
    if height < 1 or width < 1:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    m = probs.shape[-1]
    out = []
    for prob, (x1, y1, x2, y2) in zip(probs, boxes):
        mask = np.zeros((height, width), dtype=bool)
        out.append(mask)
        sx, sy = max(x2 - x1, 1e-3) / m, max(y2 - y1, 1e-3) / m
        # pixels whose centre lies within half a cell of the box (the padded map's reach)
        rx0, ry0 = max(int(math.floor(x1 - 0.5 * sx)), 0), max(int(math.floor(y1 - 0.5 * sy)), 0)
        rx1, ry1 = min(int(math.ceil(x2 + 0.5 * sx)), width), min(int(math.ceil(y2 + 0.5 * sy)), height)
        if rx1 <= rx0 or ry1 <= ry0:
            continue
        padded = np.pad(prob, 1)  # zero probability one cell outside the box, as torchvision pads
        # padded cell i has its centre at x1 + (i - 0.5) * sx; output pixel j at rx0 + j + 0.5
        affine = np.array([[sx, 0.0, x1 - rx0 - 0.5 * sx - 0.5], [0.0, sy, y1 - ry0 - 0.5 * sy - 0.5]])
        region = cv2.warpAffine(padded, affine, (rx1 - rx0, ry1 - ry0), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        mask[ry0:ry1, rx0:rx1] = region > thresh
    return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool ``(H, W)`` masks, in [0, 1]; two empty masks agree (1.0)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
