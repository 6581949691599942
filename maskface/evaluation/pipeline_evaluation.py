"""End-to-end evaluation of the whole pipeline (detector -> masked crop -> attribute net).

The attribute metrics of :mod:`attribute_metrics` use ground-truth face boxes. Users get
attributes of the faces the *detector* finds, cut with the *detector's* boxes and masks; this
module measures that: each ground-truth face with attributes is matched to one detection
(:func:`maskface.inference.pseudo_labels.match_detection`: the detection's centre inside the
face box, IoU >= ``min_iou``, highest score); the metrics are computed over matched faces, and
``described_fraction`` says how many of the labelled faces got any prediction at all.

Public attribute packages (:mod:`maskface.evaluation.peers`, ``peers``) can read the same faces:
each is given the boxes of the detections MaskFace's attributes were scored on, and its metrics
go into ``metrics["peers"][name]``, over the tasks it reads, with the same breakdowns.

Every face also carries its dataset (the record's ``source``: the converter's dataset name, else
the COCO file's stem) as a population group, so several datasets give ``bias["by_dataset"]``.

Tight face chips (UTKFace) can be given a grey border first (``pad``), as in
:func:`maskface.inference.pseudo_labels.pseudo_label_faces`: the detector then sees the face at a
photo-like scale. The border is the crop's fill grey, so the attribute crops are the same as when
the face box runs off the unpadded image.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch

from maskface.data.attributes import EMOTIONS, GENDERS
from maskface.evaluation.attribute_metrics import compute_attribute_metrics
from maskface.inference.padding import check_pad, pad_image
from maskface.inference.pseudo_labels import match_detection
from maskface.modeling.attributes.heads import AGE_GROUP_NAMES, age_group_index
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)


def _empty_pred() -> Dict[str, list]:
    return {"age": [], "age_group": [], "gender_probs": [], "emotion_probs": []}


def _scored(pred: Dict[str, list], true: Dict[str, list], group_labels: List[dict]) -> Dict:
    """:func:`compute_attribute_metrics` on the lists gathered per face."""
    return compute_attribute_metrics(
        {k: np.asarray(v, dtype=np.float64 if k != "age_group" else np.int64) for k, v in pred.items()},
        {k: np.asarray(v, dtype=np.float64 if k == "age" else np.int64) for k, v in true.items()},
        groups={name: [g.get(name, "") for g in group_labels] for name in sorted({n for g in group_labels for n in g})},
    )


def _peer_metrics(peer, readings: List[Optional[dict]], true: Dict[str, list], group_labels: List[dict]) -> Dict:
    """Metrics of one attribute peer over the faces it read, its tasks only (the truth of the
    others is hidden, their predictions are placeholders)."""
    pred, kept_true, kept_groups = _empty_pred(), {k: [] for k in true}, []
    uniform = [1.0 / len(EMOTIONS)] * len(EMOTIONS)
    for i, r in enumerate(readings):
        if r is None:
            continue
        age = float(r["age"]) if "age" in peer.tasks else 0.0
        pred["age"].append(age)
        pred["age_group"].append(int(age_group_index(torch.tensor([age], dtype=torch.float64))[0]))
        pred["gender_probs"].append(r["gender_probs"] if "gender" in peer.tasks else [0.5, 0.5])
        pred["emotion_probs"].append(r["emotion_probs"] if "emotion" in peer.tasks else uniform)
        kept_true["age"].append(true["age"][i] if "age" in peer.tasks else np.nan)
        kept_true["gender"].append(true["gender"][i] if "gender" in peer.tasks else -1)
        kept_true["emotion"].append(true["emotion"][i] if "emotion" in peer.tasks else -1)
        kept_groups.append(group_labels[i])
    read = len(kept_groups)
    if not read:
        return {"tasks": list(peer.tasks), "read_faces": 0, "read_fraction": 0.0}
    metrics = _scored(pred, kept_true, kept_groups)
    metrics.update(tasks=list(peer.tasks), read_faces=read, read_fraction=read / len(readings))
    return metrics


def evaluate_pipeline(predictor, records: List[dict], min_iou: float = 0.2, batch_size: int = 8,
                      progress: bool = True, pad: float = 0.0, peers: Sequence = ()) -> Dict:
    """Run ``predictor`` on the images of ``records`` and score its attributes against theirs.

    Args:
        predictor: a :class:`maskface.inference.predictor.FacePredictor` with an attribute net.
        records: per-image records (:func:`maskface.data.coco_faces.load_coco_faces`).
        min_iou: minimum IoU in [0, 1] between a detection and the labelled face box.
        batch_size: images per predictor call.
        pad: grey border added on each side before detection, as a fraction of the image's width /
            height (0 = none; ~0.25 for tight face chips).
        peers: :class:`~maskface.evaluation.peers.AttributePeer` objects that read the same
            faces (the matched detections' boxes, on the same, possibly padded, image).

    Returns:
        ``compute_attribute_metrics``'s dict (over matched faces; faces' ``groups`` such as
        UTKFace's race, and their dataset, add ``bias["by_<group>"]``) plus ``labelled_faces``,
        ``described_faces``, ``described_fraction`` and, with ``peers``, ``peers``: ``{name:
        metrics over the faces it read, with its ``tasks``, ``read_faces``, ``read_fraction``}``.
    """
    if not predictor.has_attributes:
        raise ValueError("pipeline evaluation needs a predictor with an attribute net")
    check_pad(pad)
    pred = _empty_pred()
    true: Dict[str, list] = {"age": [], "gender": [], "emotion": []}
    group_labels: List[dict] = []  # per described face: its ``groups`` (population labels, for bias)
    readings: Dict[str, List[Optional[dict]]] = {peer.name: [] for peer in peers}
    labelled = 0
    for start in progress_bar(range(0, len(records), batch_size), desc="pipeline", unit="batch", disable=not progress):
        batch = records[start:start + batch_size]
        images = [cv2.imread(r["file_name"], cv2.IMREAD_COLOR) for r in batch]
        for r, im in zip(batch, images):
            if im is None:
                logger.warning("%s: cannot decode the image (skipped)", r["file_name"])
        readable = [(r, pad_image(im, pad) if pad > 0 else (im, (0, 0))) for r, im in zip(batch, images)
                    if im is not None]
        results = predictor([im for _, (im, _) in readable], color="bgr") if readable else []
        for (rec, (image, (px, py))), faces in zip(readable, results):
            boxes, scores, taken = [f.box for f in faces], [f.score for f in faces], set()
            matched = []
            for ann in rec["annotations"]:
                attrs = ann["attributes"]
                if ann["iscrowd"] or not attrs:
                    continue
                labelled += 1
                x, y, w, h = ann["bbox"]
                i = match_detection([x + px, y + py, w, h], boxes, scores, taken, min_iou)
                if i is None:
                    continue
                taken.add(i)
                face = faces[i]
                matched.append(face.box)
                pred["age"].append(face.age)
                pred["age_group"].append(AGE_GROUP_NAMES.index(face.age_group))
                p_male = face.gender_prob if face.gender == "male" else 1.0 - face.gender_prob
                pred["gender_probs"].append([1.0 - p_male, p_male])
                pred["emotion_probs"].append([face.emotion_probs[e] for e in EMOTIONS])
                true["age"].append(float(attrs["age"]) if "age" in attrs else np.nan)
                true["gender"].append(GENDERS.index(attrs["gender"]) if "gender" in attrs else -1)
                true["emotion"].append(EMOTIONS.index(attrs["emotion"]) if "emotion" in attrs else -1)
                group_labels.append({**(ann.get("groups") or {}), "dataset": str(rec.get("source", ""))})
            for peer in peers:
                readings[peer.name] += peer.predict(image, matched) if matched else []
    described = len(true["age"])
    if not described:
        raise ValueError(f"no labelled face was matched by a detection ({labelled} labelled faces)")
    metrics = _scored(pred, true, group_labels)
    metrics.update(labelled_faces=labelled, described_faces=described, described_fraction=described / labelled)
    if peers:
        metrics["peers"] = {peer.name: _peer_metrics(peer, readings[peer.name], true, group_labels) for peer in peers}
    return metrics
