"""UTKFace aligned crops -> COCO faces with age and gender.

Labels come from the file name ``[age]_[gender]_[race]_[datetime].jpg.chip.jpg``: age in years,
gender ``0`` male / ``1`` female. Names that do not follow it (missing fields, gender other than
0/1, non-numeric or out-of-range age) are reported and skipped. The race field (0..4: White,
Black, Asian, Indian, Others) is kept as the face's ``groups: {"race": ...}``: it is not a label
MaskFace predicts, only a way to break its metrics down by population group (bias); a face with
an unreadable race field keeps its age and gender and gets no group.

The face is the whole aligned crop: its box covers the image and there is no mask. With
``masks="auto"`` each crop is annotated by mediapipe (:mod:`.auto`): the largest face oval
becomes the mask and its tight box the face box (crops where mediapipe finds no face stay
box-only; counted in ``info["notes"]``).

UTKFace has no identity labels, but some faces appear twice under different names (and often
with different labels). With ``twins=True`` (default) such near-duplicates
(:func:`~maskface.data.converters.common.near_duplicate_groups`) share an ``identity``
(``"twin:<file name of the first>"``), so ``split`` keeps them on one side; other images have no
identity and are split at random.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Tuple

from maskface.data.attributes import normalize_age
from maskface.data.converters.auto import FaceOvalAnnotator, read_rgb
from maskface.data.converters.common import (
    CocoFacesBuilder,
    PathLike,
    list_images,
    near_duplicate_groups,
    polygons_area_bbox,
)
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

UTK_GENDERS = {"0": "male", "1": "female"}
UTK_RACES = {"0": "white", "1": "black", "2": "asian", "3": "indian", "4": "other"}
AUTO_MASK_SCORE_THRESH = 0.3  # crops hold one face, so a lower detection score is still that face
AUTO_MASK_PAD = 0.5  # UTKFace crops are filled by the face, which mediapipe misses without a border


def parse_utkface_name(name: str) -> Tuple[float, str]:
    """``(age in years, gender)`` from a UTKFace file name; ``ValueError`` says what is wrong."""
    fields = name.split("_")
    if len(fields) != 4:
        raise ValueError(f"expected 4 fields age_gender_race_datetime, got {len(fields)}")
    age = normalize_age(fields[0]) if fields[0].isdigit() else None
    if age is None:
        raise ValueError(f"age must be a whole number of years in [0, 120], got {fields[0]!r}")
    if fields[1] not in UTK_GENDERS:
        raise ValueError(f"gender must be 0 (male) or 1 (female), got {fields[1]!r}")
    return age, UTK_GENDERS[fields[1]]


def parse_utkface_race(name: str) -> Optional[str]:
    """The race group of a UTKFace file name (a value of :data:`UTK_RACES`), or ``None``."""
    fields = name.split("_")
    return UTK_RACES.get(fields[2]) if len(fields) == 4 else None


def convert_utkface(
    folder: PathLike,
    masks: Optional[str] = None,
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
    twins: bool = True,
) -> dict:
    """Convert a folder of UTKFace crops (e.g. ``crop_part1``; recursive).

    Args:
        folder: image folder; also the output's image root.
        masks: ``None`` (box-only) or ``"auto"`` (mediapipe face ovals, needs ``[annotate]``).
        strict: raise at the first malformed name instead of skipping it.
        limit: convert only the first ``limit`` images (sorted by path).
        progress: show a progress bar.
        twins: give near-duplicate images a shared ``identity`` (see the module doc).
    """
    if masks not in (None, "auto"):
        raise ValueError(f"masks must be None or 'auto', got {masks!r}")
    folder = Path(folder)
    builder = CocoFacesBuilder("utkface", folder, strict, description="UTKFace crops (age, gender from file names)")
    annotator = FaceOvalAnnotator(max_faces=1, score_thresh=AUTO_MASK_SCORE_THRESH, pad=AUTO_MASK_PAD) if masks == "auto" else None
    paths = list_images(folder)[:limit]
    twin_of = {}
    if twins:
        for group in near_duplicate_groups(paths, progress=progress):
            twin_of.update({paths[i]: f"twin:{paths[group[0]].name}" for i in group})
        logger.info("%d images are near-duplicates of another (%d groups)", len(twin_of),
                    len(set(twin_of.values())))
    try:
        for path in progress_bar(paths, desc="utkface", unit="img", disable=not progress):
            try:
                age, gender = parse_utkface_name(path.name)
            except ValueError as e:
                builder.skip("malformed file name", str(path), str(e))
                continue
            size = builder.image_size(path)
            if size is None:
                continue
            width, height = size
            image_id = builder.add_image(path, width, height, **({"identity": twin_of[path]} if path in twin_of else {}))
            if path in twin_of:
                builder.note("near-duplicate of another image (shared identity)", str(path), twin_of[path])
            attributes = {"age": age, "gender": gender}
            race = parse_utkface_race(path.name)
            extra = {"groups": {"race": race}} if race else {}
            if not race:
                builder.note("race field unreadable (face kept without a group)", str(path), path.name.split("_")[2])
            faces = annotator(read_rgb(path)) if annotator else []
            if faces:
                area, bbox = polygons_area_bbox([faces[0]["polygon"]], height, width)
                builder.add_face(image_id, bbox, [faces[0]["polygon"]], area, attributes=attributes, **extra)
            else:
                if annotator:
                    builder.note("no face found by mediapipe (box-only)", str(path), "kept as a whole-crop box")
                builder.add_face(image_id, [0, 0, width, height], attributes=attributes, **extra)
    finally:
        if annotator:
            annotator.close()
    return builder.to_coco(inputs=[folder], masks=masks or "none")
