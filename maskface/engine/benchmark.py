"""Speed and memory of the detector: inference ms/image and training images/s.

Each measurement is a function returning a plain dict, so that other stages (attribute net,
end-to-end pipeline) can add theirs beside it and the tool only formats.

Workload conventions (stated in every result):
* inputs are synthetic face-like images (:mod:`maskface.data.synthetic`) of a given W x H;
* ``faces``: the detector is made to return exactly that many detections per image (score
  threshold 0, ``detections_per_img = faces``), since the mask head and the mask pasting cost
  grow with the number of faces and an untrained model's detections are arbitrary;
* wall time is the figure of merit; ``cpu_ms_per_image`` (process CPU time, all threads) is
  given too because it stays meaningful on a machine shared with other jobs;
* CPU memory is the process's peak resident set size so far (``ru_maxrss``: it never goes down,
  so phases run from the lightest to the heaviest); GPU memory is
  ``torch.cuda.max_memory_allocated`` of that phase.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from typing import Dict, List, Optional, Tuple

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
