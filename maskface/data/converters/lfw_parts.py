"""LFW Part Labels -> COCO faces with RLE masks.

Layout (the official release)::

    <root>/lfw_funneled/<Name>/<Name>_<NNNN>.jpg              250 x 250 images
    <root>/parts_lfw_funneled_gt_images/<Name>_<NNNN>.ppm     colour masks (.png re-encodings too)

Masks are colour-coded: red = hair, green = face skin, blue = background. Only labelled images
(those with a mask) are converted. One face per image: the green region, keeping its largest
8-connected component plus every component at least ``min_component_fraction`` of its size (the
skin label of LFW Parts includes the visible neck, which a beard can cut off as a second
component, and cheeks or ears that hair separates). The default 0.002 drops only specks of a few
pixels, which would otherwise stretch the box. The mask is stored as compressed RLE, which is
exact (polygons would smooth the outline and drop holes); the box is the mask's tight box.
``identity`` is the person's name, so splits keep each person on one side.

Gender: LFW has none in the release; ``gender_file`` takes a ``file,gender`` CSV (e.g.
``lfw_parts_gender.csv``, built from LFW's published female / male name lists) and gives each
listed face ``attributes["gender"]``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from maskface.data.attributes import normalize_gender
from maskface.data.converters.common import (
    CocoFacesBuilder,
    PathLike,
    image_size,
    keep_main_components,
    mask_to_rle,
    read_label_image,
    resize_mask,
    rle_area_bbox,
)
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

MASK_EXTENSIONS = (".png", ".ppm")  # preferred first when a mask exists in both
SKIN_CHANNEL = 1  # RGB index of the face-skin colour (green)


def skin_mask(label: np.ndarray) -> np.ndarray:
    """Boolean ``H x W`` face-skin mask of an ``H x W x 3`` RGB LFW Parts label image
    (pixels whose strongest channel is green)."""
    if label.ndim != 3 or label.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 colour mask, got shape {label.shape}")
    return (label.argmax(axis=2) == SKIN_CHANNEL) & (label[..., SKIN_CHANNEL] > 127)


def read_gender_file(path: PathLike) -> Dict[str, str]:
    """``{image file name: "female" | "male"}`` from ``file,gender`` rows (a header row
    ``file,gender`` is allowed). Raises ``ValueError`` naming the line of a malformed row."""
    genders: Dict[str, str] = {}
    with open(path, "r", encoding="utf-8", newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or (line == 1 and [c.strip().lower() for c in row] == ["file", "gender"]):
                continue
            if len(row) != 2:
                raise ValueError(f"{path}:{line}: expected 2 columns file,gender, got {len(row)}")
            name, gender = row[0].strip(), normalize_gender(row[1])
            if gender is None:
                raise ValueError(f"{path}:{line}: unknown gender {row[1]!r}; expected female or male")
            if name in genders and genders[name] != gender:
                raise ValueError(f"{path}:{line}: {name!r} listed again with another gender")
            genders[name] = gender
    return genders


def listed_gender(builder: CocoFacesBuilder, genders: Optional[Dict[str, str]], path: Path,
                  unlisted: str) -> Optional[dict]:
    """``{"gender": ...}`` of the image ``path`` from ``{file name: gender}``; ``None`` when there is
    no gender list, or (noted in ``builder`` under ``unlisted``) when the image is not on it."""
    if genders is None:
        return None
    gender = genders.get(path.name)
    if gender is None:
        builder.note(unlisted, str(path))
        return None
    return {"gender": gender}


def convert_lfw_parts(
    root: PathLike,
    image_dir: str = "lfw_funneled",
    mask_dir: str = "parts_lfw_funneled_gt_images",
    min_component_fraction: float = 0.002,
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
    gender_file: Optional[PathLike] = None,
) -> dict:
    """Convert LFW Part Labels.

    Args:
        root: folder holding ``image_dir`` and ``mask_dir``.
        image_dir, mask_dir: sub-folder names (defaults: the official ones).
        min_component_fraction: skin components smaller than this fraction of the largest one
            are dropped, in [0, 1].
        strict: raise at the first bad record instead of skipping it.
        limit: convert only the first ``limit`` masks (sorted by name).
        progress: show a progress bar.
        gender_file: ``file,gender`` CSV (:func:`read_gender_file`); faces not in it have no
            gender (counted in ``info["notes"]``).

    Returns:
        COCO face dict, image root ``<root>/<image_dir>``, one RLE face per image.
    """
    root = Path(root)
    images, masks = root / image_dir, root / mask_dir
    for folder in (images, masks):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found (expected the LFW Part Labels layout)")
    builder = CocoFacesBuilder("lfw_parts", images, strict, description="LFW Part Labels (face skin masks)")
    genders = read_gender_file(gender_file) if gender_file else None
    by_stem: Dict[str, Path] = {}
    for ext in reversed(MASK_EXTENSIONS):
        by_stem.update({p.stem: p for p in sorted(masks.glob(f"*{ext}"))})
    stems = sorted(by_stem)[:limit]
    for stem in progress_bar(stems, desc="lfw-parts", unit="img", disable=not progress):
        mask_path = by_stem[stem]
        person = stem.rsplit("_", 1)[0]
        path = images / person / f"{stem}.jpg"
        try:
            width, height = image_size(path)
            label = read_label_image(mask_path)
            skin = skin_mask(label)
        except (OSError, ValueError) as e:
            builder.skip("unreadable image or mask", str(mask_path), str(e))
            continue
        if skin.shape != (height, width):
            builder.note("mask resized to image", str(mask_path), f"mask {skin.shape} vs image {(height, width)}")
            skin = resize_mask(skin, width, height)
        skin = keep_main_components(skin, min_component_fraction)
        if not skin.any():
            builder.skip("empty face mask", str(mask_path), "no face-skin (green) pixels")
            continue
        rle = mask_to_rle(skin)
        area, bbox = rle_area_bbox(rle)
        image_id = builder.add_image(path, width, height, identity=person)
        attributes = listed_gender(builder, genders, path, "no gender in the gender file")
        builder.add_face(image_id, bbox, segmentation=rle, area=area, attributes=attributes)
    return builder.to_coco(inputs=[root] + ([gender_file] if gender_file else []))
