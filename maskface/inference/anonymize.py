"""Face anonymisation: blur, pixelate or fill each face's pixel mask (or, for comparison, its box
or the ellipse inscribed in the box).

    >>> faces = predictor.predict(image_bgr)
    >>> out = anonymize(image_bgr, faces, method="blur")                 # mask region, auto margin
    >>> out = Anonymizer(method="pixelate", margin=6)(image_bgr, faces)  # the same, as an object

Per face, the region is dilated by ``margin`` px (a disc: every pixel within ``margin`` px of the
region) and feathered *inside* that margin: weight 1 up to ``margin - feather`` px from the region,
falling linearly to ``1 / (feather + 1)`` at ``margin`` px, 0 beyond. So the face region itself
is always fully replaced (``feather <= margin``) and every pixel farther than ``margin`` px from
all regions keeps its exact value. The effect's strength scales with the face size
``s = sqrt(box width * box height)`` px: Gaussian sigma ``blur * s``, mosaic cells of
``s / blocks`` px. Faces are processed one after another inside their own bounding rectangle
(cheap on large images with small faces); overlapping faces are each covered.

Videos: :class:`HoldOver` keeps covering a face for a few processed frames after its detection
is lost (its track's last region, moved with the track's velocity), so a missed detection does
not flash a face.

What is not covered is not anonymised: a face the detector misses stays visible. When missing a
face is worse than blurring a non-face, lower the detector's score threshold.
"""

from __future__ import annotations

import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from maskface.inference.results import Face

logger = logging.getLogger(__name__)

__all__ = ["METHODS", "REGIONS", "DEFAULT_MARGIN_FRAC", "Anonymizer", "HoldOver", "anonymize",
           "anonymization_weights", "check_method", "check_region", "check_margin", "check_margin_frac",
           "check_feather", "check_hold_frames", "parse_margin"]

METHODS = ("blur", "pixelate", "fill")
REGIONS = ("mask", "box", "ellipse")
#: ``margin=None``: the margin is this fraction of the face size (at least MIN_AUTO_MARGIN px). On the
#: held-out CelebAMask-HQ faces 5 % covers 99.3 % of the face pixels while changing 9.4 % of the rest
#: (median), 3 % only 98.7 % (evaluate.py anonymization --margin auto 3% 4% 5%): a missed face edge
#: is the failure that matters when anonymising.
DEFAULT_MARGIN_FRAC = 0.05
MIN_AUTO_MARGIN = 2
MAX_MARGIN = 1000
#: Default frames a lost face stays covered in videos.
DEFAULT_HOLD_FRAMES = 5


# argument checks (shared by the tools and the web app) -----------------------------------------


def check_method(method) -> str:
    if method not in METHODS:
        raise ValueError(f"anonymize method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def check_region(region) -> str:
    if region not in REGIONS:
        raise ValueError(f"anonymize region must be one of {', '.join(REGIONS)}, got {region!r}")
    return region


def check_margin(margin) -> Optional[float]:
    """``None`` (auto: a fraction of each face's size) or a number of px in [0, MAX_MARGIN]."""
    if margin is None:
        return None
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin) \
            or not 0 <= margin <= MAX_MARGIN:
        raise ValueError(f"anonymize margin must be a number of pixels in [0, {MAX_MARGIN}] (or None = auto), "
                         f"got {margin!r}")
    return float(margin)


def check_margin_frac(frac) -> float:
    """The auto margin's fraction of the face size, in [0, 1]."""
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not math.isfinite(frac) or not 0 <= frac <= 1:
        raise ValueError(f"anonymize margin fraction must be in [0, 1] (e.g. 0.05 = 5 % of the face size), "
                         f"got {frac!r}")
    return float(frac)


def parse_margin(text: str) -> Tuple[Optional[float], float]:
    """A margin as written on a command line -> ``(margin, margin_frac)`` for :class:`Anonymizer`:
    ``"8"`` = 8 px, ``"5%"`` = 5 % of each face's size, ``"auto"`` = the default fraction.

    Raises:
        ValueError: anything else, or a value out of range.
    """
    t = str(text).strip().lower()
    if t == "auto":
        return None, DEFAULT_MARGIN_FRAC
    try:
        if t.endswith("%"):
            return None, check_margin_frac(float(t[:-1]) / 100.0)
        return check_margin(float(t)), DEFAULT_MARGIN_FRAC
    except ValueError as e:
        if "anonymize margin" in str(e):
            raise
        raise ValueError(f"anonymize margin must be pixels (8), a percentage of the face size (5%) or auto, "
                         f"got {text!r}") from None


def check_hold_frames(frames) -> int:
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 0:
        raise ValueError(f"hold-over frames must be an integer >= 0, got {frames!r}")
    return int(frames)


def _check_image(image) -> None:
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        raise ValueError(f"expected an H x W x 3 uint8 image, got shape {getattr(image, 'shape', None)} "
                         f"dtype {getattr(image, 'dtype', None)}")


def _face_size(face: Face) -> float:
    x1, y1, x2, y2 = face.box
    return math.sqrt(max(x2 - x1, 1.0) * max(y2 - y1, 1.0))


# regions and weights ---------------------------------------------------------------------------


def _face_weights(face: Face, shape: Tuple[int, int], region: str, margin: Optional[float],
                  feather: Optional[float], margin_frac: float = DEFAULT_MARGIN_FRAC
                  ) -> Optional[Tuple[Tuple[int, int, int, int], np.ndarray]]:
    """``((y0, y1, x0, x1), weights)``: the face's float32 weights in 0..1 inside that rectangle
    of the image, or ``None`` when the face covers no pixel of it."""
    import cv2

    h, w = shape
    m = margin if margin is not None else max(MIN_AUTO_MARGIN, round(margin_frac * _face_size(face)))
    f = m / 4.0 if feather is None else min(float(feather), m)
    use_mask = region == "mask" and face.mask is not None
    if use_mask:
        if face.mask.shape != (h, w):
            raise ValueError(f"a face mask is {face.mask.shape[0]}x{face.mask.shape[1]}, the image {h}x{w}: "
                             "faces must come from this image")
        rows, cols = np.nonzero(face.mask.any(axis=1))[0], np.nonzero(face.mask.any(axis=0))[0]
        use_mask = rows.size > 0  # a detected face with an empty mask (tiny, blurred) still gets its box
    if region == "mask" and not use_mask:
        logger.debug("face without a mask: covering its box")
        region = "box"
    if use_mask:
        ry0, ry1, rx0, rx1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    else:
        x1, y1, x2, y2 = face.box
        rx0, ry0 = int(math.floor(x1)), int(math.floor(y1))
        rx1, ry1 = int(math.ceil(x2)), int(math.ceil(y2))
    pad = int(math.ceil(m)) + 1
    y0, y1_, x0, x1_ = max(0, ry0 - pad), min(h, ry1 + pad), max(0, rx0 - pad), min(w, rx1 + pad)
    if y0 >= y1_ or x0 >= x1_:
        return None
    if use_mask:
        inside = face.mask[y0:y1_, x0:x1_].astype(np.uint8)
    else:
        inside = np.zeros((y1_ - y0, x1_ - x0), np.uint8)
        bx1, by1, bx2, by2 = (v - o for v, o in zip(face.box, (x0, y0, x0, y0)))
        if region == "ellipse":
            # cv2 draws with 1/16 px precision (shift=4): the ellipse inscribed in the box
            c = (int(round((bx1 + bx2) / 2 * 16)), int(round((by1 + by2) / 2 * 16)))
            axes = (max(1, int(round((bx2 - bx1) / 2 * 16))), max(1, int(round((by2 - by1) / 2 * 16))))
            cv2.ellipse(inside, c, axes, 0, 0, 360, 1, -1, cv2.LINE_8, 4)
        else:
            inside[max(0, int(round(by1))):max(0, int(round(by2))), max(0, int(round(bx1))):max(0, int(round(bx2)))] = 1
        if not inside.any():
            return None
    if m <= 0:
        return (y0, y1_, x0, x1_), inside.astype(np.float32)
    # distance of every pixel to the region (0 inside it), exact Euclidean
    dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    weights = np.clip((m - dist + 1.0) / (f + 1.0), 0.0, 1.0)
    weights[dist > m] = 0.0
    return (y0, y1_, x0, x1_), weights


def anonymization_weights(shape: Tuple[int, int], faces: Sequence[Face], region: str = "mask",
                          margin: Optional[float] = None, feather: Optional[float] = None,
                          margin_frac: float = DEFAULT_MARGIN_FRAC) -> np.ndarray:
    """The ``H x W`` float32 map (0..1) of how strongly each pixel is replaced: the maximum over
    ``faces`` of their dilated, feathered regions (see the module doc). 0 = pixel kept exactly.

    Args:
        shape: ``(H, W)`` of the image.
        region: ``"mask"`` (the face's pixel mask; its box when it has none), ``"box"`` or
            ``"ellipse"`` (inscribed in the box).
        margin: dilation in px; ``None`` = auto, ``margin_frac`` of each face's size.
        feather: px of the margin over which the weight falls off; ``None`` = a quarter of the margin.
        margin_frac: the auto margin as a fraction of the face size ``sqrt(box w * box h)``
            (default ``DEFAULT_MARGIN_FRAC``; at least ``MIN_AUTO_MARGIN`` px).
    """
    check_region(region)
    margin = check_margin(margin)
    margin_frac = check_margin_frac(margin_frac)
    feather = check_feather(feather)
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w), np.float32)
    for face in faces:
        got = _face_weights(face, (h, w), region, margin, feather, margin_frac)
        if got is not None:
            (y0, y1, x0, x1), wt = got
            np.maximum(out[y0:y1, x0:x1], wt, out=out[y0:y1, x0:x1])
    return out


def check_feather(feather) -> Optional[float]:
    if feather is None:
        return None
    if isinstance(feather, bool) or not isinstance(feather, (int, float)) or not math.isfinite(feather) \
            or feather < 0:
        raise ValueError(f"feather must be a number of pixels >= 0 (or None = a quarter of the margin), got {feather!r}")
    return float(feather)


# the effects ---------------------------------------------------------------------------------------


def _blur(roi: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    # A large sigma on a large face is done at reduced resolution (sigma ~ 4 px there): the same
    # look at a fraction of the cost, whatever the face size.
    if sigma > 6:
        k = 4.0 / sigma
        h, w = roi.shape[:2]
        small = cv2.resize(roi, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), 4.0, borderType=cv2.BORDER_REFLECT)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(roi, (0, 0), max(sigma, 0.5), borderType=cv2.BORDER_REFLECT)


def _pixelate(roi: np.ndarray, cell: float) -> np.ndarray:
    import cv2

    h, w = roi.shape[:2]
    small = cv2.resize(roi, (max(1, round(w / cell)), max(1, round(h / cell))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


class Anonymizer:
    """Blur, pixelate or fill the faces of images (see the module doc for the region and weights).

    Args:
        method: ``"blur"`` (Gaussian), ``"pixelate"`` (mosaic) or ``"fill"`` (solid colour).
        region: ``"mask"`` (each face's pixel mask, the default; its box when a face has no
            mask), ``"box"`` or ``"ellipse"`` (inscribed in the box).
        margin: dilation of the region in px, >= 0; ``None`` (default) = ``margin_frac`` of each
            face's size ``sqrt(box w * box h)``, at least 2 px.
        feather: px of the margin over which the edge fades out (0 = hard edge); ``None`` =
            a quarter of the margin. Capped at the margin, so the region itself is always fully covered.
        blur: Gaussian sigma as a fraction of the face size (default 0.12: about 12 px on a
            100 px face, beyond recognition).
        blocks: pixelate: mosaic cells across the face size (default 8; fewer = coarser).
        fill_color: fill: the colour as ``(R, G, B)`` 0..255 (default black).
        hold_frames: videos (:meth:`hold_over`): processed frames a lost face stays covered.
        margin_frac: the auto margin's fraction of the face size, 0..1 (default
            ``DEFAULT_MARGIN_FRAC``).

    Raises:
        ValueError: an option out of range, naming it and the value given.
    """

    def __init__(self, method: str = "blur", region: str = "mask", margin: Optional[float] = None,
                 feather: Optional[float] = None, blur: float = 0.12, blocks: int = 8,
                 fill_color: Tuple[int, int, int] = (0, 0, 0), hold_frames: int = DEFAULT_HOLD_FRAMES,
                 margin_frac: float = DEFAULT_MARGIN_FRAC):
        self.method = check_method(method)
        self.region = check_region(region)
        self.margin = check_margin(margin)
        self.margin_frac = check_margin_frac(margin_frac)
        self.feather = check_feather(feather)
        if isinstance(blur, bool) or not isinstance(blur, (int, float)) or not 0 < blur <= 1:
            raise ValueError(f"blur must be a fraction of the face size in (0, 1], got {blur!r}")
        self.blur = float(blur)
        if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) or not 1 <= blocks <= 256:
            raise ValueError(f"blocks must be an integer in [1, 256], got {blocks!r}")
        self.blocks = int(blocks)
        fc = tuple(fill_color) if isinstance(fill_color, (tuple, list)) else ()
        if len(fc) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in fc):
            raise ValueError(f"fill_color must be (R, G, B) integers in 0..255, got {fill_color!r}")
        self.fill_color = tuple(int(v) for v in fc)
        self.hold_frames = check_hold_frames(hold_frames)

    def __repr__(self) -> str:
        return (f"Anonymizer(method={self.method!r}, region={self.region!r}, margin={self.margin}, "
                f"margin_frac={self.margin_frac}, "
                f"feather={self.feather}, hold_frames={self.hold_frames})")

    def __call__(self, image: np.ndarray, faces: Sequence[Face], color: str = "bgr", copy: bool = True) -> np.ndarray:
        """``image`` with ``faces`` anonymised.

        Args:
            image: ``H x W x 3`` uint8; ``color`` (``"bgr"``, default, or ``"rgb"``) is its channel
                order (it matters only for ``fill_color``); the result has the same order.
            faces: faces of this image (boxes / masks in its pixels), e.g. ``FacePredictor``'s.
            copy: work on a copy (default) or in place.
        """
        if color not in ("bgr", "rgb"):
            raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
        _check_image(image)
        if isinstance(faces, Face):
            faces = [faces]
        if not all(isinstance(f, Face) for f in faces):
            raise ValueError("faces must be a list of maskface Face objects (FacePredictor's results)")
        out = image.copy() if copy else image
        fill = np.array(self.fill_color[::-1] if color == "bgr" else self.fill_color, np.float32)
        for face in faces:
            got = _face_weights(face, out.shape[:2], self.region, self.margin, self.feather, self.margin_frac)
            if got is None:
                continue
            (y0, y1, x0, x1), wt = got
            roi = out[y0:y1, x0:x1]
            size = _face_size(face)
            if self.method == "blur":
                effect = _blur(roi, self.blur * size).astype(np.float32)
            elif self.method == "pixelate":
                effect = _pixelate(roi, max(2.0, size / self.blocks)).astype(np.float32)
            else:
                effect = fill
            sel = wt > 0  # only these pixels are written: the others keep their exact bytes
            src = roi[sel].astype(np.float32)
            eff = effect[sel] if effect.ndim == 3 else effect
            roi[sel] = np.rint(src + wt[sel][:, None] * (eff - src)).clip(0, 255).astype(np.uint8)
        return out

    def hold_over(self) -> "HoldOver":
        """A fresh :class:`HoldOver` (one per video) with this anonymizer's ``hold_frames``."""
        return HoldOver(frames=self.hold_frames)


def anonymize(image: np.ndarray, faces: Sequence[Face], method: str = "blur", region: str = "mask",
              margin: Optional[float] = None, feather: Optional[float] = None, color: str = "bgr",
              **options) -> np.ndarray:
    """``image`` (H x W x 3 uint8, ``color`` order) with ``faces`` blurred / pixelated / filled;
    a copy. Arguments as :class:`Anonymizer` (``blur``, ``blocks``, ``fill_color`` in ``options``)."""
    return Anonymizer(method=method, region=region, margin=margin, feather=feather, **options)(image, faces, color)


# videos: hold-over --------------------------------------------------------------------------------


class _Held:
    __slots__ = ("face", "velocity", "missed")

    def __init__(self, face: Face, velocity: np.ndarray):
        self.face, self.velocity, self.missed = face, velocity, 0


class HoldOver:
    """Keeps a face covered for ``frames`` processed frames after it was last detected.

    Call :meth:`update` with every processed frame's faces (after the tracker, so they carry
    ``track_id``); it returns those faces plus a stand-in for each face seen within the last
    ``frames`` frames but not now: its last face moved by its track's velocity (box and mask).
    A remembered face counts as found again when a current face has its ``track_id`` or a box
    overlapping its expected box (IoU >= ``match_iou``), so a re-detection under a new id does not
    leave a stale copy behind. Untracked faces are held too (without motion).

    Args:
        frames: hold-over length in processed frames (0 = off).
        match_iou: box IoU above which a current face replaces a remembered one.
    """

    def __init__(self, frames: int = DEFAULT_HOLD_FRAMES, match_iou: float = 0.3):
        self.frames = check_hold_frames(frames)
        self.match_iou = float(match_iou)
        self.reset()

    def reset(self) -> None:
        self._held: List[_Held] = []

    def update(self, faces: Sequence[Face]) -> List[Face]:
        """This frame's ``faces`` followed by the held stand-ins (new ``Face`` objects,
        ``score`` 0; the inputs are not modified)."""
        from maskface.inference.tracking import box_iou_matrix

        faces = list(faces)
        if self.frames == 0:
            return faces
        prev: Dict[int, _Held] = {h.face.track_id: h for h in self._held if h.face.track_id is not None}
        held = []
        if self._held:
            expected = np.array([_shift_box(h.face.box, h.velocity * (h.missed + 1)) for h in self._held])
            iou = box_iou_matrix(expected, np.array([f.box for f in faces])) if faces else None
            ids = {f.track_id for f in faces if f.track_id is not None}
            for k, h in enumerate(self._held):
                found = (h.face.track_id is not None and h.face.track_id in ids) or \
                    (iou is not None and iou[k].max() >= self.match_iou)
                h.missed += 1
                if not found and h.missed <= self.frames:
                    held.append(h)
        stand_ins = [_moved_face(h.face, h.velocity * h.missed) for h in held]
        now = []
        for f in faces:
            v = np.zeros(2)
            p = prev.get(f.track_id) if f.track_id is not None else None
            if p is not None:
                v = (_centre(f.box) - _centre(p.face.box)) / max(p.missed, 1)  # missed = frames since
            now.append(_Held(f, v))
        self._held = now + held
        return faces + stand_ins


def _centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def _shift_box(box, d) -> List[float]:
    return [box[0] + d[0], box[1] + d[1], box[2] + d[0], box[3] + d[1]]


def _moved_face(face: Face, d: np.ndarray) -> Face:
    """A copy of ``face`` (box and mask) moved by ``d = (dx, dy)`` px, rounded for the mask."""
    dx, dy = int(round(d[0])), int(round(d[1]))
    moved = Face(box=_shift_box(face.box, (dx, dy)), score=0.0, track_id=face.track_id)
    if face.mask is not None:
        m = face.mask
        if dx == 0 and dy == 0:
            moved.mask = m
        else:
            h, w = m.shape
            out = np.zeros_like(m)
            if abs(dx) < w and abs(dy) < h:
                out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
                    m[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
            moved.mask = out
    return moved

