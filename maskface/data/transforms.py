"""Geometric and photometric transforms on NumPy images, boxes and masks (kept consistent).

Images are H x W x 3 uint8 RGB, boxes (N, 4) float xyxy in pixels, masks (N, H, W) uint8.
Randomness comes from an explicit ``numpy.random.Generator`` so that a sample's augmentation is
a function of its seed alone (reproducible with any number of loader workers, and on resume).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from pycocotools import mask as mask_utils

Segmentation = Union[list, dict, None]


# --- sizes ---------------------------------------------------------------------------------------
def shortest_edge_size(h: int, w: int, short: int, max_size: int) -> Tuple[int, int]:
    """(new_h, new_w) with the shorter side ``short`` and the longer side at most ``max_size``."""
    scale = short / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def choose_train_size(h: int, w: int, min_sizes: Sequence[int], max_size: int, rng: np.random.Generator) -> Tuple[int, int]:
    """Scale jitter: draw a shorter-side size from ``min_sizes`` (INPUT.MIN_SIZE_TRAIN)."""
    short = int(min_sizes[int(rng.integers(len(min_sizes)))])
    return shortest_edge_size(h, w, short, max_size)


# --- image / boxes / masks -------------------------------------------------------------------
def resize_image(image: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    if image.shape[:2] == (new_h, new_w):
        return image
    shrink = new_h * new_w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def scale_boxes(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    return boxes * np.array([sx, sy, sx, sy], dtype=boxes.dtype)


def hflip_image(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


def hflip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    out = boxes.copy()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


def hflip_masks(masks: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(masks[:, :, ::-1])


def clip_boxes(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    out = boxes.copy()
    out[:, 0::2] = out[:, 0::2].clip(0, w)
    out[:, 1::2] = out[:, 1::2].clip(0, h)
    return out


def nondegenerate(boxes: np.ndarray, min_size: float = 1.0) -> np.ndarray:
    """Bool (N,): boxes at least ``min_size`` px wide and high."""
    return ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    out[:, 2:] += out[:, :2]
    return out


def color_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation, each by a factor in [1 - s, 1 + s], in a
    random order (as torchvision's ColorJitter). ``strength`` 0 returns the image unchanged."""
    if strength <= 0:
        return image
    img = image.astype(np.float32)
    for op in rng.permutation(3):
        f = float(rng.uniform(1 - strength, 1 + strength))
        if op == 0:  # brightness
            img = img * f
        elif op == 1:  # contrast: blend with the mean grey level
            grey = (img @ np.array([0.299, 0.587, 0.114], np.float32)).mean()
            img = (img - grey) * f + grey
        else:  # saturation: blend with the per-pixel grey image
            grey = (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
            img = (img - grey) * f + grey
    return np.clip(img, 0, 255).astype(np.uint8)


# --- segmentations ------------------------------------------------------------------------------
def segmentation_to_mask(seg: Segmentation, height: int, width: int, out_h: Optional[int] = None, out_w: Optional[int] = None) -> np.ndarray:
    """Decode a COCO segmentation (polygons or RLE, in a ``height`` x ``width`` image) to a
    binary uint8 mask of size ``out_h`` x ``out_w`` (default: the image size).

    Polygons are rasterised directly at the output size (no full-resolution detour); RLE is
    decoded at its own size, then resized with nearest-neighbour.
    """
    out_h, out_w = out_h or height, out_w or width
    if seg is None or (isinstance(seg, list) and len(seg) == 0):
        return np.zeros((out_h, out_w), np.uint8)
    if isinstance(seg, list):
        sx, sy = out_w / width, out_h / height
        polys = []
        for poly in seg:
            p = np.asarray(poly, dtype=np.float64).reshape(-1, 2) * (sx, sy)
            polys.append(p.ravel().tolist())
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, out_h, out_w))
        return mask_utils.decode(rle).astype(np.uint8)
    if isinstance(seg, dict):
        rle = seg
        if isinstance(rle.get("counts"), list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        m = mask_utils.decode(rle).astype(np.uint8)
        if m.shape != (out_h, out_w):
            m = cv2.resize(m, (out_w, out_h), interpolation=cv2.INTER_NEAREST)
        return m
    raise TypeError(f"segmentation must be polygons, RLE or None, got {type(seg).__name__}")
