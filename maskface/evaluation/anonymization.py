"""How well anonymisation covers faces: run a predictor on images with ground-truth face masks and
measure, for each region mode (mask, box, ellipse) and margin, the share of ground-truth face
pixels that are covered and the share of non-face pixels that change.

Both come from :func:`maskface.inference.anonymize.anonymization_weights`, so they hold for every
method (blur, pixelate, fill):

* ``covered``: ground-truth face pixels at full weight (replaced outright), pooled over all images;
  ``covered_any``: at any weight (feathered edge included);
* ``nonface_changed``: per image, the share of pixels outside every ground-truth face mask with a
  weight > 0 (pixels that *may* change; blurring a flat wall can leave some the same), then the
  median (and mean) over images.

The images and predictions are made once; every mode / margin is scored on the same faces.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Sequence, Union

import cv2
import numpy as np

from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

__all__ = ["evaluate_anonymization", "setting_name"]


def setting_name(region: str, margin: Union[None, float, str]) -> str:
    """``"mask@auto"``, ``"box@8"``, ``"ellipse@5%"``: the key of one mode / margin in the metrics."""
    return f"{region}@{'auto' if margin is None else margin if isinstance(margin, str) else f'{margin:g}'}"


def evaluate_anonymization(predictor, records: List[dict], regions: Sequence[str] = ("mask", "box", "ellipse"),
                           margins: Sequence[Union[None, float, str]] = (None,), batch_size: int = 8,
                           progress: bool = True) -> Dict[str, Union[int, Dict[str, float]]]:
    """Score anonymisation regions against ground-truth masks.

    Args:
        predictor: a :class:`maskface.inference.predictor.FacePredictor` (attributes unused).
        records: per-image records (:func:`maskface.data.coco_faces.load_coco_faces`) whose faces
            have segmentations; images without any are skipped (counted in ``skipped_images``).
        regions: region modes to score.
        margins: margins to score: px (a number or ``"8"``), ``"5%"`` of each face's size, or
            ``None`` / ``"auto"`` (the default margin); see :func:`~maskface.inference.anonymize.parse_margin`.

    Returns:
        ``{"images", "skipped_images", "gt_face_pixels", "detected_faces", "settings": {name:
        {"region", "margin", "covered", "covered_any", "nonface_changed_median",
        "nonface_changed_mean", "images_fully_covered"}}}`` with fractions in 0..1.
        ``images_fully_covered``: images with >= 99 % of their face pixels at full weight.
    """
    from maskface.data.transforms import segmentation_to_mask
    from maskface.inference.anonymize import anonymization_weights, check_region, parse_margin

    parsed = {setting_name("", m): parse_margin("auto" if m is None else m) for m in margins}  # "@8" -> (8, frac)
    settings = [(check_region(r), name[1:]) for r in regions for name in parsed]
    gt_total = 0
    covered = {s: 0 for s in settings}
    covered_any = {s: 0 for s in settings}
    changed: Dict[tuple, List[float]] = {s: [] for s in settings}
    full_images = {s: 0 for s in settings}
    n_images = skipped = detected = 0
    usable = [r for r in records if any(a.get("segmentation") is not None and not a.get("iscrowd")
                                        for a in r["annotations"])]
    skipped = len(records) - len(usable)
    for start in progress_bar(range(0, len(usable), batch_size), desc="anonymization", unit="batch",
                              disable=not progress):
        batch = usable[start:start + batch_size]
        images = [cv2.imread(r["file_name"], cv2.IMREAD_COLOR) for r in batch]
        for r, im in zip(batch, images):
            if im is None:
                logger.warning("%s: cannot decode the image (skipped)", r["file_name"])
        readable = [(r, im) for r, im in zip(batch, images) if im is not None]
        skipped += len(batch) - len(readable)
        results = predictor([im for _, im in readable], color="bgr") if readable else []
        for (rec, im), faces in zip(readable, results):
            h, w = im.shape[:2]
            gt = np.zeros((h, w), bool)
            for ann in rec["annotations"]:
                if ann.get("segmentation") is not None and not ann.get("iscrowd"):
                    gt |= segmentation_to_mask(ann["segmentation"], rec["height"], rec["width"], h, w) > 0
            n_gt, n_bg = int(gt.sum()), int((~gt).sum())
            if n_gt == 0:
                skipped += 1
                continue
            n_images += 1
            gt_total += n_gt
            detected += len(faces)
            for s in settings:
                margin, frac = parsed["@" + s[1]]
                wt = anonymization_weights((h, w), faces, region=s[0], margin=margin, margin_frac=frac)
                full = int((wt[gt] >= 1.0).sum())
                covered[s] += full
                covered_any[s] += int((wt[gt] > 0).sum())
                full_images[s] += full >= 0.99 * n_gt
                changed[s].append(float((wt[~gt] > 0).sum()) / max(n_bg, 1))
    out: Dict[str, Union[int, Dict[str, float]]] = {
        "images": n_images, "skipped_images": skipped, "gt_face_pixels": gt_total, "detected_faces": detected,
        "settings": {}}
    for s in settings:
        ch = np.asarray(changed[s]) if changed[s] else np.zeros(1)
        out["settings"][setting_name(*s)] = {
            "region": s[0], "margin": s[1],
            "covered": covered[s] / max(gt_total, 1), "covered_any": covered_any[s] / max(gt_total, 1),
            "nonface_changed_median": float(np.median(ch)), "nonface_changed_mean": float(ch.mean()),
            "images_fully_covered": full_images[s] / max(n_images, 1)}
    return out
