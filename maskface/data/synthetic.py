"""Synthetic "face" datasets in the COCO face format, for tests, smoke runs and benchmarks.

Images are textured noise with skin-coloured ellipses (the "faces", with polygon masks), some of
them optionally box-only or crowd regions. No real person appears anywhere, so the files can be
generated freely (the real datasets are research-only and must never be copied into the repo).
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import cv2
import numpy as np

from maskface.utils.io import save_json


def _ellipse_polygon(cx: float, cy: float, ax: float, ay: float, n: int = 24) -> list:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], 1).round(2).ravel().tolist()


def make_synthetic_image(
    rng: np.random.Generator, size: Tuple[int, int], faces: int, min_face: int = 12, max_face: Optional[int] = None
) -> Tuple[np.ndarray, list]:
    """An H x W x 3 uint8 RGB image and its faces as ``(bbox_xywh, polygon)`` pairs."""
    h, w = size
    max_face = max_face or max(min_face + 1, min(h, w) // 2)
    img = rng.integers(40, 200, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img.astype(np.int16) + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    out = []
    for _ in range(faces):
        fw = float(rng.uniform(min_face, max_face))
        fh = fw * float(rng.uniform(1.1, 1.4))
        if fh >= h - 2 or fw >= w - 2:
            continue
        cx = float(rng.uniform(fw / 2 + 1, w - fw / 2 - 1))
        cy = float(rng.uniform(fh / 2 + 1, h - fh / 2 - 1))
        poly = _ellipse_polygon(cx, cy, fw / 2, fh / 2)
        skin = (int(rng.integers(170, 240)), int(rng.integers(120, 180)), int(rng.integers(90, 150)))
        pts = np.asarray(poly, np.float32).reshape(-1, 2).round().astype(np.int32)
        cv2.fillPoly(img, [pts], skin)
        eye_y = int(cy - fh * 0.1)
        for ex in (cx - fw * 0.2, cx + fw * 0.2):  # two dark "eyes" make it face-like enough
            cv2.circle(img, (int(ex), eye_y), max(1, int(fw * 0.07)), (30, 30, 30), -1)
        xs, ys = pts[:, 0], pts[:, 1]
        x0, y0 = float(max(0, xs.min())), float(max(0, ys.min()))
        x1, y1 = float(min(w, xs.max() + 1)), float(min(h, ys.max() + 1))
        out.append(([x0, y0, x1 - x0, y1 - y0], poly))
    return img, out


def make_synthetic_coco(
    out_dir: str,
    num_images: int = 8,
    size: Tuple[int, int] = (96, 128),
    faces_per_image: Tuple[int, int] = (1, 3),
    seed: int = 0,
    box_only_fraction: float = 0.0,
    crowd_fraction: float = 0.0,
    with_attributes: bool = True,
    name: str = "synthetic",
    min_face: int = 12,
) -> str:
    """Write ``out_dir/images/*.png`` and ``out_dir/{name}.json``; returns the JSON path.

    Args:
        size: (height, width) of every image.
        faces_per_image: inclusive range of faces drawn per image.
        box_only_fraction: share of faces stored without segmentation (box-only, like WIDER).
        crowd_fraction: share of faces stored as ``iscrowd=1`` regions.
    """
    from maskface.data.attributes import EMOTIONS, GENDERS

    rng = np.random.default_rng(seed)
    img_dir = os.path.join(out_dir, "images")
    os.makedirs(img_dir, exist_ok=True)
    images, anns = [], []
    for i in range(num_images):
        n = int(rng.integers(faces_per_image[0], faces_per_image[1] + 1))
        img, faces = make_synthetic_image(rng, size, n, min_face=min_face)
        fname = f"img_{i:05d}.png"
        cv2.imwrite(os.path.join(img_dir, fname), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        images.append({"id": i + 1, "file_name": f"images/{fname}", "height": size[0], "width": size[1]})
        for bbox, poly in faces:
            crowd = rng.random() < crowd_fraction
            box_only = not crowd and rng.random() < box_only_fraction
            ann = {
                "id": len(anns) + 1,
                "image_id": i + 1,
                "category_id": 1,
                "bbox": [round(v, 2) for v in bbox],
                "area": round(bbox[2] * bbox[3], 2),
                "iscrowd": int(crowd),
                "segmentation": None if box_only else [poly],
            }
            if with_attributes and not crowd:
                ann["attributes"] = {
                    "age": float(rng.integers(1, 90)),
                    "gender": GENDERS[int(rng.integers(2))],
                    "emotion": EMOTIONS[int(rng.integers(len(EMOTIONS)))],
                }
            anns.append(ann)
    path = os.path.join(out_dir, f"{name}.json")
    save_json({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "face"}]}, path)
    return path
