#!/usr/bin/env python
"""Train the attribute net (age, gender, emotion) on masked face crops.

Crops come from a crop cache (one file per split, built from DATASETS.TRAIN / DATASETS.TEST the
first time and reused afterwards; a cache alone is enough to train, the images are not needed).
All logic lives in the package: maskface.data.attribute_dataset (cache), maskface.engine.
attribute_trainer (training), maskface.evaluation.attribute_metrics (metrics, benchmark).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

try:
    import maskface  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskface.config import get_attr_cfg, setup_cfg  # noqa: E402
from maskface.data.attribute_dataset import CropCacheError, cache_meta, load_or_build_crop_cache  # noqa: E402
from maskface.engine.utils import save_config, setup_logging  # noqa: E402

logger = logging.getLogger("maskface.tools.train_attributes")

EXAMPLES = """examples:
  # train (builds OUTPUT_DIR/crop_cache/{train,val}.pt on the first run)
  python tools/train_attributes.py --config-file configs/attributes/attr_depthwise.yaml

  # train from a prebuilt cache folder on a GPU, overriding config keys
  python tools/train_attributes.py --config-file configs/attributes/attr_resnet.yaml \\
      --cache-dir /data/attr_cache --device cuda SOLVER.EPOCHS 40 SOLVER.IMS_PER_BATCH 512

  # continue an interrupted run
  python tools/train_attributes.py --config-file configs/attributes/attr_gra.yaml --resume

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


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
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
    result = AttributeTrainer(cfg, train, val, device=args.device, resume=args.resume).train()
    logger.info("Done: %d epochs, best validation score %s, outputs in %s", result["epochs"],
                "n/a" if result["best_score"] is None else f"{result['best_score']:.4f}", cfg.OUTPUT_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
