"""Attribute metrics (age, gender, emotion), their plots, model evaluation, speed benchmark, and
the ``attributes`` sub-command of ``tools/evaluate.py``.

Metrics (each over the faces whose attribute is known):

* age: MAE (years), CS@5 (fraction with ``|error| <= 5`` years), Adience-group accuracy (the
  group of the predicted age, as ``age_group`` in results, vs the group of the true age) and
  ``group_accuracy_top`` (the most probable group of the predicted distribution,
  ``age_group_top``);
* gender and emotion: accuracy, macro-F1 (mean F1 over the classes present in the labels or the
  predictions), per-class recall (``None`` for classes without samples), confusion matrix (rows:
  true class, columns: predicted class) and expected calibration error (15 equal-width bins of the
  top probability: ``sum_b n_b / n * |accuracy_b - confidence_b|``);
* FER+ majority accuracy (``emotion["ferplus_majority_accuracy"]``), where faces carry crowd
  votes: the predicted emotion vs the emotion most annotators chose (faces whose top vote is
  tied are left out), beside the accuracy on the dataset's own labels;
* gender accuracy of faces aged 13 and over (``gender["accuracy_13_and_over"]``; children's
  gender is much harder to read from a face);
* ``bias``: the same accuracies and age errors broken down by true gender, by true age group, by
  age band (:data:`AGE_BANDS`: 0-12, 13-19, 20-39, 40-59, 60+) and by any population-group labels
  the faces carry (``groups``, e.g. UTKFace's race), for the model card;
* ``score``: the validation score that picks ``model_best.pth``: the mean of gender accuracy,
  emotion accuracy and age CS@5, over those the data has (all in [0, 1], higher is better).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from maskface.data.attribute_dataset import (
    CropCache,
    cache_meta,
    center_crops,
    check_crop_cache,
    crop_record_faces,
    encode_attributes,
    encode_emotion_votes,
    load_crop_cache,
)
from maskface.data.attributes import EMOTIONS, GENDERS
from maskface.modeling.attributes.crops import normalize_crops
from maskface.modeling.attributes.heads import AGE_GROUP_NAMES, age_group_index
from maskface.utils.io import save_json

logger = logging.getLogger(__name__)

ECE_BINS = 15
CS_THRESHOLD = 5.0  # years
#: Age bands of the bias breakdown: (name, first year, first year of the next band).
AGE_BANDS = (("0-12", 0, 13), ("13-19", 13, 20), ("20-39", 20, 40), ("40-59", 40, 60), ("60+", 60, math.inf))


# --- metrics on arrays ---------------------------------------------------------------------------
def _mean(x: np.ndarray) -> Optional[float]:
    return float(np.mean(x)) if x.size else None


def age_metrics(pred_age: np.ndarray, true_age: np.ndarray, pred_group: Optional[np.ndarray] = None,
                pred_group_top: Optional[np.ndarray] = None) -> dict:
    """``{"n", "mae", "cs5", "group_accuracy"}`` (+ ``"group_accuracy_top"``) over the faces with a
    known (finite) true age.

    Args:
        pred_age: ``(N,)`` predicted ages, years.
        true_age: ``(N,)`` true ages, years (NaN = unknown).
        pred_group: ``(N,)`` predicted Adience group indices (default: the group of ``pred_age``).
        pred_group_top: ``(N,)`` most probable group indices, if known.
    """
    pred_age, true_age = np.asarray(pred_age, dtype=np.float64), np.asarray(true_age, dtype=np.float64)
    known = np.isfinite(true_age)
    err = np.abs(pred_age[known] - true_age[known])
    if pred_group is None:
        pred_group = age_group_index(torch.from_numpy(pred_age)).numpy()
    true_group = age_group_index(torch.from_numpy(true_age[known])).numpy()
    return {
        "n": int(known.sum()),
        "mae": _mean(err),
        "cs5": _mean((err <= CS_THRESHOLD).astype(np.float64)),
        "group_accuracy": _mean((np.asarray(pred_group)[known] == true_group).astype(np.float64)),
        **({} if pred_group_top is None else
           {"group_accuracy_top": _mean((np.asarray(pred_group_top)[known] == true_group).astype(np.float64))}),
    }


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts; rows are true classes, columns predicted classes."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return cm


def macro_f1(cm: np.ndarray) -> Optional[float]:
    """Mean F1 over the classes that occur as a label or a prediction (``None`` if no samples)."""
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return None
    f1 = 2 * tp[present] / (support[present] + predicted[present])
    return float(f1.mean())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> Optional[float]:
    """ECE of the top-class probability with ``n_bins`` equal-width bins ``(lo, hi]`` over [0, 1].

    Args:
        probs: ``(N, C)`` class probabilities.
        labels: ``(N,)`` true class indices.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return None
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def classification_metrics(probs: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict:
    """``{"n", "accuracy", "macro_f1", "ece", "per_class_recall", "confusion"}`` over the faces with
    ``labels >= 0``; ``probs`` ``(N, C)``, ``labels`` ``(N,)`` (-1 = unknown)."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    known = labels >= 0
    probs, labels = probs[known], labels[known]
    pred = probs.argmax(axis=1) if len(labels) else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(pred, labels, len(names))
    support = cm.sum(axis=1)
    return {
        "n": int(len(labels)),
        "accuracy": _mean((pred == labels).astype(np.float64)),
        "macro_f1": macro_f1(cm),
        "ece": expected_calibration_error(probs, labels),
        "per_class_recall": {n: (float(cm[i, i] / support[i]) if support[i] else None) for i, n in enumerate(names)},
        "confusion": cm.tolist(),
    }


def ferplus_majority_metrics(emotion_probs: np.ndarray, votes: np.ndarray) -> dict:
    """``{"n_ferplus", "ferplus_majority_accuracy"}``: accuracy of the predicted emotion against the
    emotion that got most crowd votes, over faces with votes whose top vote is not tied.

    Args:
        emotion_probs: ``(N, 7)`` predicted probabilities.
        votes: ``(N, 7)`` vote shares per emotion, rows of zeros = no votes.
    """
    votes = np.asarray(votes, dtype=np.float64)
    top = votes.max(axis=1, keepdims=True)
    clear = (votes.sum(axis=1) > 0) & ((votes == top).sum(axis=1) == 1)
    majority = votes.argmax(axis=1)
    pred = np.asarray(emotion_probs).argmax(axis=1)
    return {"n_ferplus": int(clear.sum()),
            "ferplus_majority_accuracy": _mean((pred[clear] == majority[clear]).astype(np.float64))}


def _subset_summary(pred: Dict[str, np.ndarray], true: Dict[str, np.ndarray], sel: np.ndarray) -> dict:
    age = age_metrics(pred["age"][sel], true["age"][sel], pred["age_group"][sel])
    def accuracy(task: str) -> Optional[float]:
        known = sel & (true[task] >= 0)
        return _mean((pred[f"{task}_probs"][known].argmax(1) == true[task][known]).astype(np.float64))

    return {"n": int(sel.sum()), "age_mae": age["mae"], "age_cs5": age["cs5"],
            "gender_accuracy": accuracy("gender"), "emotion_accuracy": accuracy("emotion")}


def compute_attribute_metrics(pred: Dict[str, np.ndarray], true: Dict[str, np.ndarray],
                              groups: Optional[Dict[str, Sequence[str]]] = None) -> dict:
    """All metrics of the module docstring.

    Args:
        pred: ``age`` ``(N,)`` years, ``age_group`` ``(N,)`` group index, ``gender_probs``
            ``(N, 2)``, ``emotion_probs`` ``(N, 7)``.
        true: ``age`` ``(N,)`` (NaN unknown), ``gender`` / ``emotion`` ``(N,)`` (-1 unknown).
        groups: optional population-group labels per face, e.g. ``{"race": ["asian", "", ...]}``
            (``N`` strings each, ``""`` = unknown); each adds a ``bias["by_<name>"]`` breakdown.

        true may also hold ``emotion_votes`` ``(N, 7)`` vote shares (rows of zeros = no votes), and
        pred ``age_group_top`` ``(N,)``.

    Returns:
        ``{"n", "age", "gender", "emotion", "bias": {"by_gender", "by_age_group", "by_age_band",
        ...}, "score"}``.
    """
    pred = {k: np.asarray(v) for k, v in pred.items()}
    true = {k: np.asarray(v) for k, v in true.items()}
    out = {
        "n": int(len(true["age"])),
        "age": age_metrics(pred["age"], true["age"], pred["age_group"], pred.get("age_group_top")),
        "gender": classification_metrics(pred["gender_probs"], true["gender"], GENDERS),
        "emotion": classification_metrics(pred["emotion_probs"], true["emotion"], EMOTIONS),
    }
    adult = np.isfinite(true["age"]) & (np.nan_to_num(true["age"], nan=-1.0) >= 13) & (true["gender"] >= 0)
    out["gender"]["accuracy_13_and_over"] = _mean(
        (pred["gender_probs"][adult].argmax(1) == true["gender"][adult]).astype(np.float64))
    out["gender"]["n_13_and_over"] = int(adult.sum())
    if "emotion_votes" in true:
        out["emotion"].update(ferplus_majority_metrics(pred["emotion_probs"], true["emotion_votes"]))
    age_known = np.isfinite(true["age"])
    true_group = np.full(len(true["age"]), -1, dtype=np.int64)
    true_group[age_known] = age_group_index(torch.from_numpy(true["age"][age_known].astype(np.float64))).numpy()
    group_pred = pred["age_group"][age_known]
    out["age"]["group_confusion"] = confusion_matrix(group_pred, true_group[age_known], len(AGE_GROUP_NAMES)).tolist()
    out["bias"] = {
        "by_gender": {g: _subset_summary(pred, true, true["gender"] == i) for i, g in enumerate(GENDERS)
                      if (true["gender"] == i).any()},
        "by_age_group": {g: _subset_summary(pred, true, true_group == i) for i, g in enumerate(AGE_GROUP_NAMES)
                         if (true_group == i).any()},
        "by_age_band": {},
    }
    ages = np.where(age_known, true["age"], -1.0)
    for name, lo, hi in AGE_BANDS:
        sel = age_known & (ages >= lo) & (ages < hi)
        if sel.any():
            out["bias"]["by_age_band"][name] = _subset_summary(pred, true, sel)
    for name, labels in (groups or {}).items():
        labels = np.asarray(labels, dtype=object)
        if len(labels) != len(true["age"]):
            raise ValueError(f"groups[{name!r}] has {len(labels)} labels for {len(true['age'])} faces")
        out["bias"][f"by_{name}"] = {str(v): _subset_summary(pred, true, labels == v)
                                     for v in sorted({str(v) for v in labels if v})}
    parts = [out["gender"]["accuracy"], out["emotion"]["accuracy"], out["age"]["cs5"]]
    parts = [p for p in parts if p is not None]
    out["score"] = float(np.mean(parts)) if parts else None
    return out


def flatten_metrics(metrics: dict, prefix: str = "val/") -> Dict[str, float]:
    """The headline scalars (for metrics.json / TensorBoard); metrics without data are left out."""
    pairs = {
        "score": metrics["score"],
        "age_mae": metrics["age"]["mae"],
        "age_cs5": metrics["age"]["cs5"],
        "age_group_accuracy": metrics["age"]["group_accuracy"],
        "gender_accuracy": metrics["gender"]["accuracy"],
        "gender_accuracy_13_and_over": metrics["gender"].get("accuracy_13_and_over"),
        "gender_ece": metrics["gender"]["ece"],
        "emotion_accuracy": metrics["emotion"]["accuracy"],
        "emotion_ferplus_majority_accuracy": metrics["emotion"].get("ferplus_majority_accuracy"),
        "emotion_macro_f1": metrics["emotion"]["macro_f1"],
        "emotion_ece": metrics["emotion"]["ece"],
    }
    return {prefix + k: float(v) for k, v in pairs.items() if v is not None}


def format_breakdown(metrics: dict) -> str:
    """The ``bias`` breakdown as a text table: one row per group (age band, gender, each
    population group such as race or dataset) with faces, age MAE, CS@5, gender and emotion
    accuracy ("-" where the group has no such label)."""
    def cell(v: Optional[float], fmt: str) -> str:
        return f"{'-':>{fmt.split('.')[0]}}" if v is None else format(v, fmt)

    lines = [f"  {'group':<26} {'faces':>6} {'age MAE':>8} {'CS@5':>6} {'gender':>7} {'emotion':>8}"]
    bias = metrics.get("bias", {})
    for key in ["by_age_band", "by_gender"] + sorted(k for k in bias if k not in ("by_age_band", "by_gender",
                                                                                    "by_age_group")):
        for group, s in bias.get(key, {}).items():
            label = f"age {group}" if key == "by_age_band" else group if key == "by_gender" else f"{key[3:]}: {group}"
            lines.append(f"  {label:<26} {s['n']:>6} {cell(s['age_mae'], '8.2f')} {cell(s['age_cs5'], '6.3f')} "
                         f"{cell(s['gender_accuracy'], '7.3f')} {cell(s['emotion_accuracy'], '8.3f')}")
    return "\n".join(lines)


def format_peer_table(metrics: dict, model: str = "MaskFace") -> str:
    """MaskFace and each peer of ``metrics["peers"]`` side by side: faces read, age MAE, gender
    accuracy (all / aged 13 and over), emotion accuracy and macro-F1, over the same faces."""
    def cell(m: dict, *path: str, fmt: str = "7.3f") -> str:
        v = m
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        return f"{'-':>{fmt.split('.')[0]}}" if v is None else format(v, fmt)

    rows = [(model, metrics, metrics.get("described_faces", metrics.get("n")))]
    rows += [(name, m, m.get("read_faces")) for name, m in metrics.get("peers", {}).items()]
    lines = [f"  {'model':<16} {'faces':>6} {'age MAE':>7} {'gender':>7} {'g. 13+':>7} {'emotion':>7} {'emo F1':>7}"]
    for name, m, n in rows:
        lines.append(f"  {name:<16} {n:>6} {cell(m, 'age', 'mae', fmt='7.2f')} {cell(m, 'gender', 'accuracy')} "
                     f"{cell(m, 'gender', 'accuracy_13_and_over')} {cell(m, 'emotion', 'accuracy')} "
                     f"{cell(m, 'emotion', 'macro_f1')}")
    return "\n".join(lines)


# --- plots and report --------------------------------------------------------------------------
def plot_confusion_matrix(cm: Sequence[Sequence[int]], names: Sequence[str], path: Union[str, os.PathLike],
                          title: str = "") -> str:
    """Row-normalised confusion matrix (counts in the cells) as a PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * k, 0.8 + 0.7 * k))
    ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if frac[i, j] > 0.5 else "black")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def save_attribute_report(metrics: dict, output_dir: Union[str, os.PathLike]) -> List[str]:
    """Write ``attribute_metrics.json`` and confusion-matrix PNGs (gender, emotion, age group)."""
    out = Path(output_dir)
    paths = [str(out / "attribute_metrics.json")]
    save_json(metrics, paths[0], indent=2)
    for key, names, cm in (
        ("gender", GENDERS, metrics["gender"]["confusion"]),
        ("emotion", EMOTIONS, metrics["emotion"]["confusion"]),
        ("age_group", AGE_GROUP_NAMES, metrics["age"]["group_confusion"]),
    ):
        if np.asarray(cm).sum() > 0:
            paths.append(plot_confusion_matrix(cm, names, out / f"confusion_{key}.png", title=key))
    return paths


# --- model evaluation --------------------------------------------------------------------------
@torch.inference_mode()
def predict_crops(model: torch.nn.Module, crops: torch.Tensor, batch_size: int = 512,
                  device: Optional[Union[str, torch.device]] = None) -> Dict[str, np.ndarray]:
    """Run the net over crops ``(N, 3, S, S)`` with pixel values in [0, 255] (uint8 or float).

    Returns numpy arrays: ``age``, ``age_std`` ``(N,)`` years, ``age_group`` ``(N,)`` index of the
    group holding ``age``, ``age_group_top`` ``(N,)`` index of the most probable group,
    ``gender_probs`` ``(N, 2)``, ``emotion_probs`` ``(N, 7)``.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    keys = ("age", "age_std", "age_group_probs", "gender_probs", "emotion_probs")
    parts: Dict[str, list] = {k: [] for k in keys}
    for start in range(0, crops.shape[0], batch_size):
        x = normalize_crops(crops[start : start + batch_size].to(device, non_blocking=True))
        out = model(x)
        for k in keys:
            parts[k].append(out[k].float().cpu())
    model.train(was_training)
    res = {k: torch.cat(v).numpy() if v else np.zeros((0,)) for k, v in parts.items()}
    group_probs = res.pop("age_group_probs")
    res["age_group_top"] = group_probs.argmax(axis=1) if len(res["age"]) else np.zeros(0, np.int64)
    res["age_group"] = age_group_index(torch.from_numpy(res["age"])).numpy() if len(res["age"]) \
        else np.zeros(0, np.int64)
    return res


def evaluate_attribute_model(
    model: torch.nn.Module,
    cache_or_records: Union[CropCache, str, os.PathLike, Sequence[dict]],
    device: Optional[Union[str, torch.device]] = None,
    batch_size: int = 512,
    output_dir: Optional[Union[str, os.PathLike]] = None,
) -> dict:
    """Evaluate an :class:`~maskface.modeling.attributes.AttributeNet` on a crop cache (object or
    file path) or on COCO face records (cropped here with the model's ``crop_kwargs``).

    A cache must have been built with the model's crop parameters (checked). Faces of records are
    also broken down by their ``groups`` (e.g. UTKFace's race) and their dataset (the record's
    ``source``). Returns the metrics of :func:`compute_attribute_metrics` plus ``flip_test``
    (whether each face was also read mirrored); with ``output_dir`` also writes the JSON and the
    PNGs.
    """
    kw = model.crop_kwargs
    if isinstance(cache_or_records, (str, os.PathLike)):
        cache_or_records = load_crop_cache(cache_or_records)
    if isinstance(cache_or_records, CropCache):
        cache, groups = cache_or_records, None
        check_crop_cache(cache, cache_meta(kw["size"], kw["margin"], cache.meta["pad"], kw["dilate"], kw["feather"],
                                      ellipse_union=kw.get("ellipse_union", False)))
        crops = center_crops(cache.images, kw["size"])
        true = {k: getattr(cache, k).cpu().numpy() for k in ("age", "gender", "emotion")}
        if cache.emotion_votes is not None:
            true["emotion_votes"] = cache.emotion_votes.cpu().numpy()
    else:
        crops_list, labels, votes, group_labels = [], [], [], []
        for rec in cache_or_records:
            c, anns = crop_record_faces(rec, kw["size"], kw["margin"], kw["dilate"], kw["feather"],
                                         ellipse_union=kw.get("ellipse_union", False))
            crops_list.append(c)
            labels += [encode_attributes(a.get("attributes")) for a in anns]
            votes += [encode_emotion_votes(a.get("attributes")) for a in anns]
            group_labels += [{**(a.get("groups") or {}), "dataset": str(rec.get("source", ""))} for a in anns]
        if not labels:
            raise ValueError("no face with a known attribute in the given records")
        crops = torch.cat(crops_list)
        arr = np.asarray(labels, dtype=np.float64)
        true = {"age": arr[:, 0], "gender": arr[:, 1].astype(np.int64), "emotion": arr[:, 2].astype(np.int64)}
        if any(any(v) for v in votes):
            true["emotion_votes"] = np.asarray(votes, dtype=np.float64)
        groups = {name: [g.get(name, "") for g in group_labels]
                  for name in sorted({n for g in group_labels for n in g})}
    pred = predict_crops(model, crops, batch_size, device)
    metrics = compute_attribute_metrics(pred, true, groups=groups)
    metrics["flip_test"] = bool(getattr(model, "flip_test", False))  # which reading the figures are of
    if output_dir:
        for p in save_attribute_report(metrics, output_dir):
            logger.info("Wrote %s", p)
    return metrics


# --- speed -------------------------------------------------------------------------------------
@torch.inference_mode()
def benchmark_attribute_net(cfg, trunks: Optional[Sequence[str]] = None, batch_sizes: Sequence[int] = (1, 32),
                            device: Union[str, torch.device] = "cpu", warmup: int = 3, iters: int = 10) -> List[dict]:
    """Parameters and inference time of the attribute net for each trunk (other settings from ``cfg``).

    Times the net's forward pass on random crops (median of ``iters`` runs after ``warmup``).

    Returns:
        One row per (trunk, batch size): ``trunk``, ``params``, ``device``, ``batch``,
        ``ms_per_batch``, ``ms_per_face``.
    """
    from maskface.modeling.attributes.net import AttributeNet
    from maskface.modeling.attributes.trunks import TRUNKS

    device = torch.device(device)
    rows = []
    for trunk in trunks or TRUNKS:
        c = cfg.clone()
        c.MODEL.TRUNK = trunk
        model = AttributeNet.from_config(c).to(device).eval()
        params = sum(p.numel() for p in model.parameters())
        s = c.MODEL.CROP_SIZE
        for bs in batch_sizes:
            x = torch.randn(bs, 3, s, s, device=device)
            times = []
            for i in range(warmup + iters):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
            ms = 1000.0 * float(np.median(times))
            rows.append({"trunk": trunk, "params": params, "device": str(device), "batch": bs,
                         "ms_per_batch": ms, "ms_per_face": ms / bs})
    return rows


# --- tools/evaluate.py attributes ----------------------------------------------------------------
def add_attributes_subcommand(subparsers) -> argparse.ArgumentParser:
    """Add ``attributes`` to ``tools/evaluate.py``'s sub-commands (``args.func`` = :func:`run_attributes`)."""
    p = subparsers.add_parser(
        "attributes",
        help="age / gender / emotion metrics of an attribute net",
        description="Evaluate an attribute net checkpoint on a crop cache or COCO face files; writes "
        "attribute_metrics.json and confusion-matrix PNGs.",
        epilog="examples:\n"
        "  evaluate.py attributes --weights output/attributes/model_best.pth --cache attr_cache/val.pt\n"
        "  evaluate.py attributes --weights model_best.pth --dataset data/utkface_val.json --output eval/\n"
        "  evaluate.py attributes --weights model_best.pth --cache attr_cache/val.pt --no-flip --output eval_noflip/\n"
        "  # weights stored without a config (the model zoo's): name the config\n"
        "  evaluate.py attributes --weights maskface/model_zoo/weights/maskface_lite_attributes.pth \\\n"
        "      --config configs/attributes/maskface_lite_ensemble.yaml --cache attr_cache/val.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--weights", required=True,
                   help="attribute net checkpoint (model_best.pth, model_final.pth) or ensemble (tools/make_ensemble.py)")
    p.add_argument("--config", default=None,
                   help="attribute config of --weights (default: the config stored in the checkpoint; needed for "
                   "weights saved without one, e.g. maskface/model_zoo/weights/*.pth)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cache", help="crop cache file (built by tools/train_attributes.py)")
    src.add_argument("--dataset", nargs="+", help="COCO face JSON file(s) or registered dataset names")
    p.add_argument("--image-root", default="", help="image folder for relative file names in --dataset")
    p.add_argument("--output", default="",
                   help="folder for attribute_metrics.json and PNGs (default: eval_<checkpoint> next to --weights)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=512, help="faces per forward pass (default 512)")
    p.add_argument("--no-flip", action="store_true",
                   help="read each face once, as cut, instead of averaging it with its mirror image as the "
                   "checkpoint's config asks (TEST.FLIP): the accuracy of the faster, single-read setup")
    p.set_defaults(func=run_attributes)
    return p


def run_attributes(args: argparse.Namespace) -> int:
    """Run the ``attributes`` sub-command; returns the exit code."""
    from maskface.data.coco_faces import get_dataset
    from maskface.modeling.attributes import load_attribute_net
    from maskface.utils.device import resolve_device

    device = resolve_device(args.device)
    cfg = None
    if args.config:
        from maskface.config import get_attr_cfg, setup_cfg

        cfg = setup_cfg(get_attr_cfg(), args.config)
    model, _ = load_attribute_net(args.weights, device, cfg=cfg, fast=True)
    if args.no_flip:
        model.flip_test = False
    logger.info("Mirrored read (TEST.FLIP): %s", "on" if model.flip_test else "off")
    if args.cache:
        source = args.cache
    else:
        source = [r for d in args.dataset for r in get_dataset(d, args.image_root or None)]
    output = args.output or str(Path(args.weights).parent / f"eval_{Path(args.weights).stem}")
    m = evaluate_attribute_model(model, source, device=device, batch_size=args.batch_size, output_dir=output)
    for k, v in flatten_metrics(m, prefix="").items():
        logger.info("%-20s %s", k, f"{v:.4f}" if not math.isnan(v) else "nan")
    logger.info("Breakdown:\n%s", format_breakdown(m))
    return 0
