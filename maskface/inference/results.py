"""The one result type of MaskFace inference: :class:`Face`, and the per-image record
:class:`ImageResult`, with the JSON schema every consumer (``tools/infer.py``, the web app,
the evaluators) reads and writes. The schema is described in ``maskface/inference/SCHEMA.md``.

One face, as JSON (``Face.to_dict()``)::

    {"box": [x1, y1, x2, y2],            # float px in the original image (after EXIF rotation)
     "score": s,                         # detector confidence, 0..1
     "mask": {"size": [H, W], "counts": "..."} | null,   # COCO compressed RLE, counts as str
     "age": years | null, "age_std": years | null,
     "age_group": "25-32" | null,        # Adience group holding age
     "age_group_top": "25-32" | null,    # most probable group under the age distribution
     "gender": "female" | "male" | null,
     "gender_prob": p | null,            # probability of the reported gender
     "emotion": name | null,             # one of maskface.data.attributes.EMOTIONS
     "emotion_probs": {name: p, ...} | null,
     "track_id": id | null}              # video only

One image (or one video frame, ``ImageResult.to_dict()``)::

    {"file": path, "width": W, "height": H, "frame": n | null, "faces": [face, ...]}

Attributes are ``None`` when the predictor was built without an attribute net.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from maskface.data.attributes import ADIENCE_GROUPS, EMOTIONS, GENDERS

__all__ = [
    "Face",
    "ImageResult",
    "ADIENCE_GROUPS",
    "age_to_group",
    "mask_to_rle",
    "rle_to_mask",
    "rle_area",
]

def age_to_group(age: Optional[float]) -> Optional[str]:
    """The Adience group (``maskface.data.attributes.ADIENCE_GROUPS``) of an age in years: ages
    between groups go to the nearest group, a tie to the younger (as the attribute heads do)."""
    if age is None or not math.isfinite(float(age)):
        return None
    age = float(age)

    def dist(g):
        lo, hi = g
        return 0.0 if lo <= age <= hi else min(abs(age - lo), abs(age - hi))

    lo, hi = min(ADIENCE_GROUPS, key=dist)
    return f"{lo}-{hi}"


# RLE helpers ------------------------------------------------------------------------------------


def mask_to_rle(mask: np.ndarray) -> Dict[str, Any]:
    """HxW bool mask -> COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    from pycocotools import mask as mask_utils

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected an HxW mask, got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def rle_to_mask(rle: Dict[str, Any]) -> np.ndarray:
    """COCO RLE (compressed str/bytes counts, or uncompressed list counts) -> HxW bool mask."""
    from pycocotools import mask as mask_utils

    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    else:
        rle = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    with warnings.catch_warnings():  # pycocotools' own NumPy-2 "copy keyword" DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def rle_area(rle: Dict[str, Any]) -> int:
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    rle = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return int(mask_utils.area(rle))


def _f(v: Any, nd: int = 4) -> Optional[float]:
    return None if v is None else round(float(v), nd)


# Face ------------------------------------------------------------------------------------------


@dataclass
class Face:
    """One detected face.

    Attributes:
        box: ``[x1, y1, x2, y2]`` float pixels of the original image (after EXIF rotation;
            images processed at a reduced ``max_size`` are mapped back to original pixels).
        score: detector confidence in 0..1.
        mask: ``H x W`` bool array of the original image's size, or ``None`` (box only).
            :meth:`rle` gives the COCO compressed RLE on demand.
        age: estimated age in years, or ``None`` without an attribute net.
        age_std: uncertainty of ``age`` in years (standard deviation of the age distribution).
        age_group: Adience group string such as ``"25-32"``: the group that holds ``age`` (an age
            between two groups goes to the nearest), so it always agrees with ``age``.
        age_group_top: the most probable Adience group under the whole predicted age
            distribution; it can differ from ``age_group`` when ``age_std`` is large.
        gender: ``"female"`` or ``"male"``.
        gender_prob: probability of the reported ``gender`` (0.5..1).
        emotion: one of ``maskface.data.attributes.EMOTIONS``.
        emotion_probs: ``{emotion: probability}`` over all emotions (sums to 1).
        track_id: stable id of the face's track in a video (``None`` for still images or
            untracked detections).
    """

    box: List[float]
    score: float
    mask: Optional[np.ndarray] = None
    age: Optional[float] = None
    age_std: Optional[float] = None
    age_group: Optional[str] = None
    gender: Optional[str] = None
    gender_prob: Optional[float] = None
    emotion: Optional[str] = None
    emotion_probs: Optional[Dict[str, float]] = None
    track_id: Optional[int] = None
    age_group_top: Optional[str] = None
    _rle: Optional[Dict[str, Any]] = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        self.box = [float(v) for v in self.box]
        if len(self.box) != 4:
            raise ValueError(f"Face.box must be [x1, y1, x2, y2], got {self.box}")
        self.score = float(self.score)
        if self.mask is not None:
            self.mask = np.asarray(self.mask)
            if self.mask.ndim != 2:
                raise ValueError(f"Face.mask must be HxW, got shape {self.mask.shape}")
            if self.mask.dtype != bool:
                self.mask = self.mask > 0.5 if self.mask.dtype.kind == "f" else self.mask.astype(bool)

    def __repr__(self) -> str:
        m = "None"
        if self.mask is not None:
            m = f"<{self.mask.shape[0]}x{self.mask.shape[1]} bool, {int(self.mask.sum())} px>"
        attrs = "" if not self.has_attributes else (
            f", age={self.age!r}, age_std={self.age_std!r}, age_group={self.age_group!r}, gender={self.gender!r}, "
            f"gender_prob={self.gender_prob!r}, emotion={self.emotion!r}")
        box = "[" + ", ".join(f"{v:.1f}" for v in self.box) + "]"
        return f"Face(box={box}, score={self.score:.3f}, mask={m}{attrs}, track_id={self.track_id})"

    # derived ----------------------------------------------------------------------------------
    @property
    def has_attributes(self) -> bool:
        return self.age is not None or self.gender is not None or self.emotion is not None

    @property
    def box_xywh(self) -> List[float]:
        x1, y1, x2, y2 = self.box
        return [x1, y1, x2 - x1, y2 - y1]

    @property
    def mask_area(self) -> Optional[int]:
        """Mask pixels, or ``None`` without a mask."""
        if self.mask is not None:
            return int(self.mask.sum())
        if self._rle is not None:
            return rle_area(self._rle)
        return None

    def rle(self) -> Optional[Dict[str, Any]]:
        """The mask as COCO compressed RLE ``{"size": [H, W], "counts": str}`` (cached)."""
        if self._rle is None and self.mask is not None:
            self._rle = mask_to_rle(self.mask)
        return self._rle

    def set_attributes(self, attrs: Optional[Dict[str, Any]]) -> "Face":
        """Fill the attribute fields from a decoded dict (keys as in the JSON schema)."""
        if not attrs:
            return self
        for k in ("age", "age_std", "gender_prob"):
            if attrs.get(k) is not None:
                setattr(self, k, float(attrs[k]))
        for k in ("age_group", "age_group_top", "gender", "emotion"):
            if attrs.get(k) is not None:
                setattr(self, k, str(attrs[k]))
        if attrs.get("emotion_probs") is not None:
            self.emotion_probs = {str(k): float(v) for k, v in dict(attrs["emotion_probs"]).items()}
        if self.age_group is None and self.age is not None:
            self.age_group = age_to_group(self.age)
        return self

    def label(self) -> str:
        """A short label for drawing, e.g. ``"#3 F 31y happy"`` (``"0.87"`` without attributes)."""
        parts = []
        if self.track_id is not None:
            parts.append(f"#{self.track_id}")
        if self.gender:
            parts.append(self.gender[0].upper())
        if self.age is not None:
            parts.append(f"{self.age:.0f}y")
        if self.emotion:
            parts.append(self.emotion)
        if not self.has_attributes:
            parts.append(f"{self.score:.2f}")
        return " ".join(parts)

    # (de)serialisation ----------------------------------------------------------------------------
    def to_dict(self, include_mask: bool = True) -> Dict[str, Any]:
        """The face as a JSON-ready dict (see the module docstring for the schema)."""
        return {
            "box": [round(v, 2) for v in self.box],
            "score": _f(self.score),
            "mask": self.rle() if include_mask else None,
            "age": _f(self.age, 2),
            "age_std": _f(self.age_std, 2),
            "age_group": self.age_group,
            "age_group_top": self.age_group_top,
            "gender": self.gender,
            "gender_prob": _f(self.gender_prob),
            "emotion": self.emotion,
            "emotion_probs": None if self.emotion_probs is None
            else {k: _f(v) for k, v in self.emotion_probs.items()},
            "track_id": None if self.track_id is None else int(self.track_id),
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any], decode_mask: bool = True) -> "Face":
        """Inverse of :meth:`to_dict`. With ``decode_mask=False`` the RLE is kept undecoded
        (``mask`` is ``None``; :meth:`rle` and :attr:`mask_area` still work)."""
        rle = d.get("mask")
        face = cls(
            box=d["box"], score=d["score"],
            mask=rle_to_mask(rle) if (rle and decode_mask) else None,
            track_id=d.get("track_id"),
        )
        face.set_attributes(d)
        if face.age_group is None:
            face.age_group = d.get("age_group")
        if rle:
            face._rle = dict(rle)
        return face


def validate_face_dict(d: Dict[str, Any], where: str = "face") -> List[str]:
    """Problems of one face dict against the schema (empty list when valid)."""
    problems = []
    required = ("box", "score", "mask", "age", "age_std", "age_group", "gender", "gender_prob",
                "emotion", "emotion_probs", "track_id")
    for k in required:
        if k not in d:
            problems.append(f"{where}: missing key {k!r}")
    box = d.get("box")
    if not (isinstance(box, list) and len(box) == 4):
        problems.append(f"{where}: box must be [x1, y1, x2, y2], got {box!r}")
    if d.get("gender") is not None and d["gender"] not in GENDERS:
        problems.append(f"{where}: gender must be one of {GENDERS}, got {d['gender']!r}")
    if d.get("emotion") is not None and d["emotion"] not in EMOTIONS:
        problems.append(f"{where}: emotion must be one of {EMOTIONS}, got {d['emotion']!r}")
    m = d.get("mask")
    if m is not None and not (isinstance(m, dict) and "size" in m and isinstance(m.get("counts"), str)):
        problems.append(f"{where}: mask must be {{'size': [H, W], 'counts': str}} or null")
    return problems


# ImageResult ------------------------------------------------------------------------------------


@dataclass
class ImageResult:
    """The faces of one image or one video frame.

    Attributes:
        file: the input's path (for a webcam, ``"webcam:N"``).
        width, height: the image's size in pixels after EXIF rotation (the faces' pixel frame).
        frame: video frame index (0-based), ``None`` for still images.
        faces: the detected faces.
    """

    file: str
    width: int
    height: int
    frame: Optional[int] = None
    faces: List[Face] = field(default_factory=list)

    def to_dict(self, include_mask: bool = True) -> Dict[str, Any]:
        return {
            "file": str(self.file),
            "width": int(self.width),
            "height": int(self.height),
            "frame": None if self.frame is None else int(self.frame),
            "faces": [f.to_dict(include_mask) for f in self.faces],
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any], decode_mask: bool = True) -> "ImageResult":
        return cls(file=d["file"], width=int(d["width"]), height=int(d["height"]), frame=d.get("frame"),
                   faces=[Face.from_dict(f, decode_mask) for f in d.get("faces", [])])


def faces_from_dicts(dicts: Sequence[Dict[str, Any]], decode_mask: bool = True) -> List[Face]:
    return [Face.from_dict(d, decode_mask) for d in dicts]
