"""COCO faces -> one labelme JSON per image, for manual correction in labelme.

Each file is written to ``<out_dir>/<file_name with .json>`` (images outside the image root:
``<out_dir>/<base name>.json``), with ``imagePath`` relative to it and no embedded ``imageData``.
Faces follow the rules :mod:`.labelme` reads back, so COCO -> labelme -> COCO keeps polygons,
boxes, crowd flags and attributes:

* label ``face`` plus ``age=<years> gender=<g> emotion=<e>`` for the known attributes and
  ``crowd=1`` for ``iscrowd`` faces;
* a polygon face gives one ``polygon`` shape per polygon (several share a ``group_id``); a
  box-only face gives a ``rectangle``;
* an RLE mask is traced into polygons (outer contours, simplified to 1 px; holes are lost).

Per-face extras (``wider_flags``, ``score``) are not written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator, List, Optional

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from maskface.data.converters.common import FACE_CATEGORY_ID, PathLike
from maskface.utils.io import save_json

logger = logging.getLogger(__name__)

LABELME_VERSION = "5.4.1"
ATTRIBUTE_ORDER = ("age", "gender", "emotion")


def face_label(face: dict) -> str:
    """The labelme label text of a COCO face, e.g. ``"face age=31 gender=female emotion=happy"``."""
    words = ["face"]
    attributes = face.get("attributes") or {}
    for key in ATTRIBUTE_ORDER:
        value = attributes.get(key)
        if value is not None:
            words.append(f"{key}={value:g}" if key == "age" else f"{key}={value}")
    if face.get("iscrowd"):
        words.append("crowd=1")
    return " ".join(words)


def rle_to_polygons(rle: dict, epsilon: float = 1.0) -> List[List[float]]:
    """Outer contours of an RLE mask as flat polygons, simplified with tolerance ``epsilon`` px."""
    if isinstance(rle["counts"], list):  # uncompressed RLE
        coded = mask_utils.frPyObjects(rle, *rle["size"])
    else:
        counts = rle["counts"]
        coded = {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    mask = mask_utils.decode(coded)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polygons = []
    for contour in contours:
        contour = cv2.approxPolyDP(contour, epsilon, closed=True)
        if len(contour) >= 3:
            polygons.append([float(v) for v in contour.reshape(-1)])
    return polygons


def face_shapes(face: dict, group_id: int) -> Iterator[dict]:
    """labelme shapes of one COCO face (``group_id`` is used when the face has several polygons)."""
    label = face_label(face)
    segmentation = face.get("segmentation")
    if isinstance(segmentation, dict):
        polygons = rle_to_polygons(segmentation)
    else:
        polygons = [p for p in (segmentation or []) if len(p) >= 6]
    shape = {"label": label, "description": "", "flags": {}, "mask": None}
    if not polygons:
        x, y, w, h = face["bbox"]
        yield {**shape, "points": [[x, y], [x + w, y + h]], "group_id": None, "shape_type": "rectangle"}
        return
    for polygon in polygons:
        points = np.asarray(polygon, dtype=float).reshape(-1, 2).tolist()
        group = group_id if len(polygons) > 1 else None
        yield {**shape, "points": points, "group_id": group, "shape_type": "polygon"}


def coco_to_labelme(data: dict, out_dir: PathLike, limit: Optional[int] = None) -> int:
    """Write one labelme JSON per image of ``data`` (loaded by :func:`.ops.load_coco`, so its
    ``image_root`` is absolute) under ``out_dir``. Returns the number of files written."""
    out_dir = Path(out_dir)
    root = Path(data["image_root"])
    faces_by_image = {}
    for face in data["annotations"]:
        if face.get("category_id", FACE_CATEGORY_ID) == FACE_CATEGORY_ID:
            faces_by_image.setdefault(face["image_id"], []).append(face)
    written = 0
    for image in data["images"][:limit]:
        name = Path(image["file_name"])
        image_path = name if name.is_absolute() else root / name
        target = out_dir / (name.name if name.is_absolute() else name).with_suffix(".json")
        shapes = []
        for group_id, face in enumerate(faces_by_image.get(image["id"], []), start=1):
            shapes.extend(face_shapes(face, group_id))
        doc = {
            "version": LABELME_VERSION,
            "flags": {},
            "shapes": shapes,
            "imagePath": os.path.relpath(image_path, target.parent),
            "imageData": None,
            "imageHeight": image["height"],
            "imageWidth": image["width"],
        }
        save_json(doc, target, indent=2)
        written += 1
    logger.info("wrote %d labelme files under %s", written, out_dir)
    return written
