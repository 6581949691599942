"""Training augmentations that show the detector small, crowded and frame-filling faces.

* :func:`choose_square_crop` -- RetinaFace-style random square crops (a side drawn from a range of
  the image's shorter side, placed at random, kept only if some face's centre falls inside), and
  *close-ups*: a square around one face a little larger than it, so that the face fills most of
  the picture (passport photos, face chips).
* :func:`crop_targets` -- faces mostly inside the crop (centre inside and at least
  ``MIN_VISIBLE`` of the box area) are kept, clipped; the other faces the crop cuts become
  ignore regions (crowd boxes) rather than background, so neither a cheek nor a half face is
  taught as a whole face or as background.
* :class:`FacePastePool` + :func:`paste_faces` -- copy-paste: masked faces of the mask datasets
  (CelebAMask-HQ, LFW Part Labels) pasted at many scales onto the training picture, each as a
  soft-edged elliptical head patch, so that small faces get true masks too.

All randomness comes from the ``numpy.random.Generator`` passed in (seeded per sample by
:mod:`maskface.data.build`), so a sample's augmentation depends on its stream position alone.
"""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from maskface.data import transforms as T

logger = logging.getLogger(__name__)

Window = Tuple[int, int, int]  # x0, y0, side (px of the source image)
MIN_VISIBLE = 0.6  # share of a face's box area that must lie in a crop for the face to be kept


def _kept_in_window(boxes: np.ndarray, window: Window) -> np.ndarray:
    """Bool (N,): centre inside the window and at least MIN_VISIBLE of the box area in it."""
    x0, y0, side = window
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = (c[:, 0] >= x0) & (c[:, 0] < x0 + side) & (c[:, 1] >= y0) & (c[:, 1] < y0 + side)
    lt = np.maximum(boxes[:, :2], [x0, y0])
    rb = np.minimum(boxes[:, 2:], [x0 + side, y0 + side])
    visible = np.clip(rb - lt, 0, None).prod(axis=1)
    area = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None).prod(axis=1)
    return inside & (visible >= MIN_VISIBLE * np.maximum(area, 1e-6))


def _place(side: int, center: float, limit: int, rng: np.random.Generator, jitter: float) -> int:
    """Left/top of a window of ``side`` px around ``center`` (+- ``jitter`` * side), kept inside [0, limit)."""
    start = center - side / 2 + rng.uniform(-jitter, jitter) * side
    return int(round(min(max(start, 0), limit - side)))


def choose_square_crop(
    boxes: np.ndarray,
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    scales: Sequence[float] = (0.3, 1.0),
    closeup_prob: float = 0.0,
    closeup_min_face: float = 32.0,
    tries: int = 30,
) -> Optional[Window]:
    """A square window inside the image, or ``None`` when no try keeps a face (see
    :func:`crop_targets`).

    Args:
        boxes: (N, 4) xyxy px of the faces (crowd regions excluded).
        height, width: image size in px.
        scales: range of the window side as a fraction of the shorter image side.
        closeup_prob: probability of a close-up instead: a window 1.0-1.4 x the larger side of one
            face (of at least ``closeup_min_face`` px), centred on it with a little jitter.
        tries: random windows tried before giving up.
    """
    short = min(height, width)
    if len(boxes) == 0 or short < 2:
        return None
    wh = boxes[:, 2:] - boxes[:, :2]
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    boxes = np.asarray(boxes, np.float32)
    big = np.flatnonzero(wh.max(axis=1) >= closeup_min_face)
    if len(big) and rng.random() < closeup_prob:
        i = int(rng.choice(big))
        side = int(min(short, round(wh[i].max() * rng.uniform(1.0, 1.4))))
        return _place(side, centers[i, 0], width, rng, 0.1), _place(side, centers[i, 1], height, rng, 0.1), side
    lo, hi = (float(s) for s in scales)
    for _ in range(tries):
        side = max(2, int(round(short * rng.uniform(lo, hi))))
        window = (int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1)), side)
        if _kept_in_window(boxes, window).any():
            return window
    return None


def crop_targets(boxes: np.ndarray, crowd_boxes: np.ndarray, window: Window) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes of the faces in a crop ``window``.

    Returns ``(kept, boxes_in_crop, crowd_in_crop)``: ``kept`` (N,) bool marks the faces whose
    centre lies in the window with at least ``MIN_VISIBLE`` of their box area (their boxes,
    shifted and clipped, follow in order); the other faces still visible in the window are
    appended to the crowd boxes as ignore regions.
    """
    x0, y0, side = window
    shift = np.array([x0, y0, x0, y0], np.float32)
    kept = _kept_in_window(boxes.astype(np.float32), window)
    moved = T.clip_boxes(boxes.astype(np.float32) - shift, side, side)
    visible = T.nondegenerate(moved)
    crowd = T.clip_boxes(crowd_boxes.astype(np.float32).reshape(-1, 4) - shift, side, side)
    crowd = np.concatenate([crowd[T.nondegenerate(crowd)], moved[~kept & visible]]).reshape(-1, 4)
    return kept, moved[kept], crowd.astype(np.float32)


class FacePastePool:
    """Faces with masks that :func:`paste_faces` can paste: one entry per face of at least
    ``min_face`` px (larger side of its box), from COCO face records (``load_coco_faces``).

    Args:
        records: records of mask datasets; faces without ``segmentation`` and crowd faces are skipped.
        min_face: px; smaller faces would be blurry when pasted large.
        context: the pasted patch is the face box grown by this factor (hair, ears, neck: a head,
            not a cut-out face).
    """

    def __init__(self, records: Sequence[dict], min_face: float = 48.0, context: float = 1.6):
        if context < 1:
            raise ValueError(f"context must be >= 1, got {context}")
        self.context = float(context)
        self.items: List[Tuple[dict, dict]] = [
            (rec, ann)
            for rec in records
            for ann in rec.get("annotations", [])
            if ann.get("segmentation") is not None and not ann.get("iscrowd", 0) and max(ann["bbox"][2:]) >= min_face
        ]
        logger.info("Copy-paste pool: %d masked faces from %d images", len(self.items), len(records))

    def __len__(self) -> int:
        return len(self.items)

    def patch(self, i: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Face ``i`` as ``(rgb, alpha, face_mask, box)``: an RGB uint8 patch (square, the face
        box grown by ``context``, grey outside the source image), its soft elliptical alpha (float32
        0..1), the face mask (uint8 0/1) and the face box (xyxy, px of the patch; the pasted
        face's box is taken from its mask instead, after scaling and clipping)."""
        rec, ann = self.items[i]
        from maskface.data.mapper import read_image_rgb  # the mapper's decoding rules

        image = read_image_rgb(rec["file_name"])
        h, w = image.shape[:2]
        mask = T.segmentation_to_mask(ann["segmentation"], int(rec.get("height", h)), int(rec.get("width", w)))
        x, y, bw, bh = ann["bbox"]
        side = int(round(max(bw, bh) * self.context))
        cx, cy = x + bw / 2, y + bh / 2
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        pad = ((max(0, -y0), max(0, y0 + side - h)), (max(0, -x0), max(0, x0 + side - w)))
        image = np.pad(image, pad + ((0, 0),), constant_values=127)
        mask = np.pad(mask, pad)
        ox, oy = x0 + pad[1][0], y0 + pad[0][0]
        rgb = image[oy : oy + side, ox : ox + side]
        face_mask = mask[oy : oy + side, ox : ox + side]
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
        r = np.sqrt(((xx + 0.5 - side / 2) / (side / 2)) ** 2 + ((yy + 0.5 - side / 2) / (side / 2)) ** 2)
        alpha = np.clip((1.0 - r) / 0.15, 0.0, 1.0)  # 1 inside, fading over the outer 15 % of the radius
        box = np.array([x - x0, y - y0, x - x0 + bw, y - y0 + bh], np.float32)
        return np.ascontiguousarray(rgb), alpha, np.ascontiguousarray(face_mask), box


def _overlaps(box: np.ndarray, others: np.ndarray) -> bool:
    if len(others) == 0:
        return False
    lt = np.maximum(box[:2], others[:, :2])
    rb = np.minimum(box[2:], others[:, 2:])
    return bool((np.clip(rb - lt, 0, None).prod(axis=1) > 0).any())


def paste_faces(
    image: np.ndarray,
    occupied: np.ndarray,
    pool: FacePastePool,
    rng: np.random.Generator,
    *,
    count: Sequence[int] = (1, 12),
    sizes: Sequence[float] = (8.0, 160.0),
    tries: int = 8,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste masked faces from ``pool`` onto ``image`` where they cover none of ``occupied``.

    Args:
        image: H x W x 3 uint8 RGB; not modified (a copy is returned).
        occupied: (K, 4) xyxy boxes that pasted heads must not cover (the image's own faces and
            ignore regions), updated with each paste.
        count: inclusive range of faces to paste.
        sizes: range of the pasted face's larger side in px, drawn log-uniformly (small faces
            are the ones in short supply).
        tries: positions tried per face before it is given up.

    Returns:
        ``(image, boxes, masks)``: the new image, (M, 4) float32 xyxy boxes of the pasted faces and
        (M, H, W) uint8 masks.
    """
    h, w = image.shape[:2]
    out = image.copy()
    occupied = np.asarray(occupied, np.float32).reshape(-1, 4)
    boxes, masks = [], []
    if len(pool) == 0:
        return out, np.zeros((0, 4), np.float32), np.zeros((0, h, w), np.uint8)
    lo, hi = np.log(max(sizes[0], 2.0)), np.log(max(sizes[1], sizes[0], 2.0))
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        rgb, alpha, fmask, fbox = pool.patch(int(rng.integers(len(pool))))
        face = float(np.exp(rng.uniform(lo, hi)))
        scale = face / max(float(fbox[2] - fbox[0]), float(fbox[3] - fbox[1]), 1.0)
        side = int(round(rgb.shape[0] * scale))
        if side < 4 or side >= min(h, w):
            continue
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, (side, side), interpolation=interp)
        alpha = cv2.resize(alpha, (side, side), interpolation=cv2.INTER_LINEAR)
        fmask = cv2.resize(fmask, (side, side), interpolation=cv2.INTER_NEAREST)
        if rng.random() < 0.5:
            rgb, alpha, fmask = rgb[:, ::-1], alpha[:, ::-1], fmask[:, ::-1]
        for _ in range(tries):
            x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            patch_box = np.array([x0, y0, x0 + side, y0 + side], np.float32)
            if _overlaps(patch_box, occupied):
                continue
            a = alpha[..., None]
            region = out[y0 : y0 + side, x0 : x0 + side].astype(np.float32)
            out[y0 : y0 + side, x0 : x0 + side] = (a * rgb + (1 - a) * region).round().astype(np.uint8)
            m = np.zeros((h, w), np.uint8)
            m[y0 : y0 + side, x0 : x0 + side] = (fmask > 0) & (alpha > 0.5)
            ys, xs = np.nonzero(m)
            if len(xs) == 0:
                break
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            masks.append(m)
            occupied = np.concatenate([occupied, patch_box[None]])
            break
    if not boxes:
        return out, np.zeros((0, 4), np.float32), np.zeros((0, h, w), np.uint8)
    return out, np.asarray(boxes, np.float32), np.stack(masks)
