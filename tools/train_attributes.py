#!/usr/bin/env python
"""Train the attribute net (age, gender, emotion) on masked face crops.

Crops come from a crop cache (one file per split, built from DATASETS.TRAIN / DATASETS.TEST the
first time and reused afterwards; a cache alone is enough to train, the images are not needed).
All logic lives in the package: maskface.data.attribute_dataset (cache), maskface.engine.
attribute_trainer (training by epochs), maskface.engine.budget_trainer (training for a time
budget, e.g. on a lent GPU), maskface.evaluation.attribute_metrics (metrics, benchmark).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

try:
    import maskface  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskface.config import get_attr_cfg, save_config, setup_cfg  # noqa: E402
from maskface.data.attribute_dataset import CropCacheError, cache_meta, load_or_build_crop_cache  # noqa: E402
from maskface.utils.logger import setup_logging  # noqa: E402

logger = logging.getLogger("maskface.tools.train_attributes")

EXAMPLES = """examples:
  # train (builds OUTPUT_DIR/crop_cache/{train,val}.pt on the first run)
  python tools/train_attributes.py --config-file configs/attributes/attr_depthwise.yaml

  # train from a prebuilt cache folder on a GPU, overriding config keys
  python tools/train_attributes.py --config-file configs/attributes/attr_resnet.yaml \\
      --cache-dir /data/attr_cache --device cuda SOLVER.EPOCHS 40 SOLVER.IMS_PER_BATCH 512

  # continue an interrupted run
  python tools/train_attributes.py --config-file configs/attributes/attr_gra.yaml --resume

  # a lent GPU for a few minutes: build the caches here on CPU first (prints their size and the
  # device memory they take), then on the GPU train for 10 minutes from the caches alone
  python tools/train_attributes.py --config-file configs/attributes/attr_resnet_ctx96_gpu.yaml \\
      --cache-dir attr_cache_gpu --prepare-only DATASETS.TRAIN "[...]" DATASETS.TEST "[...]"
  python tools/train_attributes.py --config-file configs/attributes/attr_resnet_ctx96_gpu.yaml \\
      --cache-dir attr_cache_gpu --device cuda --time-budget 10
  # (tools/attribute_gpu_run.sh holds both steps; a cut run goes on with --resume --time-budget 5)

  # faces/s of training fed by the device-resident path vs a DataLoader, 10 timed iterations
  python tools/train_attributes.py --config-file configs/attributes/attr_resnet_ctx96.yaml \\
      --cache-dir attr_cache_gpu --device cpu --benchmark-input 10 SOLVER.IMS_PER_BATCH 128

  # parameters and CPU/GPU speed of every trunk (no data needed)
  python tools/train_attributes.py --config-file configs/attributes/Base-Attributes.yaml --benchmark
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train the MaskFace attribute net (age, gender, emotion) from a crop cache.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config-file", required=True, help="YAML config (configs/attributes/*.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last_checkpoint")
    p.add_argument("--cache-dir", default="",
                   help="folder holding the crop caches train.pt / val.pt, built when missing "
                   "(default: OUTPUT_DIR/crop_cache)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda | cuda:N")
    p.add_argument("--benchmark", action="store_true",
                   help="print parameters and ms/face at batch 1 and 32 of every trunk (CPU, and CUDA when "
                   "present), then exit")
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="train for this many minutes of wall clock from the tool's start (SOLVER.TIME_BUDGET): "
                   "the LR schedule is fitted to the speed measured in the first iterations, checkpoints and "
                   "validations every SOLVER.CHECKPOINT_MINUTES, e.g. --time-budget 10; 0 = SOLVER.EPOCHS epochs")
    p.add_argument("--stop-after", type=float, default=None, metavar="MINUTES",
                   help="stop this session after MINUTES with a checkpoint, the run's plan (SOLVER.EPOCHS, or "
                   "the budget's) left for --resume: a long CPU run across sessions, e.g. --stop-after 50")
    p.add_argument("--prepare-only", action="store_true",
                   help="build (or check) the crop caches, print their file size and the device memory they take, "
                   "then exit: the CPU step before a run on a lent GPU")
    p.add_argument("--benchmark-input", type=int, default=0, metavar="ITERS",
                   help="time ITERS training iterations fed by the device-resident path and by a DataLoader "
                   "(DATALOADER.NUM_WORKERS processes) over the train cache, print faces/s, then exit; e.g. 10")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs, e.g. SOLVER.EPOCHS 10")
    return p


def _benchmark(cfg) -> int:
    import torch

    from maskface.evaluation.attribute_metrics import benchmark_attribute_net

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{'trunk':<10} {'params':>10} {'device':<6} {'batch':>5} {'ms/batch':>9} {'ms/face':>8}")
    for dev in devices:
        for r in benchmark_attribute_net(cfg, device=dev):
            print(f"{r['trunk']:<10} {r['params']:>10,} {dev:<6} {r['batch']:>5} {r['ms_per_batch']:>9.2f} "
                  f"{r['ms_per_face']:>8.3f}")
    return 0


def _print_caches(caches) -> None:
    for split, path, cache in caches:
        side = cache.images.shape[-1]
        print(f"{split}: {path}  {len(cache):,} faces {cache.sources}, file {os.path.getsize(path) / 2**20:.1f} MiB; "
              f"on the device {len(cache):,} x 3 x {side} x {side} B = {cache.images.numel() / 1e9:.3f} GB")


def _print_input_benchmark(rows) -> None:
    print(f"{'path':<26} {'phase':<6} {'batch':>5} {'ms/iter':>9} {'faces/s':>9}")
    for r in rows:
        print(f"{r['path']:<26} {r['phase']:<6} {r['batch']:>5} {r['ms_per_iter']:>9.1f} {r['faces_per_s']:>9.1f}")


def main(argv: Optional[List[str]] = None) -> int:
    started_at = time.monotonic()
    args = build_parser().parse_args(argv)
    if args.time_budget is not None:
        if args.time_budget < 0:
            print(f"error: --time-budget must be >= 0 minutes, got {args.time_budget}", file=sys.stderr)
            return 2
        args.opts = list(args.opts) + ["SOLVER.TIME_BUDGET", str(float(args.time_budget))]
    if args.stop_after is not None and args.stop_after <= 0:
        print(f"error: --stop-after must be > 0 minutes, got {args.stop_after}", file=sys.stderr)
        return 2
    try:
        cfg = setup_cfg(get_attr_cfg(), args.config_file, args.opts)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.benchmark:
        return _benchmark(cfg)

    from maskface.engine.attribute_trainer import AttributeTrainer

    setup_logging(cfg.OUTPUT_DIR)
    logger.info("Config:\n%s", cfg.dump())
    save_config(cfg, cfg.OUTPUT_DIR)
    cache_dir = args.cache_dir or os.path.join(cfg.OUTPUT_DIR, "crop_cache")
    m = cfg.MODEL
    meta = cache_meta(m.CROP_SIZE, m.CROP_MARGIN, cfg.INPUT.CACHE_PAD, m.MASK_DILATE, m.MASK_FEATHER,
                      ellipse_union=m.MASK_ELLIPSE_UNION)
    common = dict(meta=meta, image_root=cfg.DATASETS.IMAGE_ROOT, quality=cfg.INPUT.CACHE_JPEG_QUALITY,
                  num_workers=cfg.DATALOADER.NUM_WORKERS)
    try:
        train = load_or_build_crop_cache(os.path.join(cache_dir, "train.pt"), cfg.DATASETS.TRAIN, **common)
        val_path = os.path.join(cache_dir, "val.pt")
        val = None
        if cfg.DATASETS.TEST or os.path.isfile(val_path):
            val = load_or_build_crop_cache(val_path, cfg.DATASETS.TEST, **common)
        else:
            logger.warning("No DATASETS.TEST and no %s: no validation, no model_best.pth", val_path)
    except (FileNotFoundError, CropCacheError, KeyError) as e:
        logger.error("%s", e)
        return 2
    if args.prepare_only:
        _print_caches([("train", os.path.join(cache_dir, "train.pt"), train)]
                      + ([("val", val_path, val)] if val is not None else []))
        return 0
    if args.benchmark_input:
        from maskface.engine.budget_trainer import benchmark_input_paths

        _print_input_benchmark(benchmark_input_paths(cfg, train, args.device, iters=args.benchmark_input,
                                                     num_workers=cfg.DATALOADER.NUM_WORKERS))
        return 0
    try:
        if cfg.SOLVER.TIME_BUDGET > 0 or args.stop_after is not None:
            from maskface.engine.budget_trainer import BudgetAttributeTrainer

            stop_after_s = None if args.stop_after is None else 60.0 * args.stop_after
            trainer = BudgetAttributeTrainer(cfg, train, val, device=args.device, resume=args.resume,
                                             started_at=started_at, stop_after_s=stop_after_s)
        else:
            trainer = AttributeTrainer(cfg, train, val, device=args.device, resume=args.resume)
    except (ValueError, RuntimeError) as e:  # --resume of the other trainer's checkpoint, no CUDA, ...
        logger.error("%s", e)
        return 2
    result = trainer.train()
    logger.info("Done: %.2f epochs, best validation score %s, outputs in %s", result["epochs"],
                "n/a" if result["best_score"] is None else f"{result['best_score']:.4f}", cfg.OUTPUT_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
