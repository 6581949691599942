"""Do two runtimes give the same faces? Compare :class:`~maskface.inference.results.Face` lists.

Used by ``tools/export.py`` (its check step) and the parity tests. Faces are paired greedily by
box IoU (highest first, IoU >= 0.5); then, over the pairs, the largest box-corner difference
(px), the smallest mask IoU, the largest difference of any attribute probability (gender and
each emotion) and of the age (years), and whether the labels (gender, emotion, age group) agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from maskface.inference.masks import mask_iou
from maskface.inference.results import Face
from maskface.inference.tracking import box_iou_matrix, linear_assignment

__all__ = ["PARITY_LIMITS", "ParityReport", "compare_faces", "compare_runs"]

#: The agreement the ONNX Runtime path promises (issue 16): boxes within 1 px, mask IoU >= 0.98,
#: attribute probabilities within 0.01, identical faces and labels.
PARITY_LIMITS = {"box_px": 1.0, "mask_iou": 0.98, "prob": 0.01}


@dataclass
class ParityReport:
    """Agreement of two runs over some images (see the module docstring). ``None`` = nothing to
    compare (no paired faces / no masks / no attributes)."""

    images: int = 0
    faces_a: int = 0
    faces_b: int = 0
    paired: int = 0
    max_box_px: Optional[float] = None
    min_mask_iou: Optional[float] = None
    max_prob_diff: Optional[float] = None
    max_age_diff: Optional[float] = None
    label_mismatches: int = 0
    notes: List[str] = field(default_factory=list)

    def ok(self, limits: Dict[str, float] = PARITY_LIMITS) -> bool:
        """True when every face pairs and every figure is within ``limits``."""
        return (self.faces_a == self.faces_b == self.paired and self.label_mismatches == 0
                and (self.max_box_px is None or self.max_box_px <= limits["box_px"])
                and (self.min_mask_iou is None or self.min_mask_iou >= limits["mask_iou"])
                and (self.max_prob_diff is None or self.max_prob_diff <= limits["prob"]))

    def to_dict(self) -> Dict:
        return {**asdict(self), "ok": self.ok()}

    def format(self) -> str:
        def f(v, fmt):
            return "-" if v is None else fmt.format(v)

        return (f"{self.images} images: faces {self.faces_a} vs {self.faces_b}, paired {self.paired}; "
                f"largest box difference {f(self.max_box_px, '{:.4f}')} px, smallest mask IoU "
                f"{f(self.min_mask_iou, '{:.4f}')}, largest attribute probability difference "
                f"{f(self.max_prob_diff, '{:.2e}')}, age {f(self.max_age_diff, '{:.3f}')} years, "
                f"label mismatches {self.label_mismatches}" + "".join(f"\n  {n}" for n in self.notes))


def _probs(face: Face) -> Optional[np.ndarray]:
    """P(female), then the emotion probabilities, or None without attributes."""
    if face.gender is None or face.emotion_probs is None:
        return None
    p_female = face.gender_prob if face.gender == "female" else 1.0 - face.gender_prob
    return np.array([p_female] + [face.emotion_probs[k] for k in sorted(face.emotion_probs)], dtype=np.float64)


def _max(old: Optional[float], new: float) -> float:
    return new if old is None else max(old, new)


def compare_faces(a: Sequence[Face], b: Sequence[Face], report: Optional[ParityReport] = None) -> ParityReport:
    """Add one image's faces from two runs to ``report`` (a new one by default) and return it."""
    r = report if report is not None else ParityReport()
    r.images += 1
    r.faces_a += len(a)
    r.faces_b += len(b)
    pairs = linear_assignment(box_iou_matrix([f.box for f in a], [f.box for f in b]), 0.5, greedy=True)
    for i, j in pairs:
        fa, fb = a[i], b[j]
        r.paired += 1
        r.max_box_px = _max(r.max_box_px, float(np.abs(np.subtract(fa.box, fb.box)).max()))
        if fa.mask is not None and fb.mask is not None:
            miou = mask_iou(fa.mask, fb.mask)
            r.min_mask_iou = miou if r.min_mask_iou is None else min(r.min_mask_iou, miou)
        pa, pb = _probs(fa), _probs(fb)
        if pa is not None and pb is not None:
            r.max_prob_diff = _max(r.max_prob_diff, float(np.abs(pa - pb).max()))
            r.max_age_diff = _max(r.max_age_diff, abs(float(fa.age) - float(fb.age)))
            labels_a, labels_b = (fa.gender, fa.emotion, fa.age_group), (fb.gender, fb.emotion, fb.age_group)
            if labels_a != labels_b:
                r.label_mismatches += 1
                r.notes.append(f"image {r.images - 1}, face {i}: labels {labels_a} vs {labels_b}")
    if len(pairs) < max(len(a), len(b)):
        r.notes.append(f"image {r.images - 1}: {len(a) - len(pairs)} / {len(b) - len(pairs)} faces without a partner")
    return r


def compare_runs(predictor_a, predictor_b, images: Sequence[np.ndarray], color: str = "rgb") -> ParityReport:
    """Run two predictors (e.g. ``runtime="torch"`` and ``"onnxruntime"``) on the same images,
    one at a time, and compare their faces."""
    report = ParityReport()
    for img in images:
        compare_faces(predictor_a(img, color=color), predictor_b(img, color=color), report)
    return report
