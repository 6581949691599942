"""CelebAMask-HQ -> COCO faces with RLE masks.

Two layouts are read (``layout="auto"`` picks by the folders present):

* ``labels``: merged 19-class parsing maps ``<root>/labels/N.png`` (palette PNG, pixel value =
  class index, see :data:`CLASSES`) next to ``<root>/images/N.jpg``;
* ``parts``: the original release, ``<root>/CelebAMask-HQ-mask-anno/<k>/<NNNNN>_<part>.png``
  (binary 512 x 512, one file per present part, ``k = N // 2000``) next to
  ``<root>/CelebA-HQ-img/N.jpg`` (1024 x 1024).

One face per image: the union of :data:`FACE_PARTS` (plus the ears with ``include_ears``); hair,
hat, earrings, necklace, neck and cloth are excluded. Masks at another resolution than the image
are resized with nearest neighbour. Components smaller than ``min_component_fraction`` of the
largest are dropped (default 0.002: annotation specks of a few pixels that would stretch the box;
forehead skin between hair strands is kept). The mask is stored as exact compressed RLE; the box is
its tight box.

Optional ``attributes_file`` (``CelebAMask-HQ-attribute-anno.txt``: a count line, a line of 40
attribute names, then ``N.jpg`` and 40 values of +-1 per line) gives ``gender`` from ``Male``.
CelebA-HQ has no identity labels here, so splits are random.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from maskface.data.converters.common import (
    CocoFacesBuilder,
    ConversionError,
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

CLASSES = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)  # fmt: skip
FACE_PARTS = ("skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip")
EAR_PARTS = ("l_ear", "r_ear")
LAYOUTS = {"labels": ("images", "labels"), "parts": ("CelebA-HQ-img", "CelebAMask-HQ-mask-anno")}
_PART_FILE = re.compile(r"^(\d+)_([a-z_]+)\.png$")


def face_parts(include_ears: bool = False) -> Tuple[str, ...]:
    """Names of the CelebAMask-HQ classes that make up the face mask."""
    return FACE_PARTS + (EAR_PARTS if include_ears else ())


def detect_layout(root: Path) -> str:
    """``"labels"`` or ``"parts"``, from the folders present under ``root``."""
    for name, (images, masks) in LAYOUTS.items():
        if (root / images).is_dir() and (root / masks).is_dir():
            return name
    expected = " or ".join(f"{i}/ + {m}/" for i, m in LAYOUTS.values())
    raise FileNotFoundError(f"{root}: not a CelebAMask-HQ folder (expected {expected})")


def read_gender_file(path: PathLike) -> Dict[str, str]:
    """``{image file name: "female" | "male"}`` from ``CelebAMask-HQ-attribute-anno.txt``."""
    path = Path(path)
    with open(path, "r", encoding="utf-8") as f:
        lines = f.read().splitlines()
    if len(lines) < 2 or "Male" not in lines[1].split():
        raise ConversionError(f"{path}:2: expected the attribute-name line with 'Male'")
    names = lines[1].split()
    column = names.index("Male") + 1
    genders = {}
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1 or parts[column] not in ("1", "-1"):
            raise ConversionError(f"{path}:{number}: expected a file name and {len(names)} values of 1/-1")
        genders[parts[0]] = "male" if parts[column] == "1" else "female"
    return genders


def _label_mask(label_file: Path, class_ids: List[int]) -> np.ndarray:
    label = read_label_image(label_file)
    if label.ndim != 2:
        raise ValueError(f"expected a palette/grey label map with class indices, got shape {label.shape}")
    return np.isin(label, class_ids)


def _parts_mask(part_files: Dict[str, Path], parts: Tuple[str, ...]) -> Optional[np.ndarray]:
    mask = None
    for part in parts:
        if part in part_files:
            m = read_label_image(part_files[part])
            m = (m.max(axis=2) if m.ndim == 3 else m) > 0
            mask = m if mask is None else mask | resize_mask(m, mask.shape[1], mask.shape[0])
    return mask


def _index_parts(mask_root: Path) -> Dict[int, Dict[str, Path]]:
    index: Dict[int, Dict[str, Path]] = {}
    for path in mask_root.rglob("*.png"):
        match = _PART_FILE.match(path.name)
        if match:
            index.setdefault(int(match.group(1)), {})[match.group(2)] = path
    return index


def convert_celebamask(
    root: PathLike,
    layout: str = "auto",
    include_ears: bool = False,
    min_component_fraction: float = 0.002,
    attributes_file: Optional[PathLike] = None,
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
) -> dict:
    """Convert CelebAMask-HQ (either layout, see the module docstring).

    Args:
        root: dataset folder.
        layout: ``"auto"``, ``"labels"`` or ``"parts"``.
        include_ears: add ``l_ear`` / ``r_ear`` to the face mask.
        min_component_fraction: drop mask components smaller than this fraction of the largest.
        attributes_file: optional ``CelebAMask-HQ-attribute-anno.txt`` for ``gender``.
        strict: raise at the first bad record instead of skipping it.
        limit: convert only the first ``limit`` images (by number).
        progress: show a progress bar.
    """
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be 'auto', 'labels' or 'parts', got {layout!r}")
    image_dir, mask_dir = (root / name for name in LAYOUTS[layout])
    parts = face_parts(include_ears)
    genders = read_gender_file(attributes_file) if attributes_file else {}
    builder = CocoFacesBuilder("celebamask_hq", image_dir, strict, description=f"CelebAMask-HQ ({layout} layout)")
    images = sorted(
        (p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".png") and p.stem.isdigit()),
        key=lambda p: int(p.stem),
    )[:limit]
    part_index = _index_parts(mask_dir) if layout == "parts" else {}
    class_ids = [CLASSES.index(p) for p in parts]
    for path in progress_bar(images, desc="celebamask", unit="img", disable=not progress):
        try:
            width, height = image_size(path)
            if layout == "labels":
                where = str(mask_dir / f"{path.stem}.png")
                mask = _label_mask(mask_dir / f"{path.stem}.png", class_ids)
            else:
                where = f"{mask_dir}: image {path.stem}"
                mask = _parts_mask(part_index.get(int(path.stem), {}), parts)
        except (OSError, ValueError) as e:
            builder.skip("unreadable image or mask", str(path), str(e))
            continue
        if mask is None or not mask.any():
            builder.skip("empty face mask", where, f"no face-part pixels ({', '.join(parts)})")
            continue
        if mask.shape != (height, width):
            mask = resize_mask(mask, width, height)
        mask = keep_main_components(mask, min_component_fraction)
        rle = mask_to_rle(mask)
        area, bbox = rle_area_bbox(rle)
        if genders and path.name not in genders:
            builder.note("no attribute row (gender unknown)", str(attributes_file), f"no row for {path.name}")
        image_id = builder.add_image(path, width, height)
        builder.add_face(image_id, bbox, segmentation=rle, area=area, attributes={"gender": genders.get(path.name)})
    return builder.to_coco(inputs=[root] + ([attributes_file] if attributes_file else []), layout=layout)
