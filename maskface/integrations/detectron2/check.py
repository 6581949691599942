"""Does a converted model find the same faces in Detectron2 as in MaskFace?

:func:`compare_predictors` runs Detectron2's ``DefaultPredictor`` (config + weights of the
Detectron2 side) and MaskFace's :class:`~maskface.inference.predictor.FacePredictor` (the MaskFace
side, without attributes) on the same BGR images, pairs their faces greedily by box IoU (>= 0.5,
highest first) and reports, over the pairs, the largest box-corner difference (px), the smallest
mask IoU and the largest score difference, plus every face left without a partner (with its score:
one just above the threshold on one side may fall just below it on the other).

The two sides preprocess differently when an image is resized: ``DefaultPredictor`` resizes the
uint8 image with PIL (antialiased when shrinking), MaskFace the float image with
``torch.nn.functional.interpolate``; images the detector sees at their own size go through
identical arithmetic up to float rounding.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["LIMITS", "DetectionReport", "compare_detections", "compare_predictors"]

#: Agreement a converted model promises (issue 19): boxes within 2 px, mask IoU >= 0.95, scores within 0.02.
LIMITS = {"box_px": 2.0, "mask_iou": 0.95, "score": 0.02}


@dataclass
class DetectionReport:
    """Agreement of two detectors over some images; ``None`` = no pair to measure."""

    images: int = 0
    faces_a: int = 0
    faces_b: int = 0
    paired: int = 0
    max_box_px: Optional[float] = None
    min_mask_iou: Optional[float] = None
    mean_mask_iou: Optional[float] = None
    max_score_diff: Optional[float] = None
    unpaired: List[str] = field(default_factory=list)
    per_image: List[Dict] = field(default_factory=list)
    _iou_sum: float = 0.0

    def ok(self, limits: Dict[str, float] = LIMITS) -> bool:
        """Every face paired and every figure within ``limits``."""
        return (self.faces_a == self.faces_b == self.paired
                and (self.max_box_px is None or self.max_box_px <= limits["box_px"])
                and (self.min_mask_iou is None or self.min_mask_iou >= limits["mask_iou"])
                and (self.max_score_diff is None or self.max_score_diff <= limits["score"]))

    def to_dict(self, limits: Dict[str, float] = LIMITS) -> Dict:
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        return {**d, "limits": dict(limits), "ok": self.ok(limits)}

    def format(self, names: Tuple[str, str] = ("a", "b")) -> str:
        def f(v, fmt):
            return "-" if v is None else fmt.format(v)

        return (f"{self.images} images: faces {self.faces_a} ({names[0]}) vs {self.faces_b} ({names[1]}), paired "
                f"{self.paired}; largest box difference {f(self.max_box_px, '{:.3f}')} px, mask IoU min "
                f"{f(self.min_mask_iou, '{:.4f}')} / mean {f(self.mean_mask_iou, '{:.4f}')}, largest score difference "
                f"{f(self.max_score_diff, '{:.4f}')}" + "".join(f"\n  unpaired: {u}" for u in self.unpaired))


def _max(old, new):
    return new if old is None else max(old, new)


def compare_detections(name: str, a: Tuple[np.ndarray, np.ndarray, List[np.ndarray]],
                       b: Tuple[np.ndarray, np.ndarray, List[np.ndarray]], report: DetectionReport,
                       names: Tuple[str, str] = ("a", "b")) -> DetectionReport:
    """Add one image to ``report``. ``a`` and ``b`` are ``(boxes (N, 4) xyxy px, scores (N,),
    masks: N bool (H, W) arrays)`` of the two detectors."""
    from maskface.inference.masks import mask_iou
    from maskface.inference.tracking import box_iou_matrix, linear_assignment

    (ba, sa, ma), (bb, sb, mb) = a, b
    report.images += 1
    report.faces_a += len(ba)
    report.faces_b += len(bb)
    pairs = linear_assignment(box_iou_matrix([list(x) for x in ba], [list(x) for x in bb]), 0.5, greedy=True)
    used_a, used_b = {i for i, _ in pairs}, {j for _, j in pairs}
    img = {"image": name, "faces_a": len(ba), "faces_b": len(bb), "paired": 0, "max_box_px": None,
           "min_mask_iou": None, "max_score_diff": None}
    for i, j in pairs:
        img["paired"] += 1
        report.paired += 1
        box_px = float(np.abs(np.asarray(ba[i], np.float64) - np.asarray(bb[j], np.float64)).max())
        score = abs(float(sa[i]) - float(sb[j]))
        miou = mask_iou(ma[i], mb[j])
        report._iou_sum += miou
        for target in (img, report.__dict__):
            target["max_box_px"] = _max(target["max_box_px"], box_px)
            target["max_score_diff"] = _max(target["max_score_diff"], score)
            target["min_mask_iou"] = miou if target["min_mask_iou"] is None else min(target["min_mask_iou"], miou)
    if report.paired:
        report.mean_mask_iou = report._iou_sum / report.paired
    for side, boxes, scores, used in ((names[0], ba, sa, used_a), (names[1], bb, sb, used_b)):
        for k in range(len(boxes)):
            if k not in used:
                report.unpaired.append(f"{name}: {side} face {np.round(np.asarray(boxes[k], float), 1).tolist()} "
                                       f"score {float(scores[k]):.4f}")
    report.per_image.append(img)
    return report


def _maskface_side(predictor, bgr: np.ndarray):
    faces = predictor(bgr)
    h, w = bgr.shape[:2]
    return (np.asarray([f.box for f in faces], np.float64).reshape(-1, 4), np.asarray([f.score for f in faces]),
            [f.mask if f.mask is not None else np.zeros((h, w), bool) for f in faces])


def _detectron2_side(predictor, bgr: np.ndarray):
    inst = predictor(bgr)["instances"].to("cpu")
    keep = inst.pred_classes == 0
    inst = inst[keep]
    masks = inst.pred_masks.numpy().astype(bool) if inst.has("pred_masks") else np.zeros((len(inst), *bgr.shape[:2]), bool)
    return inst.pred_boxes.tensor.numpy().astype(np.float64), inst.scores.numpy(), list(masks)


def compare_predictors(face_predictor, d2_predictor, images: Sequence[Union[str, np.ndarray]],
                       names: Optional[Sequence[str]] = None) -> DetectionReport:
    """Run both predictors on every image and compare (module docstring).

    Args:
        face_predictor: a :class:`FacePredictor` (MaskFace side; make it with ``attributes=False``
            and ``retry_pad=0``, which ``DefaultPredictor`` has no counterpart of).
        d2_predictor: a ``detectron2.engine.DefaultPredictor`` (or anything taking a BGR array and
            returning ``{"instances": Instances}`` with ``pred_boxes``, ``scores``, ``pred_masks``).
        images: paths or ``H x W x 3`` uint8 BGR arrays.
        names: labels of the images in the report (default: the paths / ``image N``).

    Returns:
        A :class:`DetectionReport`; side ``a`` is MaskFace, ``b`` Detectron2.
    """
    from maskface.inference.image_io import load_image

    report = DetectionReport()
    for k, img in enumerate(images):
        if isinstance(img, np.ndarray):
            bgr, name = img, f"image {k}"
        else:
            bgr, name = np.ascontiguousarray(load_image(img)[:, :, ::-1]), str(img)
        if names is not None:
            name = names[k]
        compare_detections(name, _maskface_side(face_predictor, bgr), _detectron2_side(d2_predictor, bgr), report,
                           names=("MaskFace", "Detectron2"))
    return report
