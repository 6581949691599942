"""Face tracking for video: stable ``track_id``s and per-track attribute smoothing.

:class:`FaceTracker` is ByteTrack-like:

1. every track predicts its box with a constant-velocity model (centre and size velocities,
   smoothed with ``velocity_momentum``);
2. stage 1 matches the high-score detections (``score >= high_thresh``) to all live tracks
   (including ones missed for a few frames) on IoU (box IoU, or a mix of box and mask IoU
   with ``mask_weight > 0``), keeping matches with IoU ``>= match_iou``;
3. stage 2 matches the low-score detections (``low_thresh <= score < high_thresh``) to the
   tracks still unmatched that were seen in the previous frame, with the stricter
   ``low_match_iou`` (low-score boxes recover occluded / blurred faces but never start tracks);
4. unmatched high-score detections with ``score >= new_track_thresh`` start new tracks; a new
   track is *tentative* until it has been matched ``min_hits`` times (its faces get
   ``track_id=None`` until then) and a tentative track missed once dies;
5. a track missed for more than ``max_missed`` consecutive updates dies.

Assignment is optimal (Hungarian, via SciPy when installed) or greedy by IoU otherwise.

:class:`AttributeSmoother` keeps a per-track running estimate: an exponential moving average
of age, age_std, gender and emotion probabilities, from which the reported gender, emotion and
age group are re-derived, so labels do not flicker frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from maskface.data.attributes import EMOTIONS, GENDERS
from maskface.inference.results import Face, age_to_group

__all__ = ["FaceTracker", "AttributeSmoother", "box_iou_matrix", "linear_assignment"]


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of ``a`` (N,4) and ``b`` (M,4), xyxy -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def linear_assignment(score: np.ndarray, min_score: float, greedy: bool = False) -> List[Tuple[int, int]]:
    """Pairs (row, col) maximising the total ``score`` with each pair ``>= min_score``."""
    if score.size == 0:
        return []
    if not greedy:
        try:
            from scipy.optimize import linear_sum_assignment
        except ImportError:
            greedy = True
    if not greedy:
        cost = np.where(score >= min_score, -score, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if score[r, c] >= min_score]
    pairs, used_r, used_c = [], set(), set()
    order = np.dstack(np.unravel_index(np.argsort(-score, axis=None), score.shape))[0]
    for r, c in order:
        if score[r, c] < min_score:
            break
        if r in used_r or c in used_c:
            continue
        pairs.append((int(r), int(c)))
        used_r.add(r)
        used_c.add(c)
    return pairs


@dataclass
class _Track:
    track_id: int
    box: np.ndarray  # last observed xyxy
    score: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # d(cx, cy, w, h) per update
    hits: int = 1
    missed: int = 0
    confirmed: bool = False
    mask_rle: Optional[dict] = None

    def predict(self) -> np.ndarray:
        """Box expected now: last box moved by velocity x (missed + 1) updates."""
        cx, cy, w, h = _to_cxcywh(self.box)
        k = self.missed + 1
        vx, vy, vw, vh = self.velocity * k
        return _to_xyxy(np.array([cx + vx, cy + vy, max(1.0, w + vw), max(1.0, h + vh)]))


def _to_cxcywh(b):
    x1, y1, x2, y2 = b
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dtype=np.float64)


def _to_xyxy(c):
    cx, cy, w, h = c
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float64)


class FaceTracker:
    """Assigns stable ``track_id``s to the faces of consecutive frames (see the module doc).

    Args:
        high_thresh: detections at or above this score take part in stage 1.
        low_thresh: detections below this score are ignored by the tracker (track_id None).
        new_track_thresh: minimum score to start a new track.
        match_iou: minimum IoU of a stage-1 match.
        low_match_iou: minimum IoU of a stage-2 (low-score) match.
        max_missed: a track dies after this many consecutive updates without a match.
        min_hits: matches needed before a track's id is reported (1 = at birth).
        velocity_momentum: weight of the old velocity when updating it (0 = last step only).
        mask_weight: weight of mask IoU (vs. box IoU) in the match score; needs masks.
        greedy: use greedy matching instead of the Hungarian algorithm.
    """

    def __init__(
        self,
        high_thresh: float = 0.5,
        low_thresh: float = 0.1,
        new_track_thresh: float = 0.6,
        match_iou: float = 0.2,
        low_match_iou: float = 0.5,
        max_missed: int = 30,
        min_hits: int = 1,
        velocity_momentum: float = 0.6,
        mask_weight: float = 0.0,
        greedy: bool = False,
    ):
        if not 0 <= low_thresh <= high_thresh:
            raise ValueError(f"need 0 <= low_thresh <= high_thresh, got {low_thresh}, {high_thresh}")
        self.high_thresh = high_thresh
        self.low_thresh = low_thresh
        self.new_track_thresh = new_track_thresh
        self.match_iou = match_iou
        self.low_match_iou = low_match_iou
        self.max_missed = max_missed
        self.min_hits = max(1, int(min_hits))
        self.velocity_momentum = velocity_momentum
        self.mask_weight = mask_weight
        self.greedy = greedy
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (call between videos); ids restart at 1."""
        self.tracks: List[_Track] = []
        self._next_id = 1
        self.frame_count = 0

    @property
    def active_ids(self) -> List[int]:
        return [t.track_id for t in self.tracks if t.confirmed]

    def _similarity(self, tracks: Sequence[_Track], faces: Sequence[Face]) -> np.ndarray:
        if not tracks or not faces:
            return np.zeros((len(tracks), len(faces)))
        pred = np.stack([t.predict() for t in tracks])
        boxes = np.array([f.box for f in faces], dtype=np.float64)
        sim = box_iou_matrix(pred, boxes)
        if self.mask_weight > 0:
            from pycocotools import mask as mask_utils

            det_rles = [_encode_for_iou(f) for f in faces]
            trk_rles = [t.mask_rle for t in tracks]
            if all(r is not None for r in det_rles) and all(r is not None for r in trk_rles):
                miou = np.asarray(mask_utils.iou(trk_rles, det_rles, [0] * len(det_rles)), dtype=np.float64)
                sim = (1 - self.mask_weight) * sim + self.mask_weight * miou.reshape(sim.shape)
        return sim

    def _update_track(self, t: _Track, f: Face) -> None:
        new = np.asarray(f.box, dtype=np.float64)
        step = (_to_cxcywh(new) - _to_cxcywh(t.box)) / (t.missed + 1)
        m = self.velocity_momentum if t.hits > 1 else 0.0
        t.velocity = m * t.velocity + (1 - m) * step
        t.box = new
        t.score = f.score
        t.hits += 1
        t.missed = 0
        if self.mask_weight > 0:
            t.mask_rle = _encode_for_iou(f)
        if t.hits >= self.min_hits:
            t.confirmed = True

    def update(self, faces: Sequence[Face]) -> List[Face]:
        """Match this frame's ``faces`` to the tracks; sets ``face.track_id`` in place.

        Returns ``faces`` (same order). Faces not (yet) in a confirmed track get ``None``.
        """
        self.frame_count += 1
        for f in faces:
            f.track_id = None
        high = [i for i, f in enumerate(faces) if f.score >= self.high_thresh]
        low = [i for i, f in enumerate(faces) if self.low_thresh <= f.score < self.high_thresh]
        assigned: Dict[int, _Track] = {}

        # Stage 1: high-score detections vs. every live track.
        tracks = list(self.tracks)
        sim = self._similarity(tracks, [faces[i] for i in high])
        pairs = linear_assignment(sim, self.match_iou, self.greedy)
        matched_t = set()
        for r, c in pairs:
            assigned[high[c]] = tracks[r]
            matched_t.add(r)
        rest_high = [i for k, i in enumerate(high) if k not in {c for _, c in pairs}]

        # Stage 2: low-score detections vs. tracks seen last frame and still unmatched.
        rem = [t for k, t in enumerate(tracks) if k not in matched_t and t.missed == 0]
        sim2 = self._similarity(rem, [faces[i] for i in low])
        for r, c in linear_assignment(sim2, self.low_match_iou, self.greedy):
            assigned[low[c]] = rem[r]

        for i, t in assigned.items():
            self._update_track(t, faces[i])
        hit = {id(t) for t in assigned.values()}
        survivors = []
        for t in self.tracks:
            if id(t) in hit:
                survivors.append(t)
                continue
            t.missed += 1
            if t.confirmed and t.missed <= self.max_missed:
                survivors.append(t)
        # Births.
        for i in rest_high:
            f = faces[i]
            if f.score < self.new_track_thresh:
                continue
            t = _Track(self._next_id, np.asarray(f.box, dtype=np.float64), f.score,
                       confirmed=self.min_hits <= 1 or self.frame_count == 1)
            if self.mask_weight > 0:
                t.mask_rle = _encode_for_iou(f)
            self._next_id += 1
            survivors.append(t)
            assigned[i] = t
        self.tracks = survivors
        for i, t in assigned.items():
            if t.confirmed:
                faces[i].track_id = t.track_id
        return list(faces)


def _encode_for_iou(f: Face) -> Optional[dict]:
    if f.mask is None and f._rle is None:
        return None
    rle = f.rle()
    counts = rle["counts"]
    return {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


# attribute smoothing ------------------------------------------------------------------------------


@dataclass
class _AttrState:
    age: Optional[float] = None
    age_std: Optional[float] = None
    p_female: Optional[float] = None
    emotion: Optional[np.ndarray] = None
    age_group_top: Optional[str] = None
    n: int = 0
    last_seen: int = 0


class AttributeSmoother:
    """Per-track exponential moving average of attributes.

    ``alpha`` is the weight of the newest frame; the first ``warmup`` frames of a track use a
    plain running mean instead (weight ``1/n``), so a track's first noisy frame does not
    dominate. Gender and emotion are re-derived from the averaged probabilities, the age group
    from the averaged age. Faces without a ``track_id`` pass through unchanged.

    A tracked face *without* attributes (the attribute net was not run for it on this frame,
    see :class:`~maskface.inference.video.FrameAnalyzer`'s ``attributes_every``) gets its
    track's current estimate, unchanged: the track carries its labels between updates.
    """

    def __init__(self, alpha: float = 0.2, warmup: int = 5, forget_after: int = 300):
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.warmup = max(1, warmup)
        self.forget_after = forget_after
        self.reset()

    def reset(self) -> None:
        self._state: Dict[int, _AttrState] = {}
        self._t = 0

    def update(self, faces: Sequence[Face]) -> List[Face]:
        """Smooth the attributes of tracked faces in place; returns ``faces``."""
        self._t += 1
        for f in faces:
            if f.track_id is None:
                continue
            if not f.has_attributes:  # not analysed this frame: carry the track's estimate
                s = self._state.get(f.track_id)
                if s is not None:
                    s.last_seen = self._t
                    _write_back(s, f)
                continue
            s = self._state.setdefault(f.track_id, _AttrState())
            s.n += 1
            s.last_seen = self._t
            w = max(self.alpha, 1.0 / s.n) if s.n <= self.warmup else self.alpha

            def ema(old, new):
                if new is None:
                    return old
                return new if old is None else (1 - w) * old + w * new

            s.age = ema(s.age, f.age)
            s.age_std = ema(s.age_std, f.age_std)
            if f.gender is not None and f.gender_prob is not None:
                pf = f.gender_prob if f.gender == GENDERS[0] else 1.0 - f.gender_prob
                s.p_female = ema(s.p_female, pf)
            if f.emotion_probs:
                vec = np.array([f.emotion_probs.get(e, 0.0) for e in EMOTIONS], dtype=np.float64)
                s.emotion = ema(s.emotion, vec)
            s.age_group_top = f.age_group_top or s.age_group_top
            _write_back(s, f)
        stale = [k for k, s in self._state.items() if self._t - s.last_seen > self.forget_after]
        for k in stale:
            del self._state[k]
        return list(faces)


def _write_back(s: _AttrState, f: Face) -> None:
    """A track's smoothed estimate -> ``f``'s attribute fields."""
    if s.age is not None:
        f.age = float(s.age)
        f.age_group = age_to_group(s.age)
    if s.age_std is not None:
        f.age_std = float(s.age_std)
    if s.p_female is not None:
        f.gender = GENDERS[0] if s.p_female >= 0.5 else GENDERS[1]
        f.gender_prob = float(max(s.p_female, 1.0 - s.p_female))
    if s.emotion is not None:
        probs = s.emotion / max(s.emotion.sum(), 1e-12)
        f.emotion_probs = {e: float(p) for e, p in zip(EMOTIONS, probs)}
        f.emotion = EMOTIONS[int(np.argmax(probs))]
    if f.age_group_top is None:
        f.age_group_top = s.age_group_top
