"""Load, validate and register COCO face files (see ``datasets/README.md`` for the format).

A dataset is a list of plain dicts, one per image (detectron2's "dataset dicts")::

    {"file_name": str (absolute path), "image_id": int, "height": int, "width": int,
     "source": str (dataset name, for balanced sampling),
     "annotations": [{"id": int, "bbox": [x, y, w, h] (float px, absolute, XYWH),
                      "segmentation": list of polygons [[x1, y1, x2, y2, ...], ...]
                                      | RLE dict {"size": [h, w], "counts": str | list}
                                      | None (box-only face),
                      "iscrowd": 0 | 1, "area": float px^2,
                      "attributes": {"age": float years, "gender": "female" | "male",
                                     "emotion": one of EMOTIONS,
                                     "emotion_votes": {name: count} (optional, e.g. FER+),
                                     "gender_soft": P(female) in [0, 1], "age_teacher": years
                                     (optional teacher labels)}
                                    (missing key = unknown),
                      "groups": {str: str} (only when the file has it)}]}

``groups`` holds population-group labels that MaskFace does not predict, such as UTKFace's
``{"race": "asian"}``; evaluations break their metrics down by them (bias).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional

from maskface.data.attributes import EMOTIONS, GENDERS, check_emotion_votes, check_teacher_labels
from maskface.utils.io import load_json

logger = logging.getLogger(__name__)

FACE_CATEGORY_ID = 1


class CocoFacesError(ValueError):
    """A COCO face file breaks the format; the message names the file and the record."""


def _resolve_root(data: dict, json_file: Path, image_root: Optional[str]) -> Path:
    if image_root:
        return Path(image_root)
    root = data.get("image_root")
    if root:
        root = Path(root)
        return root if root.is_absolute() else (json_file.parent / root)
    return json_file.parent


def validate_annotation(ann: dict, img: dict, where: str) -> List[str]:
    """Return the list of problems of one annotation (empty when valid)."""
    problems = []
    w, h = img.get("width"), img.get("height")
    bbox = ann.get("bbox")
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
        problems.append(f"{where}: bbox must be 4 numbers [x, y, w, h], got {bbox!r}")
    else:
        x, y, bw, bh = bbox
        if bw < 0 or bh < 0:
            problems.append(f"{where}: bbox has negative size {bbox}")
        # 1 px of slack: some tools round box corners outwards.
        elif x < -1 or y < -1 or x + bw > w + 1 or y + bh > h + 1:
            problems.append(f"{where}: bbox {bbox} lies outside the {w}x{h} image")
    seg = ann.get("segmentation")
    if seg is not None and seg != []:
        if isinstance(seg, list):
            for k, poly in enumerate(seg):
                if not isinstance(poly, list) or len(poly) % 2:
                    problems.append(f"{where}: polygon {k} must be a flat list of x, y pairs")
                elif len(poly) < 6:
                    problems.append(f"{where}: polygon {k} has {len(poly) // 2} points, at least 3 needed")
        elif isinstance(seg, dict):
            if "counts" not in seg or "size" not in seg:
                problems.append(f"{where}: RLE segmentation needs 'size' and 'counts', got keys {sorted(seg)}")
            elif list(seg["size"]) != [h, w]:
                problems.append(f"{where}: RLE size {seg['size']} differs from the image's [{h}, {w}]")
        else:
            problems.append(f"{where}: segmentation must be polygons or RLE, got {type(seg).__name__}")
    if ann.get("iscrowd", 0) not in (0, 1):
        problems.append(f"{where}: iscrowd must be 0 or 1, got {ann.get('iscrowd')!r}")
    attrs = ann.get("attributes") or {}
    if not isinstance(attrs, dict):
        problems.append(f"{where}: attributes must be an object, got {type(attrs).__name__}")
        return problems
    if "age" in attrs and attrs["age"] is not None:
        age = attrs["age"]
        if not isinstance(age, (int, float)) or not 0 <= age <= 120:
            problems.append(f"{where}: age must be a number of years in [0, 120], got {age!r}")
    if attrs.get("gender") is not None and attrs["gender"] not in GENDERS:
        problems.append(f"{where}: unknown gender {attrs['gender']!r}; expected one of {GENDERS}")
    if attrs.get("emotion") is not None and attrs["emotion"] not in EMOTIONS:
        problems.append(f"{where}: unknown emotion name {attrs['emotion']!r}; expected one of {EMOTIONS}")
    if attrs.get("emotion_votes") is not None:
        problem = check_emotion_votes(attrs["emotion_votes"])
        if problem:
            problems.append(f"{where}: {problem}")
    problems += [f"{where}: {problem}" for problem in check_teacher_labels(attrs)]
    groups = ann.get("groups")
    if groups is not None and not (isinstance(groups, dict)
                                   and all(isinstance(k, str) and isinstance(v, str) for k, v in groups.items())):
        problems.append(f"{where}: groups must be an object of string labels such as {{\"race\": \"asian\"}}, "
                        f"got {groups!r}")
    return problems


def load_coco_faces(
    json_file: str | os.PathLike,
    image_root: Optional[str] = None,
    strict: bool = True,
    check_images: bool = True,
    dataset_name: Optional[str] = None,
) -> List[dict]:
    """Read a COCO face file into a list of per-image records (format in the module docstring).

    Args:
        json_file: the COCO face JSON.
        image_root: folder that relative ``file_name`` values are relative to. Default: the file's
            top-level ``"image_root"`` key (absolute, or relative to the JSON's folder), else the
            JSON's folder.
        strict: raise :class:`CocoFacesError` on the first problem; else log each problem and
            drop the bad annotation (or image, if its file is missing).
        check_images: check that every image file exists.
        dataset_name: stored in each record's ``"source"`` (default: the JSON file's stem).

    Images without annotations are kept: they are negatives for the detector.
    """
    json_file = Path(json_file)
    data = load_json(json_file)
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise CocoFacesError(f"{json_file}: expected a COCO object with 'images' and 'annotations'")
    root = _resolve_root(data, json_file, image_root)
    source = dataset_name or json_file.stem
    cats = {c.get("id"): c.get("name") for c in data.get("categories", [])}
    if cats and cats.get(FACE_CATEGORY_ID) != "face":
        raise CocoFacesError(f"{json_file}: category id {FACE_CATEGORY_ID} must be 'face', got categories {cats}")

    def fail(msg: str) -> None:
        if strict:
            raise CocoFacesError(msg)
        logger.warning("%s (skipped)", msg)

    records: Dict[int, dict] = {}
    for i, img in enumerate(data["images"]):
        where = f"{json_file}: image #{i} (id {img.get('id')!r})"
        missing = [k for k in ("id", "file_name", "width", "height") if k not in img]
        if missing:
            fail(f"{where}: missing keys {missing}")
            continue
        path = Path(img["file_name"])
        path = path if path.is_absolute() else root / path
        if check_images and not path.is_file():
            fail(f"{where}: image file missing: {path}")
            continue
        if img["id"] in records:
            fail(f"{where}: duplicate image id")
            continue
        rec = {
            "file_name": str(path),
            "image_id": img["id"],
            "height": int(img["height"]),
            "width": int(img["width"]),
            "source": img.get("source", source),
            "annotations": [],
        }
        if "identity" in img:
            rec["identity"] = img["identity"]
        records[img["id"]] = rec

    for j, ann in enumerate(data["annotations"]):
        where = f"{json_file}: annotation id {ann.get('id', f'#{j}')!r}"
        rec = records.get(ann.get("image_id"))
        if rec is None:
            if ann.get("image_id") not in {im.get("id") for im in data["images"]}:
                fail(f"{where}: refers to unknown image_id {ann.get('image_id')!r}")
            continue  # its image was dropped above and already reported
        if ann.get("category_id", FACE_CATEGORY_ID) != FACE_CATEGORY_ID:
            continue  # not a face: other categories are ignored
        img = {"width": rec["width"], "height": rec["height"]}
        problems = validate_annotation(ann, img, where)
        if problems:
            fail("; ".join(problems))
            continue
        seg = ann.get("segmentation")
        bbox = [float(v) for v in ann["bbox"]]
        face = {
            "id": ann.get("id", j),
            "bbox": bbox,
            "segmentation": seg if seg not in (None, []) else None,
            "iscrowd": int(ann.get("iscrowd", 0)),
            "area": float(ann.get("area", bbox[2] * bbox[3])),
            "attributes": {k: v for k, v in (ann.get("attributes") or {}).items() if v is not None},
        }
        if ann.get("groups"):
            face["groups"] = dict(ann["groups"])
        rec["annotations"].append(face)
    out = list(records.values())
    logger.info("Loaded %d images, %d faces from %s", len(out), sum(len(r["annotations"]) for r in out), json_file)
    return out


# --- name-based registration ----------------------------------------------------------------
_DATASETS: Dict[str, Callable[[], List[dict]]] = {}


def register_coco_faces(name: str, json_file: str, image_root: Optional[str] = None) -> None:
    """Register a COCO face file under ``name`` (loaded lazily by :func:`get_dataset`)."""
    if name in _DATASETS:
        raise KeyError(f"dataset {name!r} is already registered")
    _DATASETS[name] = lambda: load_coco_faces(json_file, image_root, dataset_name=name)


def registered_datasets() -> List[str]:
    return sorted(_DATASETS)


def get_dataset(name_or_path: str, image_root: Optional[str] = None) -> List[dict]:
    """Records of a registered dataset name, or of a COCO face JSON path."""
    if name_or_path in _DATASETS:
        return _DATASETS[name_or_path]()
    if name_or_path.endswith(".json"):
        return load_coco_faces(name_or_path, image_root)
    raise KeyError(
        f"unknown dataset {name_or_path!r}: not a registered name ({registered_datasets() or 'none registered'}) "
        "and not a .json path"
    )
