"""Tiny synthetic COCO face files with images, for the attribute tests (no real faces).

Two kinds of files, like the real attribute sets:
* ``colour``: 40x48 colour images, one face each covering most of the image, box-only,
  age + gender (the face colour depends on the gender, the brightness on the age);
* ``grey``: 24x24 grey images with the whole image as the face box, emotion labels.
Colour files also hold a second face with a polygon mask, a crowd face and a face without
attributes (the last two are not attribute samples).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import cv2
import numpy as np

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def write_faces(root: Path, name: str, kind: str, n_images: int, seed: int = 0) -> Path:
    """Write ``root/name.json`` and its images; returns the JSON path."""
    rng = np.random.default_rng(seed)
    img_dir = root / f"{name}_images"
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    aid = 1
    for i in range(1, n_images + 1):
        if kind == "colour":
            h, w = 48, 40
            img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
            gender = ["female", "male"][i % 2]
            age = float(rng.integers(1, 90))
            colour = (200, 80, 80) if gender == "male" else (80, 80, 200)
            shade = 0.4 + 0.6 * age / 90
            cv2.ellipse(img, (20, 22), (14, 18), 0, 0, 360, tuple(int(c * shade) for c in colour), -1)
            anns.append({"id": aid, "image_id": i, "category_id": 1, "bbox": [4.0, 3.0, 30.0, 38.0], "iscrowd": 0,
                         "area": 1140.0, "attributes": {"age": age, "gender": gender}})
            aid += 1
            if i % 3 == 0:  # a small second face with a polygon mask, age only
                poly = [30.0, 36.0, 38.0, 36.0, 38.0, 46.0, 30.0, 46.0]
                anns.append({"id": aid, "image_id": i, "category_id": 1, "bbox": [30.0, 36.0, 8.0, 10.0],
                             "segmentation": [poly], "iscrowd": 0, "area": 80.0, "attributes": {"age": 30.0}})
                aid += 1
            if i % 4 == 0:  # not attribute samples: crowd, and unknown attributes
                anns.append({"id": aid, "image_id": i, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 10.0],
                             "iscrowd": 1, "area": 100.0, "attributes": {"age": 50.0}})
                anns.append({"id": aid + 1, "image_id": i, "category_id": 1, "bbox": [0.0, 30.0, 8.0, 8.0],
                             "iscrowd": 0, "area": 64.0})
                aid += 2
            cv2.imwrite(str(img_dir / f"{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        else:
            h = w = 24
            emotion = EMOTIONS[i % len(EMOTIONS)]
            img = np.full((h, w), 40 + 25 * (i % len(EMOTIONS)), np.uint8)
            img += rng.integers(0, 20, (h, w)).astype(np.uint8)
            anns.append({"id": aid, "image_id": i, "category_id": 1, "bbox": [0.0, 0.0, 24.0, 24.0], "iscrowd": 0,
                         "area": 576.0, "attributes": {"emotion": emotion}})
            aid += 1
            cv2.imwrite(str(img_dir / f"{i}.png"), img)
        images.append({"id": i, "file_name": f"{i}.png", "width": w, "height": h})
    path = root / f"{name}.json"
    data = {"image_root": img_dir.name, "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "face"}]}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_splits(root: Path, n_train: int = 24, n_val: int = 8) -> dict:
    """Colour + grey train/val files; returns ``{"train": [json, json], "test": [json, json]}``."""
    return {
        "train": [str(write_faces(root, "colour_train", "colour", n_train, 1)),
                  str(write_faces(root, "grey_train", "grey", n_train, 2))],
        "test": [str(write_faces(root, "colour_val", "colour", n_val, 3)),
                 str(write_faces(root, "grey_val", "grey", n_val, 4))],
    }


def attribute_face_count(json_path: str) -> int:
    """Faces that are attribute samples (not crowd, at least one attribute)."""
    anns: List[dict] = json.loads(Path(json_path).read_text())["annotations"]
    return sum(1 for a in anns if not a.get("iscrowd") and a.get("attributes"))
