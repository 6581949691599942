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

Where the uncovered pixels lie (``face_reference``): ground-truth "face" labels differ between
datasets (LFW Part Labels' skin runs down the neck and over the ears; CelebAMask-HQ's face parts
stop at the jaw and leave the ears out). Given an independent face outline per image (e.g.
MediaPipe's face-mesh oval, :func:`mediapipe_face_reference`), each setting also reports the
coverage of the ground truth *inside* that outline and *above the jaw* (everything except the
pixels below the outline's lower edge), and how the uncovered pixels split between inside the
outline, below the jaw (neck) and beside it (ears, hairline, temples).
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional, Sequence, Union

import cv2
import numpy as np

from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

__all__ = ["evaluate_anonymization", "setting_name", "below_outline", "mediapipe_face_reference"]

WHERE = ("inside_outline", "below_jaw", "beside", "no_outline")


def below_outline(outline: np.ndarray) -> np.ndarray:
    """``H x W`` bool: the pixels below the lower edge of a face outline (the neck, for a face oval).

    Args:
        outline: ``H x W`` bool, the filled face outline(s) of an image.

    A column the outline spans is cut below its lowest outline pixel; columns left or right of it
    take the lowest pixel of the nearest spanned column, so the cut continues sideways at the level
    where the jaw ends. An empty outline gives all False.
    """
    outline = np.asarray(outline, bool)
    if outline.ndim != 2:
        raise ValueError(f"expected an H x W outline mask, got shape {outline.shape}")
    h, w = outline.shape
    spanned = outline.any(axis=0)
    if not spanned.any():
        return np.zeros((h, w), bool)
    cols = np.nonzero(spanned)[0]
    lowest = h - 1 - np.argmax(outline[::-1, cols], axis=0)  # per spanned column
    x = np.arange(w)
    at = np.searchsorted(cols, x)
    right, left = cols[np.clip(at, 0, cols.size - 1)], cols[np.clip(at - 1, 0, cols.size - 1)]
    nearest = np.where(np.abs(left - x) <= np.abs(right - x), left, right)
    bottom = np.empty(w, np.int64)
    bottom[cols] = lowest
    bottom = bottom[nearest]
    return np.arange(h)[:, None] > bottom[None, :]


def mediapipe_face_reference(max_faces: int = 10, score_thresh: float = 0.3) -> Callable[[np.ndarray], np.ndarray]:
    """A ``face_reference`` for :func:`evaluate_anonymization`: BGR image -> ``H x W`` bool union of
    MediaPipe's face-mesh ovals (forehead to chin, ears and neck outside). Needs ``mediapipe``
    (``pip install -e ".[annotate]"``)."""
    from maskface.data.converters.auto import FaceOvalAnnotator

    annotator = FaceOvalAnnotator(max_faces=max_faces, score_thresh=score_thresh)

    def reference(image_bgr: np.ndarray) -> np.ndarray:
        out = np.zeros(image_bgr.shape[:2], np.uint8)
        for face in annotator(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)):
            pts = np.round(np.asarray(face["polygon"], np.float64).reshape(-1, 2)).astype(np.int32)
            cv2.fillPoly(out, [pts], 1)
        return out.astype(bool)

    return reference


def setting_name(region: str, margin: Union[None, float, str]) -> str:
    """``"mask@auto"``, ``"box@8"``, ``"ellipse@5%"``: the key of one mode / margin in the metrics."""
    return f"{region}@{'auto' if margin is None else margin if isinstance(margin, str) else f'{margin:g}'}"


def evaluate_anonymization(predictor, records: List[dict], regions: Sequence[str] = ("mask", "box", "ellipse"),
                           margins: Sequence[Union[None, float, str]] = (None,), batch_size: int = 8,
                           progress: bool = True,
                           face_reference: Optional[Callable[[np.ndarray], np.ndarray]] = None
                           ) -> Dict[str, Union[int, Dict[str, float]]]:
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
        face_reference: optional ``BGR image -> H x W bool`` face outline (see the module doc and
            :func:`mediapipe_face_reference`); adds per setting ``covered_inside_outline``,
            ``covered_above_jaw`` and ``uncovered_where`` (the uncovered face pixels' shares
            ``inside_outline`` / ``below_jaw`` / ``beside`` / ``no_outline``, summing to 1), and
            ``images_without_outline`` at the top level.
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
    n_images = skipped = detected = no_outline = 0
    ref_gt = {"inside_outline": 0, "above_jaw": 0}
    ref_covered = {s: {"inside_outline": 0, "above_jaw": 0} for s in settings}
    where = {s: dict.fromkeys(WHERE, 0) for s in settings}
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
            if face_reference is not None:
                outline = np.asarray(face_reference(im), bool)
                if outline.shape != (h, w):
                    raise ValueError(f"face_reference gave a {outline.shape} outline for a {h}x{w} image")
                has_outline = bool(outline.any())
                no_outline += not has_outline
                if has_outline:
                    neck = below_outline(outline)
                    parts = {"inside_outline": gt & outline, "above_jaw": gt & ~neck}
                    for k, part in parts.items():
                        ref_gt[k] += int(part.sum())
            for s in settings:
                margin, frac = parsed["@" + s[1]]
                wt = anonymization_weights((h, w), faces, region=s[0], margin=margin, margin_frac=frac)
                full = int((wt[gt] >= 1.0).sum())
                covered[s] += full
                covered_any[s] += int((wt[gt] > 0).sum())
                full_images[s] += full >= 0.99 * n_gt
                changed[s].append(float((wt[~gt] > 0).sum()) / max(n_bg, 1))
                if face_reference is not None:
                    uncovered = gt & (wt < 1.0)
                    if not has_outline:
                        where[s]["no_outline"] += int(uncovered.sum())
                        continue
                    for k, part in parts.items():
                        ref_covered[s][k] += int((wt[part] >= 1.0).sum())
                    where[s]["inside_outline"] += int((uncovered & outline).sum())
                    where[s]["below_jaw"] += int((uncovered & ~outline & neck).sum())
                    where[s]["beside"] += int((uncovered & ~outline & ~neck).sum())
    out: Dict[str, Union[int, Dict[str, float]]] = {
        "images": n_images, "skipped_images": skipped, "gt_face_pixels": gt_total, "detected_faces": detected,
        "settings": {}}
    if face_reference is not None:
        out["images_without_outline"] = no_outline
    for s in settings:
        ch = np.asarray(changed[s]) if changed[s] else np.zeros(1)
        out["settings"][setting_name(*s)] = {
            "region": s[0], "margin": s[1],
            "covered": covered[s] / max(gt_total, 1), "covered_any": covered_any[s] / max(gt_total, 1),
            "nonface_changed_median": float(np.median(ch)), "nonface_changed_mean": float(ch.mean()),
            "images_fully_covered": full_images[s] / max(n_images, 1)}
        if face_reference is not None:
            n_unc = sum(where[s].values())
            out["settings"][setting_name(*s)].update({
                "covered_inside_outline": ref_covered[s]["inside_outline"] / max(ref_gt["inside_outline"], 1),
                "covered_above_jaw": ref_covered[s]["above_jaw"] / max(ref_gt["above_jaw"], 1),
                "uncovered_where": {k: v / n_unc if n_unc else 0.0 for k, v in where[s].items()}})
    return out
