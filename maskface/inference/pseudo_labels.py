"""Give the faces of a COCO face file the detector's own boxes and masks ("pseudo-masks").

Why: the attribute net sees, at inference, crops cut from the *detector's* box and mask. Sets
labelled with attributes but not with masks (UTKFace, whose "box" is the whole 200 px crop)
would otherwise train it on differently framed crops; on UTKFace validation images that
mismatch costs ~12 years of age MAE and ~20 points of gender accuracy. Relabelling such a set
with the detector makes training crops look like inference crops.

Each non-crowd face takes the highest-scoring detection whose box centre lies inside the face's
box and whose IoU with it is at least ``min_iou``; it keeps its attributes and gains the
detection's box, RLE mask and ``score``. Faces no detection matches are dropped (counted in the
output's ``info["notes"]``): the pipeline would not describe them either. Crowd faces are kept.

Tight crops (UTKFace's 200 px chips, where the face fills the frame) are not what the detector
meets in photos: on such chips it often boxes a fragment (the lower half of the face). ``pad``
adds a grey border before detection (:mod:`maskface.inference.padding`); boxes and masks are
mapped back (and clipped) to the original image.
"""

from __future__ import annotations

import logging
import os
from typing import List, Optional, Sequence

import cv2

from maskface.data.coco_faces import load_coco_faces
from maskface.data.converters.common import CocoFacesBuilder
from maskface.inference.padding import check_pad, pad_image, unpad_face
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)


def _iou_xyxy(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_detection(gt_xywh: Sequence[float], boxes: List[Sequence[float]], scores: List[float],
                    taken: set, min_iou: float) -> Optional[int]:
    """Index of the best free detection (xyxy ``boxes``) for a face box ``[x, y, w, h]``, or None."""
    x, y, w, h = gt_xywh
    gt = [x, y, x + w, y + h]
    best, best_score = None, -1.0
    for i, (box, score) in enumerate(zip(boxes, scores)):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        inside = gt[0] <= cx <= gt[2] and gt[1] <= cy <= gt[3]
        if i not in taken and inside and _iou_xyxy(box, gt) >= min_iou and score > best_score:
            best, best_score = i, score
    return best


def pseudo_label_faces(json_file: str, predictor, image_root: Optional[str] = None, min_iou: float = 0.2,
                       batch_size: int = 8, strict: bool = False, limit: Optional[int] = None,
                       progress: bool = True, pad: float = 0.0) -> dict:
    """Relabel the faces of ``json_file`` with ``predictor``'s boxes and masks (module docstring).

    Args:
        json_file: COCO face file (its faces may be box-only).
        predictor: a :class:`maskface.inference.predictor.FacePredictor`; its ``score_thresh`` is
            the lowest detection score used (a low value such as 0.05 finds more of the known faces).
        image_root: image folder of ``json_file`` (default: as :func:`load_coco_faces` resolves it).
        min_iou: minimum IoU between a detection and the face box it replaces, in [0, 1].
        batch_size: images per detector call.
        strict: raise at the first unreadable image instead of skipping it.
        limit: relabel only the first ``limit`` images.
        progress: show a progress bar.
        pad: grey border added on each side before detection, as a fraction of the image's
            width / height (e.g. 0.25; 0 = none). See the module docstring.

    Returns:
        The COCO face dict (faces with RLE masks, attributes kept, ``score`` per face).
    """
    check_pad(pad)
    records = load_coco_faces(json_file, image_root, strict=strict)[:limit]
    root = os.path.commonpath([os.path.dirname(r["file_name"]) for r in records]) if records else "."
    builder = CocoFacesBuilder("pseudo-masks", root, strict, description=f"detector pseudo-masks of {json_file}")
    bar = progress_bar(total=len(records), desc="pseudo-masks", unit="img", disable=not progress)
    for start in range(0, len(records), batch_size):
        batch, images = [], []
        for rec in records[start:start + batch_size]:
            image = cv2.imread(rec["file_name"], cv2.IMREAD_COLOR)
            if image is None:
                builder.skip("unreadable image", rec["file_name"], "cannot decode the image")
                continue
            batch.append(rec)
            images.append(image)
        offsets = []
        if pad > 0:
            for k, image in enumerate(images):
                images[k], (px, py) = pad_image(image, pad)
                offsets.append((px, py, image.shape[1], image.shape[0]))
        for k, (rec, faces) in enumerate(zip(batch, predictor(images, color="bgr") if images else [])):
            image_id = builder.add_image(rec["file_name"], rec["width"], rec["height"], identity=rec.get("identity"))
            if offsets:
                faces = [f for f in (unpad_face(f, *offsets[k]) for f in faces) if f is not None]
            boxes, scores, taken = [f.box for f in faces], [f.score for f in faces], set()
            for ann in rec["annotations"]:
                if ann["iscrowd"]:
                    builder.add_face(image_id, ann["bbox"], ann["segmentation"], ann["area"], iscrowd=1)
                    continue
                i = match_detection(ann["bbox"], boxes, scores, taken, min_iou)
                if i is None:
                    builder.note("no detection matched (face dropped)", rec["file_name"], f"face {ann['id']}")
                    continue
                taken.add(i)
                x1, y1, x2, y2 = boxes[i]
                extra = {"groups": ann["groups"]} if ann.get("groups") else {}
                builder.add_face(image_id, [x1, y1, x2 - x1, y2 - y1], faces[i].rle(), faces[i].mask_area,
                                 attributes=ann["attributes"], score=round(float(scores[i]), 4), **extra)
                builder.note("faces relabelled")
        bar.update(len(records[start:start + batch_size]))
    bar.close()
    return builder.to_coco(inputs=[json_file], min_iou=min_iou, score_thresh=predictor.score_thresh)
