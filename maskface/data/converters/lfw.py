"""All of LFW (funneled) -> COCO faces with gender, grouped by person.

Layout (the official ``lfw-funneled.tgz``)::

    <root>/<Name>/<Name>_<NNNN>.jpg          250 x 250 images, one folder per person

``root`` may also be the folder holding ``lfw_funneled/``. LFW has no face boxes: the funneled
images are aligned so that the person's face lies in the middle, and other people can show at the
edges. Each image gets one box-only face, a prior box of that central region
(:data:`FACE_PRIOR`, fractions of the image size): it is where the face is, not a tight box, so
give the faces the detector's own boxes and masks afterwards (``convert_annotations.py
pseudo-masks``: a detection counts only when its centre lies inside the face's box, which keeps
bystanders at the edges out).

Gender: from LFW's published name lists (``female_names.txt`` / ``male_names.txt``, one image file
name a line, e.g. ``Aaron_Peirsol_0001.jpg``). The published lists have quirks that are reported,
not guessed at: a line without ``.jpg`` is read as that file name with it; a line that is no LFW
file name (``Yasser_Arafat_0005.jpg-``) is reported with its line and ignored; an image on both
lists (5 in the published ones) and an image on neither get no gender (counted in
``info["notes"]``).

``identity`` is the person's name, so ``convert_annotations.py split`` keeps each person on one
side. ``heldout_file`` (one person a line, e.g. ``lfw_parts/heldout_persons.txt``) names people
kept for an independent test: ``heldout="exclude"`` leaves them out (a training pool),
``heldout="only"`` converts only them (a test-only file).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from maskface.data.converters.common import CocoFacesBuilder, PathLike
from maskface.data.converters.lfw_parts import listed_gender
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

# Where the face is in a 250 x 250 funneled LFW image, as (x0, y0, x1, y1) fractions of the
# image size: the detector's boxes on LFW Part Labels images lie inside it.
FACE_PRIOR = (0.25, 0.2, 0.75, 0.8)
HELDOUT_MODES = ("exclude", "only")
_FILE_NAME = re.compile(r"^(?P<person>.+)_(?P<number>\d{4})\.jpg$")


def read_name_list(path: PathLike) -> Tuple[List[str], List[str]]:
    """Image file names of one LFW gender list, and the problems found (``"<file>:<line>: ..."``).

    A line without an extension gets ``.jpg``; empty lines are skipped; a line that is still no
    ``<Name>_<NNNN>.jpg`` name is reported and left out.
    """
    names: List[str] = []
    problems: List[str] = []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for line, text in enumerate(f, start=1):
            name = text.strip()
            if not name:
                continue
            if not Path(name).suffix:
                problems.append(f"{path}:{line}: {name!r} has no extension; read as {name}.jpg")
                name += ".jpg"
            if not _FILE_NAME.match(name):
                problems.append(f"{path}:{line}: {name!r} is no LFW file name <Name>_<NNNN>.jpg (ignored)")
                continue
            names.append(name)
    return names, problems


def gender_from_lists(female: Sequence[str], male: Sequence[str]) -> Tuple[Dict[str, str], Set[str]]:
    """``({file name: "female" | "male"}, {names on both lists})``; names on both get no gender."""
    both = set(female) & set(male)
    genders = {n: "female" for n in female if n not in both}
    genders.update({n: "male" for n in male if n not in both})
    return genders, both


def read_persons(path: PathLike) -> Set[str]:
    """Person names (LFW folder names), one a line; blank lines and ``#`` comments are skipped."""
    with open(path, "r", encoding="utf-8") as f:
        return {t.strip() for t in f if t.strip() and not t.lstrip().startswith("#")}


def convert_lfw(
    root: PathLike,
    female_names: Optional[PathLike] = None,
    male_names: Optional[PathLike] = None,
    heldout_file: Optional[PathLike] = None,
    heldout: str = "exclude",
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
) -> dict:
    """Convert LFW funneled (all of it, or what a folder holds).

    Args:
        root: the ``lfw_funneled`` folder (``<Name>/<Name>_<NNNN>.jpg``) or its parent.
        female_names, male_names: LFW's gender lists (:func:`read_name_list`); give both or none.
        heldout_file: people kept for an independent test (:func:`read_persons`).
        heldout: ``"exclude"`` (leave them out) or ``"only"`` (convert only them).
        strict: raise at the first bad record (unreadable image, bad name-list line).
        limit: convert only the first ``limit`` images (sorted by path).
        progress: show a progress bar.

    Returns:
        COCO face dict, image root = the ``lfw_funneled`` folder, one box-only face per image with
        ``attributes["gender"]`` where the lists give one, ``identity`` = person.
    """
    if heldout not in HELDOUT_MODES:
        raise ValueError(f"heldout must be one of {HELDOUT_MODES}, got {heldout!r}")
    if (female_names is None) != (male_names is None):
        raise ValueError("give both female_names and male_names, or neither")
    root = Path(root)
    if (root / "lfw_funneled").is_dir():
        root = root / "lfw_funneled"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder not found (expected LFW funneled: <Name>/<Name>_<NNNN>.jpg)")
    builder = CocoFacesBuilder("lfw", root, strict, description="LFW funneled (gender from LFW's name lists)")
    genders: Optional[Dict[str, str]] = None
    if female_names is not None:
        lists = []
        for path in (female_names, male_names):
            names, problems = read_name_list(path)
            for problem in problems:
                where, detail = problem.split(": ", 1)
                if detail.endswith("(ignored)"):
                    builder.skip("bad name-list line", where, detail)
                else:
                    builder.note("name-list line without .jpg", where, detail)
            lists.append(names)
        genders, both = gender_from_lists(*lists)
        for name in sorted(both):
            builder.note("file name on both gender lists (no gender)", name, "listed female and male")
    held = read_persons(heldout_file) if heldout_file else None
    persons = sorted(p for p in root.iterdir() if p.is_dir())
    if held is not None:
        missing = held - {p.name for p in persons}
        if missing:
            logger.info("%d held-out people have no folder under %s", len(missing), root)
        persons = [p for p in persons if (p.name in held) == (heldout == "only")]
    paths = [f for p in persons for f in sorted(p.glob("*.jpg"))][:limit]
    x0, y0, x1, y1 = FACE_PRIOR
    for path in progress_bar(paths, desc="lfw", unit="img", disable=not progress):
        match = _FILE_NAME.match(path.name)
        if not match or match.group("person") != path.parent.name:
            builder.skip("file name not <Name>_<NNNN>.jpg of its folder", str(path),
                         f"expected {path.parent.name}_<NNNN>.jpg")
            continue
        size = builder.image_size(path)
        if size is None:
            continue
        width, height = size
        attributes = listed_gender(builder, genders, path, "no gender on the name lists")
        image_id = builder.add_image(path, width, height, identity=path.parent.name)
        box = [x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height]
        builder.add_face(image_id, box, attributes=attributes)
    inputs = [root] + [p for p in (female_names, male_names, heldout_file) if p]
    return builder.to_coco(inputs=inputs, masks="none", heldout=heldout if held is not None else "none")
