"""labelme JSON -> COCO faces.

Every ``*.json`` under the input folders (recursive) is one labelme file. Rules:

* A shape is a face when the first word of its ``label`` is ``face`` (see
  :data:`~maskface.data.converters.common.FACE_LABELS`, case-insensitive); other shapes are
  ignored (counted in ``info["notes"]``).
* ``polygon`` shapes (>= 3 points) give a mask, ``rectangle`` shapes (2 corners) a box-only face;
  other shape types are reported and skipped. Shapes with the same ``label`` and non-null
  ``group_id`` form one face (several polygons; its box from the polygons, or from the rectangles
  when it has no polygon). Points are clipped to the image.
* Attributes: the words after ``face`` in the label and in the shape's ``description``, either
  ``key=value`` (``age=31``, ``gender=female``, ``emotion=happy``, ``crowd=1``) or a bare value
  (``happy``, ``female``, ``crowd``), plus every shape ``flags`` entry that is true and names an
  emotion, a gender or ``crowd``. Example: label ``face age=31 gender=female emotion=happy``,
  or label ``face`` with flags ``{"happy": true, "female": true}``. ``crowd`` makes the face
  ``iscrowd: 1``. An unknown word or key, an invalid value or two different values for one
  attribute skip the face (reported with the file and shape index); true flags with other names
  are ignored (labelme flag lists often hold unrelated flags).
* The image is ``imagePath`` relative to the JSON file. When that file does not exist but
  ``imageData`` is embedded, the image is decoded and written once to ``image_dir``
  (``<image_dir>/<JSON path relative to its input folder, image suffix>``, atomically).

Output ``image_root``: the deepest folder common to the input folders; images outside it get
absolute ``file_name`` values. :mod:`.to_labelme` writes files that follow the same rules.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from maskface.data.attributes import normalize_emotion, normalize_gender
from maskface.data.converters.common import (
    CocoFacesBuilder,
    PathLike,
    collect_attributes,
    image_size,
    is_face_label,
    polygons_area_bbox,
)
from maskface.utils.io import atomic_write, load_json
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

CROWD_WORDS = ("crowd", "iscrowd")
ATTRIBUTE_KEYS = ("age", "gender", "emotion")


def parse_face_words(words: Sequence[str]) -> Tuple[dict, bool, List[str]]:
    """Read attribute words (``key=value`` or bare values) of a face label or description.

    Returns ``(attributes, crowd, problems)``; see the module docstring for the vocabulary.
    """
    pairs: List[Tuple[str, str]] = []
    crowd = False
    problems = []
    for word in words:
        key, sep, value = word.partition("=")
        key = key.lower()
        if sep and key in CROWD_WORDS:
            if value not in ("0", "1"):
                problems.append(f"{key} must be 0 or 1, got {value!r}")
            crowd = crowd or value == "1"
        elif sep and key in ATTRIBUTE_KEYS:
            pairs.append((key, value))
        elif sep:
            problems.append(f"unknown attribute {key!r} (known: {', '.join(ATTRIBUTE_KEYS)})")
        elif key in CROWD_WORDS:
            crowd = True
        elif _bare_value_key(key):
            pairs.append((_bare_value_key(key), key))
        else:
            problems.append(f"unknown word {word!r}")
    attrs, bad = collect_attributes(pairs)
    return attrs, crowd, problems + bad


def _bare_value_key(word: str) -> Optional[str]:
    """``"emotion"`` or ``"gender"`` when a bare word names one (single letters are too ambiguous)."""
    if normalize_emotion(word):
        return "emotion"
    if len(word) > 1 and normalize_gender(word):
        return "gender"
    return None


def _shape_words(shape: dict) -> List[str]:
    """Attribute words of a shape: label words after the first, description words, and the
    names of true ``flags`` that are a crowd word or a bare emotion / gender (others ignored)."""
    words = str(shape.get("label", "")).split()[1:]
    words += str(shape.get("description") or "").split()
    flags = shape.get("flags") or {}
    words += [k for k, on in flags.items() if on is True and (k.lower() in CROWD_WORDS or _bare_value_key(k.lower()))]
    return words


def _resolve_image(
    doc: dict, json_file: Path, rel_json: Path, image_dir: Optional[Path], builder: CocoFacesBuilder
) -> Optional[Path]:
    """The image of a labelme file, extracting embedded ``imageData`` if needed; ``None`` if none."""
    image_path = str(doc.get("imagePath") or "").replace("\\", "/")
    path = (json_file.parent / image_path) if image_path else None
    if path is not None and path.is_file():
        return path
    if not doc.get("imageData"):
        builder.skip("image not found", str(json_file), f"imagePath {image_path!r} not found and no imageData")
        return None
    if image_dir is None:
        builder.skip("image not found", str(json_file), "imageData embedded but no image_dir to write it to")
        return None
    try:
        data = base64.b64decode(doc["imageData"], validate=True)
        with Image.open(io.BytesIO(data)) as im:
            suffix = "." + (im.format or "png").lower().replace("jpeg", "jpg")
    except (binascii.Error, OSError, ValueError) as e:
        builder.skip("bad imageData", str(json_file), f"imageData is not a base64 image: {e}")
        return None
    out = image_dir / rel_json.with_suffix(suffix)
    if not out.exists():
        with atomic_write(out, "wb") as f:
            f.write(data)
    return out


def _points(shape: dict, width: int, height: int) -> Optional[np.ndarray]:
    try:
        points = np.asarray(shape.get("points"), dtype=float)
    except (TypeError, ValueError):
        return None
    if points.ndim != 2 or points.shape[1] != 2:
        return None
    return np.clip(points, 0, [width, height])


def convert_labelme(
    folders: Sequence[PathLike],
    image_dir: Optional[PathLike] = None,
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
) -> dict:
    """Convert folders of labelme JSON files (rules in the module docstring).

    Args:
        folders: input folders, searched recursively for ``*.json``.
        image_dir: where embedded ``imageData`` images are written when ``imagePath`` is missing.
        strict: raise at the first bad file or shape instead of skipping it.
        limit: convert only the first ``limit`` files.
        progress: show a progress bar.
    """
    folders = [Path(os.path.abspath(f)) for f in folders]
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found")
    root = Path(os.path.commonpath(folders))
    image_dir = Path(os.path.abspath(image_dir)) if image_dir else None
    builder = CocoFacesBuilder("labelme", root, strict, description="labelme annotations")
    files = [(folder, path) for folder in folders for path in sorted(folder.rglob("*.json"))][:limit]
    for folder, json_file in progress_bar(files, desc="labelme", unit="file", disable=not progress):
        try:
            doc = load_json(json_file)
        except ValueError as e:
            builder.skip("unreadable JSON", str(json_file), str(e))
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
            builder.skip("not a labelme file", str(json_file), "no 'shapes' list")
            continue
        path = _resolve_image(doc, json_file, json_file.relative_to(folder), image_dir, builder)
        if path is None:
            continue
        try:
            width, height = image_size(path)
        except OSError as e:
            builder.skip("unreadable image", str(json_file), f"cannot read {path}: {e}")
            continue
        declared = (doc.get("imageWidth"), doc.get("imageHeight"))
        if None not in declared and tuple(declared) != (width, height):
            detail = f"declares {declared[0]}x{declared[1]}, image {path} is {width}x{height}"
            builder.skip("image size mismatch", str(json_file), detail)
            continue
        image_id = builder.add_image(path, width, height)
        for group in _group_shapes(doc["shapes"], json_file, builder):
            _add_group(builder, image_id, group, width, height, json_file)
    return builder.to_coco(inputs=folders)


def _group_shapes(shapes: List[dict], json_file: Path, builder: CocoFacesBuilder) -> List[List[Tuple[int, dict]]]:
    """Face shapes grouped into faces: ``[[(shape index, shape), ...], ...]``."""
    groups: "OrderedDict[object, List[Tuple[int, dict]]]" = OrderedDict()
    for index, shape in enumerate(shapes):
        label = str(shape.get("label", ""))
        if not is_face_label(label):
            builder.note("non-face shape ignored", str(json_file), f"shape #{index} {label!r}")
            continue
        key = (label.split()[0].lower(), shape["group_id"]) if shape.get("group_id") is not None else index
        groups.setdefault(key, []).append((index, shape))
    return list(groups.values())


def _add_group(builder, image_id: int, group: List[Tuple[int, dict]], width: int, height: int, json_file: Path):
    where = f"{json_file}: shape #{group[0][0]} ({group[0][1].get('label')!r})"
    polygons, boxes, words = [], [], []
    for index, shape in group:
        kind = shape.get("shape_type") or "polygon"
        points = _points(shape, width, height)
        if kind not in ("polygon", "rectangle"):
            detail = f"shape #{index} has shape_type {kind!r}; use polygon or rectangle"
            builder.skip_face(image_id, "unsupported shape type", where, detail)
            return
        if points is None or (kind == "polygon" and len(points) < 3) or (kind == "rectangle" and len(points) != 2):
            needed = ">= 3" if kind == "polygon" else "2"
            detail = f"shape #{index}: a {kind} needs {needed} [x, y] points"
            builder.skip_face(image_id, "malformed shape", where, detail)
            return
        if kind == "polygon":
            polygons.append([round(float(v), 2) for v in points.reshape(-1)])
        else:
            (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
            boxes.append([float(x1), float(y1), float(x2 - x1), float(y2 - y1)])
        words += _shape_words(shape)
    attributes, crowd, problems = parse_face_words(words)
    if problems:
        builder.skip_face(image_id, "invalid attributes", where, "; ".join(problems))
        return
    if polygons:
        area, bbox = polygons_area_bbox(polygons, height, width)
        builder.add_face(image_id, bbox, polygons, area, iscrowd=int(crowd), attributes=attributes, where=where)
    else:
        x1, y1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x2, y2 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
        builder.add_face(image_id, [x1, y1, x2 - x1, y2 - y1], iscrowd=int(crowd), attributes=attributes, where=where)
