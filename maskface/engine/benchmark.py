"""Speed and memory of MaskFace: the detector (inference ms/image, training images/s), the
attribute stage (crops + net + decode, faces/s), the end-to-end ``FacePredictor`` (images/s with
its per-stage split) and the video loop (frames/s).

Each measurement is a function returning a plain dict, so that ``tools/benchmark.py`` only
formats. Per-trunk parameter counts and forward times of the attribute net are
:func:`maskface.evaluation.attribute_metrics.benchmark_attribute_net`.

Workload conventions (stated in every result):
* inputs are synthetic face-like images (:mod:`maskface.data.synthetic`) of a given W x H;
* ``faces``: the detector is made to return exactly that many detections per image (score
  threshold 0, ``detections_per_img = faces``), since the mask head and the mask pasting cost
  grow with the number of faces and an untrained model's detections are arbitrary;
* wall time is the figure of merit; ``cpu_ms_per_image`` (process CPU time, all threads) is
  given too because it stays meaningful on a machine shared with other jobs;
* the pipeline / attribute / video benchmarks run on a real photo (``samples/faces.jpg``,
  resized to the stated W x H: :func:`benchmark_image`) and use the model's own detections
  (its score threshold), so the number of faces found is reported with the speed;
* CPU memory is the process's peak resident set size so far (``ru_maxrss``: it never goes down,
  so phases run from the lightest to the heaviest); GPU memory is
  ``torch.cuda.max_memory_allocated`` of that phase.
"""

from __future__ import annotations

import contextlib
import math
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from maskface.data.synthetic import make_synthetic_image


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_batch(
    batch: int, width: int, height: int, faces: int, seed: int = 0, with_targets: bool = False
) -> Tuple[List[torch.Tensor], List[dict]]:
    """``batch`` images (3 x H x W float 0..1) with ``faces`` synthetic faces each (+ targets)."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    images, targets = [], []
    for _ in range(batch):
        short = min(width, height)
        img, fs = make_synthetic_image(rng, (height, width), faces, min_face=max(12, short // 20), max_face=max(24, short // 4))
        images.append(torch.from_numpy(img.transpose(2, 0, 1).copy()).float().div_(255))
        if with_targets:
            boxes = torch.tensor([[x, y, x + w, y + h] for (x, y, w, h), _ in fs], dtype=torch.float32).reshape(-1, 4)
            masks = np.zeros((len(fs), height, width), np.uint8)
            for i, (_, poly) in enumerate(fs):
                masks[i] = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly], height, width)))
            targets.append(
                {
                    "boxes": boxes,
                    "labels": torch.ones(len(fs), dtype=torch.int64),
                    "masks": torch.from_numpy(masks),
                    "has_mask": torch.ones(len(fs), dtype=torch.bool),
                }
            )
    return images, targets


@contextlib.contextmanager
def fixed_detections(model: torch.nn.Module, faces: int):
    """Make the RoI heads return exactly ``faces`` detections per image (0 = leave as is)."""
    heads = model.roi_heads
    old = (heads.score_thresh, heads.detections_per_img)
    if faces > 0:
        heads.score_thresh, heads.detections_per_img = -1.0, faces
    try:
        yield
    finally:
        heads.score_thresh, heads.detections_per_img = old


@torch.no_grad()
def benchmark_inference(
    model: torch.nn.Module,
    device: torch.device,
    *,
    batch: int = 1,
    width: int = 640,
    height: int = 480,
    faces: int = 10,
    iters: int = 10,
    warmup: int = 2,
) -> Dict[str, float]:
    """Mean wall time per image of ``model(images)`` (eval mode, outputs on ``device``)."""
    model.eval()
    images, _ = synthetic_batch(batch, width, height, faces)
    images = [im.to(device) for im in images]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    dets = []
    with fixed_detections(model, faces):
        for _ in range(warmup):
            model(images)
        _sync(device)
        times, cpu_times = [], []
        for _ in range(iters):
            t0, c0 = time.perf_counter(), time.process_time()
            out = model(images)
            _sync(device)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
            dets.append(np.mean([len(o["boxes"]) for o in out]))
    per_image = np.array(times) / batch * 1000
    res = {
        "ms_per_image": float(np.mean(per_image)),
        "ms_per_image_median": float(np.median(per_image)),
        "ms_per_image_min": float(np.min(per_image)),
        # CPU time of this process (all threads) per image: unlike wall time, barely affected by
        # other processes competing for the cores; wall time >= cpu_ms / threads.
        "cpu_ms_per_image": float(np.sum(cpu_times) / (batch * iters) * 1000),
        "batch": batch,
        "input": f"{width}x{height}",
        "faces_per_image": float(np.mean(dets)),
        "iters": iters,
    }
    res.update(_memory(device))
    return res


def benchmark_training(
    cfg,
    device: torch.device,
    *,
    batch: Optional[int] = None,
    width: int = 0,
    height: int = 0,
    faces: int = 5,
    iters: int = 5,
    warmup: int = 1,
) -> Dict[str, float]:
    """Images/s of full training steps (forward, backward, clipping, optimizer; AMP on CUDA as
    configured) on synthetic images with ``faces`` masked faces each. Default input: the middle
    of ``INPUT.MIN_SIZE_TRAIN`` as the shorter side of a 4:3 image, capped by ``MAX_SIZE_TRAIN``."""
    from maskface.data.transforms import shortest_edge_size
    from maskface.engine.trainer import DetectorTrainer

    if not (width and height):
        sizes = sorted(cfg.INPUT.MIN_SIZE_TRAIN)
        height, width = shortest_edge_size(3, 4, sizes[len(sizes) // 2], cfg.INPUT.MAX_SIZE_TRAIN)
    batch = batch or cfg.SOLVER.IMS_PER_BATCH
    trainer = DetectorTrainer(cfg, device=device)
    trainer.model.train()
    images, targets = synthetic_batch(batch, width, height, faces, with_targets=True)
    step_batch = (images, targets, [{}] * batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        trainer.run_step(step_batch)
    _sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        trainer.run_step(step_batch)
        _sync(device)
        times.append(time.perf_counter() - t0)
    res = {
        "images_per_s": float(batch * iters / np.sum(times)),
        "s_per_iter": float(np.mean(times)),
        "batch": batch,
        "input": f"{width}x{height}",
        "faces_per_image": float(faces),
        "amp": bool(trainer.amp),
        "iters": iters,
    }
    res.update(_memory(device))
    return res


def _memory(device: torch.device) -> Dict[str, float]:
    out = {"peak_rss_mb": round(peak_rss_mb(), 1)}
    if device.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


# --- inputs of the pipeline / attribute / video benchmarks ---------------------------------------

#: The bundled sample photo (4 faces); absent from a non-editable install.
SAMPLE_IMAGE = Path(__file__).resolve().parents[2] / "samples" / "faces.jpg"


def parse_size(text: str) -> Tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)`` (width, height); ``ValueError`` otherwise."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"size must be WxH, such as 640x480; got {text!r}") from None
    if w < 16 or h < 16:
        raise ValueError(f"size must be at least 16x16 px, got {text!r}")
    return w, h


def benchmark_image(path: Optional[str] = None, width: Optional[int] = 640,
                    height: Optional[int] = 480) -> Tuple[np.ndarray, str]:
    """The benchmark input: ``H x W x 3`` uint8 RGB of exactly ``width`` x ``height`` and a line
    saying what it is. ``path=None``: ``samples/faces.jpg`` (a synthetic face-like image when the
    sample is not there). The image is resized to the size as is (aspect ratio not kept);
    ``width=height=None`` keeps its own size."""
    import cv2

    from maskface.inference.image_io import load_image

    if path is None and not SAMPLE_IMAGE.is_file():
        width, height = width or 640, height or 480
        img, _ = make_synthetic_image(np.random.default_rng(0), (height, width), 5,
                                      min_face=max(12, min(width, height) // 10), max_face=max(24, min(width, height) // 3))
        return img, f"synthetic face-like image {width}x{height} ({SAMPLE_IMAGE} not found)"
    shown = "samples/faces.jpg" if path is None else str(path)
    rgb = load_image(SAMPLE_IMAGE if path is None else path)
    h0, w0 = rgb.shape[:2]
    if width is None or height is None or (w0, h0) == (width, height):
        return rgb, f"{shown} ({w0}x{h0}, used as is)"
    interp = cv2.INTER_AREA if w0 * h0 > width * height else cv2.INTER_LINEAR
    rgb = np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=interp))
    return rgb, f"{shown} ({w0}x{h0}) resized to {width}x{height}"


def synthetic_face_regions(height: int, width: int, n: int, seed: int = 0) -> Tuple[np.ndarray, torch.Tensor]:
    """``n`` random face boxes (xyxy float32, 1/8 to 1/3 of the shorter image side, 4:5 aspect)
    inside a ``height`` x ``width`` image and their inscribed-ellipse masks ``(n, H, W)`` bool."""
    rng = np.random.default_rng(seed)
    short = min(width, height)
    fh = np.minimum(rng.uniform(short / 8, short / 3, n), height - 2)
    fw = np.minimum(fh * 0.8, width - 2)
    cx = rng.uniform(fw / 2, width - fw / 2)
    cy = rng.uniform(fh / 2, height - fh / 2)
    boxes = np.stack([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], axis=1).astype(np.float32)
    ys = torch.arange(height, dtype=torch.float32).view(1, -1, 1) + 0.5
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, -1) + 0.5
    c = torch.from_numpy(np.stack([cx, cy, fw / 2, fh / 2], axis=1)).float()
    masks = ((xs - c[:, 0, None, None]) / c[:, 2, None, None]) ** 2 + ((ys - c[:, 1, None, None]) / c[:, 3, None, None]) ** 2 <= 1
    return boxes, masks


def _timing_summary(times: Sequence[float], cpu_times: Sequence[float], per: int, unit: str) -> Dict[str, float]:
    """Wall times (s) of ``len(times)`` runs of ``per`` items each -> ``ms_per_<unit>`` (mean,
    median, min), ``cpu_ms_per_<unit>`` and ``<unit>s_per_s``."""
    ms = np.asarray(times, dtype=np.float64) / per * 1000
    return {
        f"{unit}s_per_s": float(per * len(times) / np.sum(times)),
        f"ms_per_{unit}": float(np.mean(ms)),
        f"ms_per_{unit}_median": float(np.median(ms)),
        f"ms_per_{unit}_min": float(np.min(ms)),
        f"cpu_ms_per_{unit}": float(np.sum(cpu_times) / (per * len(times)) * 1000),
    }


#: ``FacePredictor.timings`` stages, in pipeline order (``postprocess`` = mapping boxes/masks back
#: to original pixels + building the Face records).
PIPELINE_STAGES = ("preprocess", "detector", "attributes", "postprocess")


# --- end-to-end FacePredictor -------------------------------------------------------------------------

def benchmark_pipeline(predictor, image_rgb: np.ndarray, *, batch: int = 1, iters: int = 10,
                       warmup: int = 2) -> Dict[str, Any]:
    """Images/s of ``predictor.predict_batch`` on ``batch`` copies of ``image_rgb`` (RGB array,
    already decoded: preprocess = checks, shrink to ``max_size``, to tensor), with the per-image
    split of ``predictor.timings`` (``<stage>_ms_per_image``, mean over the timed calls) and the
    faces found per image (``faces_per_image`` mean, ``faces_min`` / ``faces_max``)."""
    device = predictor.device
    images = [image_rgb] * batch
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        predictor.predict_batch(images, color="rgb")
    _sync(device)
    times, cpu_times, counts = [], [], []
    stages: Dict[str, float] = defaultdict(float)
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        faces = predictor.predict_batch(images, color="rgb")
        _sync(device)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        for s in PIPELINE_STAGES:
            stages[s] += predictor.timings[f"{s}_ms"]
        counts.extend(len(f) for f in faces)
    h, w = image_rgb.shape[:2]
    res: Dict[str, Any] = _timing_summary(times, cpu_times, batch, "image")
    res.update({f"{s}_ms_per_image": stages[s] / (iters * batch) for s in PIPELINE_STAGES})
    res.update({
        "faces_per_image": float(np.mean(counts)),
        "faces_min": int(np.min(counts)),
        "faces_max": int(np.max(counts)),
        "batch": batch,
        "input": f"{w}x{h}",
        "attributes": bool(predictor.has_attributes),
        "iters": iters,
    })
    res.update(_memory(device))
    return res


# --- attribute stage ----------------------------------------------------------------------------------

def load_attribute_stage(model: Optional[str] = None, config: Optional[str] = None, weights: Optional[str] = None,
                         device: Any = "cpu", opts: Optional[Sequence[str]] = None):
    """The attribute net to benchmark -> ``(net in eval mode on device, frozen cfg, description)``;
    the net as the predictor runs it (``optimize_for_inference``: norms folded, channels-last).

    * ``config`` (+ optional ``weights``; none = random init, speed does not depend on it);
    * ``weights`` alone: a trainer checkpoint with its config stored inside;
    * neither: the attribute net of model-zoo entry ``model`` (default ``maskface-lite``).
    """
    from maskface.config import get_attr_cfg
    from maskface.modeling.attributes import load_attribute_net
    from maskface.modeling.attributes import build_attribute_model
    from maskface.utils.checkpoint import load_checkpoint_file, load_model_weights

    device = torch.device(device)
    if config is None and weights is None:
        from maskface.model_zoo import DEFAULT_MODEL, get_model

        entry = get_model(model or DEFAULT_MODEL)
        config = entry.config_path("attribute")
        if config is None:
            raise ValueError(f"model {entry.name!r} has no attribute net")
        weights = entry.weights_path("attribute")
        what = f"model {entry.name!r}: {config}"
    elif config is None:
        if opts:
            raise ValueError("config overrides need the attribute config too (a checkpoint alone has its own)")
        net, cfg = load_attribute_net(str(weights), device, fast=True)
        return net, cfg, f"{weights} (stored config)"
    else:
        what = str(config)
    cfg = get_attr_cfg()
    cfg.merge_from_file(str(config))
    if opts:
        cfg.merge_from_list(list(opts))
    cfg.freeze()
    net = build_attribute_model(cfg)
    if weights is not None:
        data = load_checkpoint_file(str(weights))
        load_model_weights(net, data.get("model", data), source=str(weights))
    else:
        what += " (random init)"
    return net.to(device).eval().optimize_for_inference(), cfg, what


def benchmark_attribute_stage(net: torch.nn.Module, image_rgb: np.ndarray, device: Any = "cpu", *, batch: int = 1,
                              iters: int = 10, warmup: int = 2, seed: int = 0) -> Dict[str, Any]:
    """Faces/s of the attribute stage as :class:`FacePredictor` runs it: ``extract_face_crops``
    (masked crops with the net's ``crop_kwargs``) of ``batch`` synthetic faces
    (:func:`synthetic_face_regions`) on ``image_rgb`` in one call, one net forward, ``decode``.
    Also the split ``crop`` / ``forward`` / ``decode`` ms per face."""
    from maskface.modeling.attributes import extract_face_crops

    device = torch.device(device)
    h, w = image_rgb.shape[:2]
    boxes, masks = synthetic_face_regions(h, w, batch, seed)
    img = torch.from_numpy(image_rgb).to(device) if device.type == "cuda" else image_rgb
    mask_list = list(masks.to(device))
    kw = dict(getattr(net, "crop_kwargs", None) or {})
    net = net.to(device).eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> Tuple[float, float, float]:
        t0 = time.perf_counter()
        crops = extract_face_crops(img, boxes, mask_list, **kw).to(device)
        _sync(device)
        t1 = time.perf_counter()
        raw = net(crops)
        _sync(device)
        t2 = time.perf_counter()
        out = net.decode(raw)
        t3 = time.perf_counter()
        if len(out) != batch:
            raise RuntimeError(f"decoded {len(out)} faces for {batch} crops")
        return t1 - t0, t2 - t1, t3 - t2

    with torch.inference_mode():
        for _ in range(warmup):
            step()
        times, cpu_times, split = [], [], np.zeros(3)
        for _ in range(iters):
            c0 = time.process_time()
            parts = step()
            cpu_times.append(time.process_time() - c0)
            times.append(sum(parts))
            split += parts
    res: Dict[str, Any] = _timing_summary(times, cpu_times, batch, "face")
    for name, v in zip(("crop", "forward", "decode"), split):
        res[f"{name}_ms_per_face"] = float(v / (iters * batch) * 1000)
    res.update({"batch": batch, "crop_size": int(kw.get("size", 0)), "input": f"{w}x{h}", "iters": iters})
    res.update(_memory(device))
    return res


# --- video -------------------------------------------------------------------------------------------

def write_synthetic_video(path: str, image_rgb: np.ndarray, width: int, height: int, frames: int = 60,
                          fps: float = 30.0) -> str:
    """A ``width`` x ``height`` clip (mp4v) that pans across ``image_rgb`` and zooms in and out
    (up to 1.3x), so that faces move and change size; returns ``path``."""
    import cv2

    from maskface.inference.video import VideoWriter

    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    bgr = np.ascontiguousarray(image_rgb[:, :, ::-1])
    h0, w0 = bgr.shape[:2]
    cover = max(width / w0, height / h0)
    writer = VideoWriter(path, fps, (width, height))
    try:
        for t in range(frames):
            phase = t / max(1, frames - 1)
            s = cover * (1.0 + 0.3 * (0.5 - 0.5 * math.cos(2 * math.pi * phase)))
            tx = -(w0 * s - width) * phase
            ty = -(h0 * s - height) * (0.5 - 0.5 * math.cos(math.pi * phase))
            m = np.array([[s, 0, tx], [0, s, ty]], dtype=np.float64)
            writer.write(cv2.warpAffine(bgr, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    except BaseException:
        writer.close(commit=False)
        raise
    writer.close()
    return path


class _TimedPredictor:
    """Stands in for a predictor in :func:`process_video`, adding up ``timings`` of every call."""

    def __init__(self, predictor):
        self._predictor = predictor
        self.totals: Dict[str, float] = defaultdict(float)

    def __getattr__(self, name):
        return getattr(self._predictor, name)

    def predict_batch(self, images, color: str = "bgr"):
        out = self._predictor.predict_batch(images, color=color)
        for k, v in self._predictor.timings.items():
            self.totals[k] += v
        return out


def benchmark_video(predictor, video_path: str, *, batch_size: int = 8, iters: int = 1, warmup: int = 1,
                    track: bool = True) -> Dict[str, Any]:
    """Frames/s of :func:`maskface.inference.video.process_video` over the whole of
    ``video_path`` (``iters`` passes), decoding and tracking included, with the per-frame split
    of the predictor's stages and ``other_ms_per_frame`` (video decoding, tracking, smoothing)."""
    from maskface.inference.video import VideoReader, process_video

    device = predictor.device
    with VideoReader(video_path, max_frames=batch_size) as reader:
        first = list(reader)
    for _ in range(warmup):
        predictor.predict_batch(first, color="bgr")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed = _TimedPredictor(predictor)
    times, cpu_times, frames, faces, size = [], [], 0, 0, ""
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        with VideoReader(video_path) as reader:
            size = f"{reader.width}x{reader.height}"
            for fr in process_video(timed, reader, batch_size=batch_size, track=track):
                frames += 1
                faces += len(fr.faces)
        _sync(device)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    if frames == 0:
        raise RuntimeError(f"{video_path}: no frame was read")
    total_s = float(np.sum(times))
    res: Dict[str, Any] = {
        "frames_per_s": frames / total_s,
        "ms_per_frame": total_s * 1000 / frames,
        "cpu_ms_per_frame": float(np.sum(cpu_times)) * 1000 / frames,
    }
    res.update({f"{s}_ms_per_frame": timed.totals[f"{s}_ms"] / frames for s in PIPELINE_STAGES})
    res["other_ms_per_frame"] = max(0.0, res["ms_per_frame"] - timed.totals["total_ms"] / frames)
    res.update({
        "faces_per_frame": faces / frames,
        "frames": frames // iters,
        "batch_size": batch_size,
        "input": size,
        "track": bool(track),
        "attributes": bool(predictor.has_attributes),
        "iters": iters,
    })
    res.update(_memory(device))
    return res


# --- anonymisation ------------------------------------------------------------------------------------

def benchmark_anonymize(anonymizer, image_bgr: np.ndarray, faces: Sequence, *, iters: int = 50,
                        warmup: int = 3) -> Dict[str, Any]:
    """ms per image of ``anonymizer(image_bgr, faces)`` (a :class:`maskface.inference.anonymize.
    Anonymizer`; the copy of the image included), over ``iters`` timed calls."""
    for _ in range(warmup):
        anonymizer(image_bgr, faces)
    times, cpu_times = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        anonymizer(image_bgr, faces)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    h, w = image_bgr.shape[:2]
    res: Dict[str, Any] = _timing_summary(times, cpu_times, 1, "image")
    res.update({"method": anonymizer.method, "region": anonymizer.region, "faces": len(faces),
                "input": f"{w}x{h}", "iters": iters})
    return res


# --- where the detector's time goes ------------------------------------------------------------------

#: Stages timed by :func:`detector_stage_times`, in pipeline order: attribute path of the module
#: inside :class:`~maskface.modeling.face_rcnn.FaceRCNN` (timed by forward hooks) or a pseudo-stage.
DETECTOR_STAGES = (
    ("preprocess", None),  # uint8 -> float (FacePredictor's part)
    ("backbone", "backbone"),
    ("rpn", "rpn"),  # objectness + box deltas, anchor decoding, proposal NMS
    ("box_roialign", "roi_heads.box_roi_pool"),
    ("box_head", "roi_heads.box_head"),
    ("box_predictor", "roi_heads.box_predictor"),
    ("mask_roialign", "roi_heads.mask_roi_pool"),
    ("mask_head", "roi_heads.mask_head"),
    ("mask_predictor", "roi_heads.mask_predictor"),
    ("other", None),  # resize, normalisation, padding, box decoding + NMS, mask sigmoid, merging tiles / passes
    ("paste", None),  # box-sized masks -> full-picture masks (maskface.inference.masks.paste_masks)
)


@torch.inference_mode()
def detector_stage_times(model: torch.nn.Module, image_rgb: np.ndarray, *, score_thresh: float = 0.5,
                         mask_thresh: float = 0.5, iters: int = 10, warmup: int = 2) -> Dict[str, Any]:
    """Median milliseconds per stage of one MaskFace detector call on a picture (CPU or CUDA).

    Args:
        model: a :class:`~maskface.modeling.face_rcnn.FaceRCNN` in eval mode (optimised or not).
        image_rgb: ``H x W x 3`` uint8 RGB, read by the model's :meth:`read_plan` (every pass and
            tile: the hooked stages add up over them).
        score_thresh / mask_thresh: as the predictor applies them (faces under ``score_thresh``
            never reach the mask head).

    Returns:
        ``{"stages": {name: ms}, "total_ms": ms, "faces": N, "proposals": P (all passes),
        "input": "WxH[ + T tiles of WxH]", "megapixels_read": MP}``; stages follow
        :data:`DETECTOR_STAGES` and add up to ``total_ms`` (``other`` is the rest).
    """
    from maskface.inference.masks import paste_masks

    device = next(model.parameters()).device
    hooks, spans = [], defaultdict(list)
    for name, path in DETECTOR_STAGES:
        if path is None:
            continue
        module = model.get_submodule(path)
        start = {}

        def pre(_m, _i, start=start):
            _sync(device)
            start["t"] = time.perf_counter()

        def post(_m, _i, out, name=name, start=start):
            _sync(device)
            spans[name].append(time.perf_counter() - start["t"])
            if name == "rpn":
                spans["_proposals"].append(float(sum(len(p) for p in out[0])))

        hooks += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    plan = model.read_plan()
    h, w = image_rgb.shape[:2]
    rows: List[Dict[str, float]] = []
    try:
        for i in range(warmup + iters):
            spans.clear()
            t0 = time.perf_counter()
            x = torch.from_numpy(image_rgb).to(device).permute(2, 0, 1).float().div_(255.0)
            _sync(device)
            t1 = time.perf_counter()
            # the model's reading plan: resize, tiles, merge (in "other" beside the hooked stages)
            out = plan.detect(model.detect_unpasted, [x], score_thresh=score_thresh)[0]
            _sync(device)
            t2 = time.perf_counter()
            paste_masks(out["masks"].float().cpu().numpy(), out["boxes"].cpu().numpy(), h, w, mask_thresh)
            t3 = time.perf_counter()
            if i < warmup:
                continue
            row = {"preprocess": t1 - t0, "paste": t3 - t2}
            row.update({k: sum(v) for k, v in spans.items() if not k.startswith("_")})
            row["other"] = (t2 - t1) - sum(row[k] for k, p in DETECTOR_STAGES if p is not None)
            row["_faces"], row["_proposals"] = float(len(out["boxes"])), sum(spans["_proposals"])
            rows.append(row)
    finally:
        for hk in hooks:
            hk.remove()
    med = {k: float(np.median([r[k] for r in rows])) * 1e3 for k, _ in DETECTOR_STAGES}
    s = plan.scale(h, w)
    windows = plan.tiles(h, w)
    return {"stages": med, "total_ms": float(np.median([sum(r[k] for k, _ in DETECTOR_STAGES) for r in rows])) * 1e3,
            "faces": int(rows[-1]["_faces"]), "proposals": int(rows[-1]["_proposals"]),
            "input": f"{int(w * s)}x{int(h * s)}" + (f" + {len(windows)} tiles of {windows[0][2] - windows[0][0]}x"
                                                    f"{windows[0][3] - windows[0][1]}" if windows else ""),
            "megapixels_read": plan.megapixels_read(h, w)}


def peer_times(peer: torch.nn.Module, image_rgb: np.ndarray, *, iters: int = 10, warmup: int = 2) -> Dict[str, Any]:
    """Median milliseconds of a public detector (:mod:`maskface.evaluation.peers`) on the same
    picture, for a side-by-side row: ``{"total_ms": ms, "faces": N}`` (faces at its operating
    threshold are not applied here: all it returns)."""
    times, n = [], 0
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        n = len(peer.detect(image_rgb)["boxes"])
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {"total_ms": float(np.median(times)) * 1e3, "faces": n}
# live video ---------------------------------------------------------------------------------------------------


def current_rss_mb() -> float:
    """Resident set size of this process now, MiB (Linux ``/proc``; else the peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def benchmark_live_page(predictor, *, seconds: float = 30.0, warmup_s: float = 5.0, attributes_every: int = 5,
                        width: int = 640, height: int = 480, camera_fps: int = 30, anonymize: str = "",
                        sample_s: float = 1.0) -> Dict[str, Any]:
    """The web page's camera mode, end to end, as a user sees it: ``tools/serve.py``'s app
    (waitress + the camera WebSocket) in this process, headless Chromium with its fake camera
    playing a ``width x height`` clip of two real faces moving (:func:`moving_faces_frames`) at
    ``camera_fps``, the page's own figures read every ``sample_s`` seconds for ``seconds`` after
    ``warmup_s``. Everything (browser: capture, JPEG encoding, drawing; server: decoding, model,
    answers) shares this machine's CPUs.

    Returns: ``fps`` (analysed frames drawn per second over the whole run), ``latency_ms_median``
    / ``latency_ms_p90`` (over the samples of the page's median latency: frame captured ->
    its overlay drawn), ``dropped_pct`` (frames skipped by the server, % of frames sent),
    ``faces`` (drawn in the last frame), ``server_cpu_ms_per_frame`` (CPU time of this process,
    all threads: decoding, model, answers; the browser's is not included), server RSS at start,
    half time and end and page JS heap at start / end (MiB; growth in the second half would be a
    leak, the first half includes warm-up allocations) and the most jobs seen waiting at the
    inference worker.
    """
    import tempfile
    import threading

    from maskface.inference.testing import moving_faces_frames
    from maskface.serving.app import create_app, make_server
    from maskface.serving.browser import camera_in_browser, chrome_driver, fake_camera_args, live_stats, write_y4m
    from maskface.serving.live import LiveServer

    heap = "return performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null;"
    with tempfile.TemporaryDirectory(prefix="maskface_live_") as tmp:
        clip = write_y4m(str(Path(tmp) / "camera.y4m"), moving_faces_frames(camera_fps * 4, width, height),
                         fps=camera_fps)
        app = create_app(predictor, tmp_dir=str(Path(tmp) / "uploads"))
        service = app.extensions["maskface"]
        server = make_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        live = LiveServer(service, port=0, attributes_every=attributes_every).start()
        app.config["MASKFACE_LIVE_PORT"] = live.port
        driver = chrome_driver(extra_args=fake_camera_args(clip))
        try:
            camera_in_browser(driver, f"http://127.0.0.1:{server.server_port}/", min_results=3, timeout=180,
                              anonymize=anonymize)
            time.sleep(warmup_s)
            s0, t0, c0 = live_stats(driver), time.monotonic(), time.process_time()
            rss0, heap0 = current_rss_mb(), driver.execute_script(heap)
            samples, pending, rss_mid = [], 0, None
            while time.monotonic() - t0 < seconds:
                time.sleep(sample_s)
                samples.append(live_stats(driver))
                pending = max(pending, service.worker.pending)
                if rss_mid is None and time.monotonic() - t0 >= seconds / 2:
                    rss_mid = current_rss_mb()
            s1, t1, c1 = live_stats(driver), time.monotonic(), time.process_time()
            rss1, heap1 = current_rss_mb(), driver.execute_script(heap)
        finally:
            driver.quit()
            live.shutdown()
            server.shutdown()
            service.close()
    lat = [s["latencyMs"] for s in samples if s.get("latencyMs")]
    results, dropped = s1["results"] - s0["results"], s1["dropped"] - s0["dropped"]
    return {
        "input": f"{width}x{height}", "camera_fps": camera_fps, "attributes_every": attributes_every,
        "anonymize": anonymize or None, "seconds": round(t1 - t0, 1),
        "fps": results / (t1 - t0),
        "server_cpu_ms_per_frame": 1e3 * (c1 - c0) / max(1, results),
        "latency_ms_median": float(np.median(lat)) if lat else None,
        "latency_ms_p90": float(np.percentile(lat, 90)) if lat else None,
        "dropped_pct": 100.0 * dropped / max(1.0, results + dropped),
        "faces": s1.get("drawnFaces"), "errors": s1["errors"] - s0["errors"],
        "rss_mb_start": rss0, "rss_mb_half": rss_mid, "rss_mb_end": rss1, "js_heap_mb_start": heap0, "js_heap_mb_end": heap1,
        "max_worker_pending": pending,
    }


def benchmark_stream(predictor, *, seconds: float = 20.0, fps: float = 30.0, width: int = 640, height: int = 480,
                     realtime: bool = True, every_n_frames: int = 1, attributes_every: int = 1, batch_size: int = 1,
                     outage_after: Optional[int] = None, outage_s: float = 10.0,
                     reconnect_delay: float = 1.0) -> Dict[str, Any]:
    """``tools/infer.py --input http://...mjpg`` (the runner, as the tool runs it) on an MJPEG
    stream served on 127.0.0.1 (:class:`~maskface.inference.testing.MjpegServer`, two real faces
    moving, ``width x height`` at ``fps``) for ``seconds``; optionally the stream goes away for
    ``outage_s`` seconds after ``outage_after`` frames.

    Returns processed frames per second, the source frames they cover per second (with
    ``every_n_frames`` / real-time skipping), CPU ms per processed frame (this process, all
    threads, the MJPEG server's share included), reconnections, and the largest gap in the
    results' frame numbers (real-time skipping, or frames lost in an outage).
    """
    import json
    import tempfile

    from maskface.inference.runner import InferenceRunner
    from maskface.inference.testing import MjpegServer, moving_faces_frames

    from maskface.inference.video import FrameAnalyzer

    clip = moving_faces_frames(int(fps * 4), width, height)
    FrameAnalyzer(predictor).analyze(clip[:1])  # first-use imports (SciPy's matcher) outside the timing
    mjpeg = MjpegServer(clip, fps=fps, outage_after=outage_after, outage_s=outage_s).start()
    try:
        with tempfile.TemporaryDirectory(prefix="maskface_stream_") as tmp:
            runner = InferenceRunner(
                predictor, tmp, batch_size=batch_size, vis=False, progress=False, every_n_frames=every_n_frames,
                attributes_every=attributes_every,
                stream_options=dict(duration=seconds, realtime=realtime, reconnect_delay=reconnect_delay,
                                    reconnect_timeout=max(60.0, 3 * outage_s)))
            t0, c0 = time.monotonic(), time.process_time()
            summary = runner.run([(mjpeg.url, "stream")])
            wall, cpu = time.monotonic() - t0, time.process_time() - c0
            lines = [json.loads(x) for x in (Path(tmp) / "results.jsonl").read_text().splitlines()]
    finally:
        mjpeg.stop()
    frames = [r["frame"] for r in lines if "faces" in r]
    gaps = np.diff(frames) if len(frames) > 1 else np.zeros(0)
    return {
        "input": f"{width}x{height}", "stream_fps": fps, "realtime": realtime, "every_n_frames": every_n_frames,
        "attributes_every": attributes_every, "batch_size": batch_size, "seconds": round(wall, 1),
        "processed_fps": len(frames) / wall, "covered_fps": (frames[-1] + 1) / wall if frames else 0.0,
        "cpu_ms_per_frame": 1e3 * cpu / max(1, len(frames)),
        "faces_per_frame": float(np.mean([len(r["faces"]) for r in lines if "faces" in r])) if frames else 0.0,
        "reconnects": mjpeg.connections - 1, "largest_gap_frames": int(gaps.max()) if gaps.size else 0,
        "errors": [e["error"] for e in summary.errors],
    }
