"""COCO-style evaluation of the face detector / segmenter.

Metrics (all fractions in 0..1, keys as in ``metrics.json``):

* ``bbox/AP``, ``bbox/AP50``, ``bbox/AP75``, ``bbox/APs``, ``bbox/APm``, ``bbox/APl`` and the same
  for ``segm/`` -- pycocotools' reference numbers (COCO area ranges: small < 32^2 px^2 <= medium <
  96^2 <= large), up to 1000 detections per image (WIDER crowds exceed COCO's usual 100).
* ``recall@0.5``: share of (non-crowd) faces matched by a detection above the operating score
  threshold (greedy matching by descending score at box IoU >= 0.5);
  ``recall@0.5/<bin>`` and ``num_faces/<bin>`` break it down by face size sqrt(w*h) in px
  (WIDER-style: <16, 16-32, 32-64, 64-128, >=128).
* ``precision@0.5``: share of the detections above the operating threshold that match a face
  (same matching); unmatched detections on ``iscrowd`` regions (intersection >= half the
  detection) are left out, as in AP.
* ``mask_iou``: mean mask IoU of those matched faces whose ground truth has a mask.
* ``ms_per_image``: wall-clock milliseconds of the model call per image (the model's own resize
  included, image decoding excluded), on the evaluation device with its thread settings.

Ground truth: ``iscrowd`` faces are ignore regions (pycocotools' rule: detections on them are
neither true nor false positives). Box-only faces (no segmentation) count fully in the box
metrics; in the mask metrics they become ignore regions, and when *no* face of the set has a
mask the ``segm`` metrics are skipped with a note.

The AP numbers use every detection down to ``AP_SCORE_THRESH`` (0.05): AP integrates over the
whole precision-recall curve, so cutting it at the deployment threshold would understate it.
Recall and mask IoU describe the operating point (``MODEL.SCORE_THRESH``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskface.data.coco_faces import FACE_CATEGORY_ID
from maskface.utils.io import save_json
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

AP_SCORE_THRESH = 0.05
MAX_DETS = (1, 10, 1000)
SIZE_BINS = ((0, 16, "<16"), (16, 32, "16-32"), (32, 64, "32-64"), (64, 128, "64-128"), (128, float("inf"), ">=128"))
AP_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


# --- predictions ---------------------------------------------------------------------------------------
def instances_to_coco_results(output: Dict[str, torch.Tensor], image_id: int, mask_thresh: float = 0.5) -> List[dict]:
    """One image's model output -> COCO result dicts (``bbox`` XYWH, ``segmentation`` RLE with
    ``counts`` as str so that it is JSON-serialisable)."""
    boxes = output["boxes"].detach().cpu().numpy().astype(np.float64)
    scores = output["scores"].detach().cpu().numpy().astype(np.float64)
    rles = None
    if "masks" in output and len(boxes):
        masks = (output["masks"].detach().cpu()[:, 0] >= mask_thresh).numpy().astype(np.uint8)
        rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    results = []
    for i, (b, s) in enumerate(zip(boxes, scores)):
        r = {
            "image_id": int(image_id),
            "category_id": FACE_CATEGORY_ID,
            "bbox": [round(float(b[0]), 2), round(float(b[1]), 2), round(float(b[2] - b[0]), 2), round(float(b[3] - b[1]), 2)],
            "score": round(float(s), 5),
        }
        if rles is not None:
            rle = rles[i]
            r["segmentation"] = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
        results.append(r)
    return results


# --- ground truth --------------------------------------------------------------------------------------
def _rect_polygon(bbox: Sequence[float]) -> list:
    x, y, w, h = bbox
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def records_to_coco(records: Sequence[dict], for_segm: bool = False) -> COCO:
    """An in-memory pycocotools ``COCO`` of the records' faces.

    ``for_segm``: faces without a mask become ignore regions (``iscrowd=1`` with their box as the
    region), since they cannot be scored as masks.
    """
    images, anns = [], []
    for rec in records:
        images.append({"id": rec["image_id"], "height": rec["height"], "width": rec["width"], "file_name": rec["file_name"]})
        for a in rec.get("annotations", []):
            seg = a.get("segmentation")
            crowd = int(a.get("iscrowd", 0))
            ann = {
                "id": len(anns) + 1,
                "image_id": rec["image_id"],
                "category_id": FACE_CATEGORY_ID,
                "bbox": list(a["bbox"]),
                "area": float(a.get("area") or a["bbox"][2] * a["bbox"][3]),
                "iscrowd": crowd,
            }
            if for_segm:
                if seg is None:
                    ann["segmentation"], ann["iscrowd"] = _rect_polygon(a["bbox"]), 1
                else:
                    ann["segmentation"] = seg
            anns.append(ann)
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": FACE_CATEGORY_ID, "name": "face"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


# --- metrics ---------------------------------------------------------------------------------------
def _coco_ap(coco_gt: COCO, results: List[dict], iou_type: str) -> Dict[str, float]:
    res = copy.deepcopy(results)
    for r in res:  # one geometry per evaluation, else pycocotools mixes areas of both
        r.pop("segmentation" if iou_type == "bbox" else "bbox", None)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_dt = coco_gt.loadRes(res)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.maxDets = list(MAX_DETS)
        ev.evaluate()
        ev.accumulate()
    # COCOeval.summarize() hard-codes 100 detections for "AP"; read the curves directly instead.
    precision = ev.eval["precision"]  # [IoU thresholds, recall points, classes, area ranges, max dets]
    iou_thrs = list(np.round(ev.params.iouThrs, 2))
    area = {lab: i for i, lab in enumerate(ev.params.areaRngLbl)}

    def ap(iou: Optional[float] = None, area_lbl: str = "all") -> float:
        p = precision[:, :, :, area[area_lbl], -1]
        if iou is not None:
            p = p[iou_thrs.index(iou)]
        p = p[p > -1]
        return float(p.mean()) if p.size else -1.0

    values = (ap(), ap(0.5), ap(0.75), ap(area_lbl="small"), ap(area_lbl="medium"), ap(area_lbl="large"))
    return {f"{iou_type}/{n}": v for n, v in zip(AP_NAMES, values)}


def _match_stats(
    coco_gt_box: COCO, coco_gt_segm: Optional[COCO], results: List[dict], score_thresh: float
) -> Dict[str, Optional[float]]:
    """Greedy box matching at IoU >= 0.5: recall (overall and by size), precision and matched
    mask IoU."""
    by_image: Dict[int, List[dict]] = {}
    for r in results:
        if r["score"] >= score_thresh:
            by_image.setdefault(r["image_id"], []).append(r)
    matched = {label: 0 for _, _, label in SIZE_BINS}
    total = {label: 0 for _, _, label in SIZE_BINS}
    mask_ious: List[float] = []
    n_dets = n_true = 0
    for img_id in coco_gt_box.getImgIds():
        gts = [g for g in coco_gt_box.imgToAnns.get(img_id, []) if not g["iscrowd"]]
        crowds = [g for g in coco_gt_box.imgToAnns.get(img_id, []) if g["iscrowd"]]
        dts = sorted(by_image.get(img_id, []), key=lambda r: -r["score"])
        hit = np.zeros(len(dts), bool)
        if dts and crowds:  # unmatched detections on ignore regions count neither way
            ioa = np.asarray(mask_utils.iou([d["bbox"] for d in dts], [c["bbox"] for c in crowds], [1] * len(crowds)))
            ignored = ioa.reshape(len(dts), len(crowds)).max(axis=1) >= 0.5
        else:
            ignored = np.zeros(len(dts), bool)
        labels = []
        for g in gts:
            s = float(np.sqrt(max(g["bbox"][2] * g["bbox"][3], 0.0)))
            label = next(lab for lo, hi, lab in SIZE_BINS if lo <= s < hi)
            labels.append(label)
            total[label] += 1
        if dts and gts:
            _match_image(dts, gts, labels, img_id, coco_gt_segm, matched, mask_ious, hit)
        n_true += int(hit.sum())
        n_dets += int((hit | ~ignored).sum())
    n_total, n_matched = sum(total.values()), sum(matched.values())
    out: Dict[str, Optional[float]] = {"recall@0.5": n_matched / n_total if n_total else None, "num_faces": float(n_total)}
    out["precision@0.5"] = n_true / n_dets if n_dets else None
    for _, _, label in SIZE_BINS:
        out[f"recall@0.5/{label}"] = matched[label] / total[label] if total[label] else None
        out[f"num_faces/{label}"] = float(total[label])
    out["mask_iou"] = float(np.mean(mask_ious)) if mask_ious else None
    out["num_matched_masks"] = float(len(mask_ious))
    return out


def _match_image(dts, gts, labels, img_id, coco_gt_segm, matched, mask_ious, hit) -> None:
    """One image of :func:`_match_stats`: greedy matching by descending score; updates
    ``matched`` (per size bin), ``mask_ious`` and ``hit`` (per detection) in place."""
    ious = np.asarray(mask_utils.iou([d["bbox"] for d in dts], [g["bbox"] for g in gts], [0] * len(gts)))
    ious = ious.reshape(len(dts), len(gts))
    taken = np.zeros(len(gts), bool)
    segm_gts = {a["id"]: a for a in coco_gt_segm.imgToAnns.get(img_id, [])} if coco_gt_segm else {}
    for di, d in enumerate(dts):
        cand = np.where(~taken & (ious[di] >= 0.5))[0]
        if not len(cand):
            continue
        gi = cand[np.argmax(ious[di, cand])]
        taken[gi] = hit[di] = True
        matched[labels[gi]] += 1
        g_segm = segm_gts.get(gts[gi]["id"])
        if g_segm is not None and not g_segm["iscrowd"] and "segmentation" in d:
            g_rle = coco_gt_segm.annToRLE(g_segm)
            mask_ious.append(float(mask_utils.iou([d["segmentation"]], [g_rle], [0])[0][0]))


def evaluate_coco(records: Sequence[dict], results: List[dict], score_thresh: float = 0.5) -> Dict[str, object]:
    """All metrics of the module docstring for COCO-format ``results`` on ``records``.

    Returns a flat dict of floats (``None`` where undefined, e.g. recall of an empty size bin; -1
    from pycocotools where no face falls in an area range) plus ``"notes"`` (list of str).
    """
    notes: List[str] = []
    has_masks = any(a.get("segmentation") is not None for r in records for a in r.get("annotations", []) if not a.get("iscrowd"))
    gt_box = records_to_coco(records)
    gt_segm = records_to_coco(records, for_segm=True) if has_masks else None
    metrics: Dict[str, object] = {"num_images": float(len(records)), "num_detections": float(len(results))}
    if not results:
        notes.append("no detections at all: every AP is 0")
        metrics.update({f"bbox/{n}": 0.0 for n in AP_NAMES})
        if has_masks:
            metrics.update({f"segm/{n}": 0.0 for n in AP_NAMES})
    else:
        metrics.update(_coco_ap(gt_box, results, "bbox"))
        if has_masks and all("segmentation" in r for r in results):
            metrics.update(_coco_ap(gt_segm, results, "segm"))
        elif has_masks:
            notes.append("predictions carry no masks: segm metrics skipped")
    if not has_masks:
        notes.append("ground truth has no masks (box-only set): segm metrics and mask IoU skipped")
    elif any(a.get("segmentation") is None and not a.get("iscrowd") for r in records for a in r.get("annotations", [])):
        notes.append("box-only faces are ignore regions in the segm metrics")
    metrics.update(_match_stats(gt_box, gt_segm, results, score_thresh))
    if not has_masks or (results and not all("segmentation" in r for r in results)):
        metrics.pop("mask_iou")
        metrics.pop("num_matched_masks")
    metrics["notes"] = notes
    return metrics


# --- running a model -----------------------------------------------------------------------------------
@contextlib.contextmanager
def score_threshold(model: torch.nn.Module, thresh: float):
    """Temporarily lower the model's detection score threshold (torchvision RoI heads)."""
    heads = getattr(model, "roi_heads", None)
    old = getattr(heads, "score_thresh", None)
    if old is not None:
        heads.score_thresh = min(old, thresh)
    try:
        yield
    finally:
        if old is not None:
            heads.score_thresh = old


@torch.no_grad()
def inference_on_records(
    model: torch.nn.Module,
    records: Sequence[dict],
    *,
    device: torch.device,
    mask_thresh: float = 0.5,
    score_thresh: float = AP_SCORE_THRESH,
    num_workers: int = 0,
    progress: bool = True,
    stats: Optional[Dict[str, float]] = None,
) -> Optional[List[dict]]:
    """COCO results of ``model`` on ``records`` (each process does its shard when distributed;
    rank 0 gets all results, other ranks ``None``). ``stats``, when given, receives this
    process's ``model_seconds`` (time inside the model calls) and ``images``."""
    from maskface.data.build import build_test_loader
    from maskface.data.mapper import DatasetMapper
    from maskface.utils.comm import all_gather_object, get_rank, get_world_size, is_main_process

    loader = build_test_loader(
        list(records), DatasetMapper(is_train=False, with_masks=False), rank=get_rank(), world_size=get_world_size(), num_workers=num_workers
    )
    was_training = model.training
    model.eval()
    results: List[dict] = []
    seconds, count = 0.0, 0
    try:
        with score_threshold(model, score_thresh):
            for images, _, recs in progress_bar(loader, desc="eval", unit="img", disable=not (progress and is_main_process()), dynamic_ncols=True):
                images = [im.to(device) for im in images]
                t0 = time.perf_counter()
                outputs = model(images)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds, count = seconds + time.perf_counter() - t0, count + len(images)
                for out, rec in zip(outputs, recs):
                    results.extend(instances_to_coco_results(out, rec["image_id"], mask_thresh))
    finally:
        model.train(was_training)
    if stats is not None:
        stats.update(model_seconds=seconds, images=float(count))
    gathered = all_gather_object(results)
    return [r for part in gathered for r in part] if is_main_process() else None


def evaluate_model_on_dataset(
    model: torch.nn.Module,
    dataset: str,
    cfg,
    *,
    output_dir: Optional[str] = None,
    device: Optional[torch.device] = None,
    max_images: int = 0,
    num_workers: Optional[int] = None,
) -> Optional[Dict[str, object]]:
    """Run ``model`` on a dataset (registered name or COCO face JSON), evaluate, and write
    ``coco_instances_results.json`` + ``metrics.json`` into ``output_dir`` (rank 0).
    Returns the metrics on rank 0, ``None`` elsewhere."""
    from maskface.data.coco_faces import get_dataset
    from maskface.utils.comm import is_main_process

    records = get_dataset(dataset, cfg.DATASETS.IMAGE_ROOT or None)
    if max_images and max_images > 0:
        records = records[:max_images]
    device = device or next(model.parameters()).device
    stats: Dict[str, float] = {}
    results = inference_on_records(
        model,
        records,
        device=device,
        mask_thresh=cfg.MODEL.MASK_THRESH,
        num_workers=cfg.DATALOADER.NUM_WORKERS if num_workers is None else num_workers,
        stats=stats,
    )
    if not is_main_process():
        return None
    metrics = evaluate_coco(records, results, score_thresh=cfg.MODEL.SCORE_THRESH)
    metrics["dataset"] = dataset
    if stats.get("images"):
        metrics["ms_per_image"] = 1000.0 * stats["model_seconds"] / stats["images"]
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        save_json(results, os.path.join(output_dir, "coco_instances_results.json"))
        save_json(metrics, os.path.join(output_dir, "metrics.json"), indent=2)
    return metrics


def format_metrics_table(metrics: Dict[str, object]) -> str:
    """A plain-text table of the metrics (AP rows per geometry, recall by size, notes)."""
    def fmt(v) -> str:
        if not isinstance(v, (int, float)) or v != v or v < 0:  # None, NaN, pycocotools' -1
            return "   -  "
        return f"{100 * v:6.2f}"

    lines = []
    header = "        " + " ".join(f"{n:>6}" for n in AP_NAMES)
    lines.append(header)
    for kind in ("bbox", "segm"):
        if f"{kind}/AP" in metrics:
            lines.append(f"{kind:<7} " + " ".join(fmt(metrics[f'{kind}/{n}']) for n in AP_NAMES))
    bins = [lab for _, _, lab in SIZE_BINS]
    lines.append("")
    lines.append("face size (px)  " + " ".join(f"{b:>7}" for b in bins) + "     all")
    lines.append("faces           " + " ".join(f"{int(metrics.get(f'num_faces/{b}', 0)):>7}" for b in bins) + f" {int(metrics.get('num_faces', 0)):>7}")
    lines.append(
        "recall@0.5 (%)  "
        + " ".join(f"{fmt(metrics.get(f'recall@0.5/{b}')):>7}" for b in bins)
        + f" {fmt(metrics.get('recall@0.5')):>7}"
    )
    if metrics.get("precision@0.5") is not None:
        lines.append(f"precision@0.5 at the operating threshold: {fmt(metrics['precision@0.5']).strip()} %")
    if "ms_per_image" in metrics:
        lines.append(f"model time: {metrics['ms_per_image']:.1f} ms per image")
    if "mask_iou" in metrics:
        lines.append(f"mean mask IoU of matched faces: {fmt(metrics['mask_iou']).strip()} % ({int(metrics.get('num_matched_masks', 0))} faces)")
    for n in metrics.get("notes", []) or []:
        lines.append(f"note: {n}")
    return "\n".join(lines)
