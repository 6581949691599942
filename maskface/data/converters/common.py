"""Shared pieces of every converter: the COCO face builder, error reporting, masks and images.

Every converter fills a :class:`CocoFacesBuilder` and returns its :meth:`~CocoFacesBuilder.to_coco`
dict (the format is described in ``datasets/README.md``). Paths in the output: ``file_name`` is
relative to the top-level ``"image_root"`` (an absolute path written by the converter) when the
image lies under it, else absolute.

Malformed source records go through :meth:`CocoFacesBuilder.skip`: with ``strict=True`` it raises
:class:`ConversionError`, else it logs a warning and counts the record by reason; the counts end
up in ``info["skipped"]``. Every face is also checked by the loader's own rules
(:func:`maskface.data.coco_faces.validate_annotation`) as it is added, so a converted file never
holds a face the loader would reject (``--strict`` stops there too).

A malformed *face* record of an image that was added goes through
:meth:`CocoFacesBuilder.skip_face`, which remembers its image: an image whose every face record
was malformed is dropped (never turned into a face-less negative), and an image that kept some of
its faces is flagged with ``"malformed_faces": n`` (faces of it are missing from its labels).
"""

from __future__ import annotations

import datetime
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from maskface.data.attributes import normalize_age, normalize_emotion, normalize_gender
from maskface.data.coco_faces import FACE_CATEGORY_ID, validate_annotation
from maskface.utils.io import PathLike, save_json

logger = logging.getLogger(__name__)

CONVERTER_VERSION = "1.0"
FACE_LABELS = ("face", "faces", "human_face")  # shape labels (lower case) that mean "a face"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

Segmentation = Union[List[List[float]], Dict[str, object]]


class ConversionError(ValueError):
    """A malformed source record. The message starts with ``<file>:<line or record>:``."""


class CocoFacesBuilder:
    """Collects the images and faces of one conversion and the report of skipped records.

    Args:
        source: short dataset name ("wider_face", "fer2013", ...), stored per image as ``source``
            and in ``info``.
        image_root: folder that ``file_name`` values are made relative to (stored as absolute
            ``"image_root"`` in the output).
        strict: raise :class:`ConversionError` at the first malformed record instead of skipping.
        description: free text for ``info["description"]``.
    """

    def __init__(self, source: str, image_root: PathLike, strict: bool = False, description: str = ""):
        self.source = source
        self.image_root = Path(os.path.abspath(image_root))
        self.strict = strict
        self.description = description
        self.images: List[dict] = []
        self.annotations: List[dict] = []
        self.skipped: Counter = Counter()  # reason -> number of records skipped
        self.notes: Counter = Counter()  # reason -> number of records kept but noted (clipped box, ...)
        self.malformed_faces: Counter = Counter()  # image id -> face records of it that were skipped

    # --- report ---------------------------------------------------------------------------------
    def skip(self, reason: str, where: str, detail: str, count: int = 1) -> None:
        """Report a malformed record: raise when strict, else log and count it under ``reason``.

        ``where`` is ``"<file>:<line>"`` or ``"<file>: <record>"``; ``detail`` says what is wrong;
        ``count`` is the number of records skipped with it (e.g. the images of a bad folder).
        """
        message = f"{where}: {detail}"
        if self.strict:
            raise ConversionError(message)
        logger.warning("%s (skipped)", message)
        self.skipped[reason] += count

    def skip_face(self, image_id: int, reason: str, where: str, detail: str, count: int = 1) -> None:
        """:meth:`skip` for malformed face records of an image already added (see the module docstring)."""
        self.skip(reason, where, detail, count)
        self.malformed_faces[image_id] += count

    def image_size(self, path: PathLike) -> Optional[Tuple[int, int]]:
        """``(width, height)`` of an image file (:func:`image_size`), or ``None`` after skipping it
        as an "unreadable image" (missing, or not an image)."""
        try:
            return image_size(path)
        except OSError as e:
            self.skip("unreadable image", str(path), str(e))
            return None

    def note(self, reason: str, where: str = "", detail: str = "") -> None:
        """Count a record that was kept but is worth knowing about (a box clipped to the image,
        an image where no face was found, ...), under ``reason``."""
        if where:
            logger.info("%s: %s", where, detail)
        self.notes[reason] += 1

    # --- content --------------------------------------------------------------------------------
    def file_name(self, path: PathLike) -> str:
        """``path`` relative to the image root (POSIX separators) when under it, else absolute."""
        path = Path(os.path.abspath(path))
        try:
            return path.relative_to(self.image_root).as_posix()
        except ValueError:
            return str(path)

    def add_image(self, path: PathLike, width: int, height: int, **extra: object) -> int:
        """Add an image (``width``/``height`` in px) and return its id. ``extra``: e.g. ``identity``."""
        image_id = len(self.images) + 1
        image = {"id": image_id, "file_name": self.file_name(path), "width": int(width), "height": int(height)}
        image["source"] = self.source
        image.update({k: v for k, v in extra.items() if v is not None})
        self.images.append(image)
        return image_id

    def add_face(
        self,
        image_id: int,
        bbox: Sequence[float],
        segmentation: Optional[Segmentation] = None,
        area: Optional[float] = None,
        iscrowd: int = 0,
        attributes: Optional[Mapping[str, object]] = None,
        where: str = "",
        **extra: object,
    ) -> Optional[int]:
        """Add a face and return its id, or ``None`` when the loader's checks reject it (then it
        goes through :meth:`skip_face` under "face rejected by the loader's checks").

        Args:
            bbox: ``[x, y, w, h]`` in px.
            segmentation: polygons ``[[x1, y1, x2, y2, ...], ...]`` or a compressed RLE dict; ``None``
                for a box-only face (the key is then left out).
            area: px^2; default: the mask area when there is a mask, else ``w * h``.
            attributes: ``age`` / ``gender`` / ``emotion``; ``None`` values are dropped (unknown).
            where: the source record, for the report (default: the image's file name).
            extra: extra per-face keys, e.g. ``wider_flags``.
        """
        bbox = [round(float(v), 2) for v in bbox]
        face: dict = {"id": len(self.annotations) + 1, "image_id": image_id, "category_id": FACE_CATEGORY_ID}
        face["bbox"] = bbox
        if segmentation is not None:
            face["segmentation"] = segmentation
        if area is None:
            area = bbox[2] * bbox[3]
        face["area"] = round(float(area), 2)
        face["iscrowd"] = int(iscrowd)
        attributes = {k: v for k, v in (attributes or {}).items() if v is not None}
        if attributes:
            face["attributes"] = attributes
        face.update(extra)
        image = self.images[image_id - 1]  # ids are 1, 2, ... in order (add_image)
        where = where or str(self.image_root / image["file_name"])
        problems = validate_annotation(face, image, where)
        if problems:
            detail = "; ".join(p[len(where) + 2:] for p in problems)
            self.skip_face(image_id, "face rejected by the loader's checks", where, detail)
            return None
        self.annotations.append(face)
        return face["id"]

    def to_coco(self, inputs: Iterable[PathLike] = (), **info: object) -> dict:
        """The COCO face dict. ``inputs`` (source paths) and ``info`` go into the ``info`` block.

        Images whose every face record was malformed are left out here (counted in ``skipped``)."""
        skipped, notes = Counter(self.skipped), Counter(self.notes)
        kept = Counter(a["image_id"] for a in self.annotations)
        images = []
        for image in self.images:
            bad = self.malformed_faces.get(image["id"], 0)
            if bad and not kept[image["id"]]:
                logger.warning("%s: dropped: all %d of its face records are malformed (it is not a negative)",
                               self.image_root / image["file_name"], bad)
                skipped["image without a valid face record"] += 1
                continue
            if bad:
                image = {**image, "malformed_faces": bad}
                notes["image kept with some malformed face records"] += 1
            images.append(image)
        return {
            "info": {
                "description": self.description or f"{self.source} faces",
                "source": self.source,
                "converter_version": CONVERTER_VERSION,
                "date_created": datetime.datetime.now().isoformat(timespec="seconds"),
                "inputs": [os.path.abspath(p) for p in inputs],
                "skipped": dict(sorted(skipped.items())),
                "notes": dict(sorted(notes.items())),
                **info,
            },
            "image_root": str(self.image_root),
            "images": images,
            "annotations": self.annotations,
            "categories": [{"id": FACE_CATEGORY_ID, "name": "face", "supercategory": "person"}],
        }


def write_coco(data: dict, path: PathLike) -> None:
    """Write a COCO face dict to ``path`` atomically (no partial file on failure)."""
    save_json(data, path)


# --- attributes ---------------------------------------------------------------------------------
def parse_attributes(values: Mapping[str, object]) -> Tuple[dict, List[str]]:
    """Read ``age`` / ``gender`` / ``emotion`` from tool attributes (keys case-insensitive).

    Returns ``(attributes, problems)``: recognised values normalised (see
    :mod:`maskface.data.attributes`), empty values skipped (unknown), one problem string per
    value that is present but invalid. Other keys are ignored.
    """
    attrs: dict = {}
    problems: List[str] = []
    parsers = {"age": normalize_age, "gender": normalize_gender, "emotion": normalize_emotion}
    for key, value in values.items():
        key = str(key).strip().lower()
        if key not in parsers or value is None or (isinstance(value, str) and not value.strip()):
            continue
        parsed = parsers[key](value)
        if parsed is None:
            problems.append(f"invalid {key} {value!r}")
        else:
            attrs[key] = parsed
    return attrs, problems


def collect_attributes(pairs: Iterable[Tuple[str, object]]) -> Tuple[dict, List[str]]:
    """Attributes of one face from ``(key, value)`` pairs that may come from several shapes.

    Like :func:`parse_attributes`, and a value given twice must agree: ``("gender", "F")`` and
    ``("gender", "female")`` do, ``("age", "30")`` and ``("age", "31")`` are reported as a conflict.
    """
    found: Dict[str, list] = {}
    problems: List[str] = []
    for key, value in pairs:
        parsed, bad = parse_attributes({key: value})
        problems += bad
        for name, v in parsed.items():
            found.setdefault(name, []).append(v)
    attrs = {}
    for name, values in found.items():
        if len(set(values)) > 1:
            problems.append(f"conflicting {name} values {values}")
        else:
            attrs[name] = values[0]
    return attrs, problems


def is_face_label(label: str) -> bool:
    """True when a shape label's first word is one of :data:`FACE_LABELS` (case-insensitive)."""
    words = label.strip().split()
    return bool(words) and words[0].lower() in FACE_LABELS


# --- masks --------------------------------------------------------------------------------------
def mask_to_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE ``{"size": [h, w], "counts": str}`` of a boolean ``H x W`` mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def rle_area_bbox(rle: dict) -> Tuple[float, List[float]]:
    """Area (px^2) and ``[x, y, w, h]`` box of a compressed RLE."""
    coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return float(mask_utils.area(coded)), [float(v) for v in mask_utils.toBbox(coded)]


def polygons_area_bbox(polygons: List[List[float]], height: int, width: int) -> Tuple[float, List[float]]:
    """Area (px^2, as pycocotools rasterises it) and tight ``[x, y, w, h]`` box of polygons."""
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    xs = [v for poly in polygons for v in poly[0::2]]
    ys = [v for poly in polygons for v in poly[1::2]]
    return float(mask_utils.area(rle)), [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def keep_main_components(mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """Keep the largest 8-connected component of a boolean mask and every other component whose
    area is at least ``min_fraction`` times the largest one (drops annotation specks)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= min_fraction * areas.max()) + 1
    return np.isin(labels, keep)


def clip_box(box: Sequence[float], width: int, height: int) -> List[float]:
    """Clip an ``[x, y, w, h]`` box to a ``width x height`` image."""
    x1, y1 = min(max(box[0], 0.0), width), min(max(box[1], 0.0), height)
    x2, y2 = min(max(box[0] + box[2], 0.0), width), min(max(box[1] + box[3], 0.0), height)
    return [x1, y1, x2 - x1, y2 - y1]


# --- images -------------------------------------------------------------------------------------
def list_images(folder: PathLike) -> List[Path]:
    """All image files under ``folder`` (recursive), sorted by path."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def image_size(path: PathLike) -> Tuple[int, int]:
    """``(width, height)`` in px as OpenCV decodes the image, i.e. after EXIF orientation.

    Reads only the header. Raises ``OSError`` when the file is missing or not an image.
    """
    with Image.open(path) as im:
        width, height = im.size
        orientation = im.getexif().get(0x0112, 1)  # 5..8: rotated by 90 degrees
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def read_label_image(path: PathLike) -> np.ndarray:
    """A label map as ``H x W`` uint8 class indices (palette and grey PNGs keep their values,
    1-bit images give 0/1), or ``H x W x 3`` uint8 RGB for colour-coded masks."""
    with Image.open(path) as im:
        if im.mode in ("P", "L"):
            return np.asarray(im)
        if im.mode == "1":
            return np.asarray(im, dtype=np.uint8)
        return np.asarray(im.convert("RGB"))


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of a label map or boolean mask to ``width x height``."""
    if mask.shape[1] == width and mask.shape[0] == height:
        return mask
    resized = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(mask.dtype)


def near_duplicate_groups(paths: Sequence[PathLike], threshold: float = 0.95, size: int = 16,
                          block: int = 2048, progress: bool = False) -> List[List[int]]:
    """Groups of images that show the same picture (re-encoded, renamed, slightly re-cropped).

    Each image becomes a ``size x size`` grey thumbnail with zero mean and unit norm; two images
    whose thumbnails correlate above ``threshold`` are near-duplicates, and groups are the
    connected components of that relation. On UTKFace (16 px, 0.95) this finds the faces that
    appear twice under different names (often with different labels), while different people in
    the same pose stay below it (the count of pairs plateaus from 0.95 to 0.99).

    Args:
        paths: image files; an unreadable one is its own group (logged).
        threshold: correlation in (0, 1].
        size: thumbnail side in px.
        block: rows compared at once (memory: ``block x len(paths)`` floats).
        progress: show a progress bar.

    Returns:
        Groups of >= 2 indices into ``paths``, each sorted, ordered by their first index.
    """
    from maskface.utils.progress import progress_bar

    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    thumbs = np.zeros((len(paths), size * size), dtype=np.float32)
    for i, path in enumerate(progress_bar(paths, desc="thumbnails", unit="img", disable=not progress)):
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            logger.warning("%s: unreadable image, not compared for near-duplicates", path)
            continue
        t = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        t -= t.mean()
        norm = np.linalg.norm(t)
        thumbs[i] = t / norm if norm > 0 else 0.0  # a flat image matches nothing
    parent = list(range(len(paths)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(paths), block):
        rows, cols = np.nonzero(thumbs[start : start + block] @ thumbs.T > threshold)
        for r, c in zip((rows + start).tolist(), cols.tolist()):
            if r < c:
                a, b = find(r), find(c)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: Dict[int, List[int]] = {}
    for i in range(len(paths)):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])
